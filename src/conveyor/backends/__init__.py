"""Stores, chosen by URL scheme. Each store module is imported only when its URL is used,
so ``import conveyor`` needs no driver for Redis or PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..redaction import redact_url
from .base import (
    Backend,
    EnqueuesInTransaction,
    Migrates,
    Partitions,
    StoresDependencies,
    StoresLimits,
    StreamsEnqueue,
    WaitsAndFetches,
    WaitsForJobs,
)

__all__ = [
    "Backend",
    "EnqueuesInTransaction",
    "Migrates",
    "Partitions",
    "StoresDependencies",
    "StoresLimits",
    "StreamsEnqueue",
    "WaitsAndFetches",
    "WaitsForJobs",
    "open_backend",
]


REDIS_SCHEMES = (
    "redis",
    "rediss",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
    "unix",
)


def open_backend(
    url: str, namespace: str, *, replicas: int | None = None, migrate: bool | None = True
) -> Backend:
    """The store of ``url``. ``replicas`` (Redis only): writes wait for that many replicas.
    ``migrate=False`` (PostgreSQL): never change the schema on open; ``conveyor migrate``
    does, and a schema that is missing or behind is an error naming that command."""
    scheme = urlsplit(url).scheme.lower()
    if replicas is not None and scheme not in REDIS_SCHEMES:
        raise ConfigurationError(
            f"replicas={replicas!r} is a Redis option (WAIT for replicas); {scheme}:// stores "
            "get their durability from the database's own replication settings"
        )
    if scheme == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend(url, namespace)
    if scheme in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresBackend
        except ImportError as exc:
            raise ConfigurationError(
                f"{redact_url(url)!r} needs the PostgreSQL extra: pip install 'conveyor[postgres]' ({exc})"
            ) from None
        return PostgresBackend(url, namespace, migrate=migrate)
    if scheme in REDIS_SCHEMES:
        try:
            from .redis import RedisBackend
        except ImportError as exc:
            raise ConfigurationError(
                f"this URL needs the Redis extra: pip install 'conveyor[redis]' ({exc})"
            ) from None
        return RedisBackend(url, namespace, replicas=replicas)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r}; use sqlite:///path, postgresql://… or redis://…"
    )
