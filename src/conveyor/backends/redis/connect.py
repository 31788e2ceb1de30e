"""Connecting to Redis: a redis-py client for each URL form, and what counts as an outage.

URLs::

    redis://[user:password@]host:6379/0[?protocol=3]     rediss://… for TLS
    unix:///run/redis.sock?db=0
    redis+sentinel://[user:password@]host:26379,host:26380/service_name/0[?sentinel_password=…]
    redis+cluster://[user:password@]host:7000[,host:7001][?protocol=3&ssl=true]
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from ...errors import ConfigurationError, StoreUnavailable

#: redis-py's errors after which a call may be sent again (every script is safe to repeat).
RETRYABLE = (RedisConnectionError, RedisTimeoutError)
#: redis-py's errors that mean the server (or the cluster) cannot be reached.
UNAVAILABLE = (*RETRYABLE, ClusterDownError, RedisClusterException)


class RedisUnavailable(StoreUnavailable, RedisConnectionError):
    """Redis could not be reached (after retrying with backoff for a few seconds).

    A ``redis.exceptions.ConnectionError``, so code that already handles redis-py's
    errors handles this one too."""

    def __init__(self, message: str) -> None:
        # StoreUnavailable comes first in the MRO, and OSError's __init__ does not call on:
        # redis-py's own __init__ must run, or its __repr__ and retry helpers find no
        # ``error_type`` (an AttributeError instead of this error).
        RedisConnectionError.__init__(self, message)


def unreachable(exc: BaseException) -> bool:
    # RedisClusterException is also raised for misuse; only "cannot be connected" is an outage.
    return type(exc) is not RedisClusterException or "cannot be connected" in str(exc)


def _asyncio() -> Any:
    """``redis.asyncio`` with the modules ``connect`` uses, imported only by the async client
    API (a worker never loads them)."""
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.retry
    import redis.asyncio.sentinel

    return redis.asyncio


def _client_options(query: dict[str, list[str]], aio: bool = False) -> dict[str, Any]:
    """Options every connection gets: retry with backoff on connection errors, so a
    restarted server is reconnected by itself, yet an unreachable one fails in about 2 s."""
    retry_type: Any = _asyncio().retry.Retry if aio else Retry
    options: dict[str, Any] = {
        "retry": retry_type(ExponentialWithJitterBackoff(base=0.1, cap=1.0), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": 30,
        "socket_connect_timeout": 1.0,
        "socket_timeout": 15.0,
        "socket_keepalive": True,
    }
    if "protocol" in query:
        protocol = query["protocol"][-1]
        if protocol not in ("2", "3"):
            raise ConfigurationError(f"protocol={protocol!r} in the Redis URL must be 2 or 3")
        options["protocol"] = int(protocol)
    return options


def _hosts(netloc: str, default_port: int) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """user, password and host:port pairs of ``user:pw@h1:p1,h2:p2``."""
    creds, _, hostlist = netloc.rpartition("@")
    user: str | None = None
    password: str | None = None
    if creds:
        name, sep, secret = creds.partition(":")
        user = unquote(name) or None
        password = unquote(secret) if sep else None
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if not sep:
            host, port = item, str(default_port)
        try:
            hosts.append((host.strip("[]"), int(port)))
        except ValueError:
            raise ConfigurationError(f"bad host:port {item!r} in the Redis URL") from None
    if not hosts:
        raise ConfigurationError("the Redis URL names no host")
    return user, password, hosts


def connect(url: str, aio: bool = False) -> tuple[Any, bool]:
    """A redis-py client for ``url`` and whether it is a Cluster client; with ``aio``, the
    same client from ``redis.asyncio`` (for the async client API), built from the same
    options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    options = _client_options(query, aio)
    kinds: Any = _asyncio() if aio else redis
    if scheme in ("redis", "rediss", "unix"):
        if scheme == "unix":
            del options["socket_keepalive"]  # a TCP option: redis-py's unix connection refuses it
        # protocol is passed explicitly; from_url would also read it, but checked above.
        stripped = "&".join(f"{k}={v[-1]}" for k, v in query.items() if k != "protocol")
        # Built by hand: urlunsplit writes unix:///path as unix:/path, which redis-py refuses.
        rebuilt = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{stripped}" if stripped else "")
        return kinds.Redis.from_url(rebuilt, **options), False
    if scheme == "redis+cluster":
        user, password, hosts = _hosts(parts.netloc, 6379)
        ssl = query.get("ssl", ["false"])[-1].lower() in ("1", "true", "yes")
        cluster_options = {k: v for k, v in options.items() if k not in ("retry_on_error",)}
        cluster_type, node_type = (
            (kinds.cluster.RedisCluster, kinds.cluster.ClusterNode) if aio else (RedisCluster, ClusterNode)
        )
        client = cluster_type(
            startup_nodes=[node_type(h, p) for h, p in hosts],
            username=user,
            password=password,
            ssl=ssl,
            **cluster_options,
        )
        return client, True
    if scheme == "redis+sentinel":
        user, password, hosts = _hosts(parts.netloc, 26379)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigurationError(
                "redis+sentinel:// needs a service name: redis+sentinel://host:26379/mymaster/0"
            )
        service = unquote(path[0])
        db = int(path[1]) if len(path) > 1 else 0
        sentinel_password = query.get("sentinel_password", [None])[-1]
        sentinel = (kinds.sentinel.Sentinel if aio else Sentinel)(
            hosts,
            sentinel_kwargs={
                "password": sentinel_password,
                "socket_connect_timeout": options["socket_connect_timeout"],
                "socket_timeout": 5.0,
                # The master's own retry policy asks the sentinels again; retrying inside
                # each look-up as well made an unreachable Sentinel take 15 s to report.
                "retry": (kinds.retry.Retry if aio else Retry)(NoBackoff(), 0),
            },
            **options,
        )
        client = sentinel.master_for(service, db=db, username=user, password=password)
        return client, False
    raise ConfigurationError(f"not a Redis URL: {scheme}://")
