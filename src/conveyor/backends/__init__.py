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
    "StoresLimits",
    "StreamsEnqueue",
    "WaitsAndFetches",
    "WaitsForJobs",
    "open_backend",
]


def open_backend(url: str, namespace: str) -> Backend:
    scheme = urlsplit(url).scheme.lower()
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
        return PostgresBackend(url, namespace)
    if scheme in ("redis", "rediss", "redis+sentinel", "redis+cluster", "unix"):
        try:
            from .redis import RedisBackend
        except ImportError as exc:
            raise ConfigurationError(
                f"this URL needs the Redis extra: pip install 'conveyor[redis]' ({exc})"
            ) from None
        return RedisBackend(url, namespace)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme!r}; use sqlite:///path, postgresql://… or redis://…"
    )
