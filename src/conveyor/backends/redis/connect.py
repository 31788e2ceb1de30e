"""Connecting to Redis: a redis-py client for each URL form, and what counts as an outage.

URLs::

    redis://[user:password@]host:6379/0[?protocol=3]
    rediss://host:6380/0?ssl_ca_certs=/etc/ssl/ca.pem          TLS (and ssl_certfile,
                                                                ssl_keyfile, ssl_cert_reqs,
                                                                ssl_check_hostname)
    unix:///run/redis.sock?db=0
    redis+sentinel://[user:password@]host:26379,host:26380/service_name/0[?sentinel_password=…]
    rediss+sentinel://…  TLS to the sentinels and the master (sentinel_ssl=false: plain
                         to the sentinels); the same ssl_* options
    redis+cluster://[user:password@]host:7000[,host:7001][?protocol=3]
    rediss+cluster://…   TLS to every node (``redis+cluster://…?ssl=true`` too); ssl_* options

Every form also takes ``replicas=N`` (and ``replicas_timeout=`` seconds, default 5): enqueue
and completion then return only once N replicas have the write (``WAIT``); see
docs/production/redis.md.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from ...errors import ConfigurationError, StoreFull, StoreUnavailable
from ..base import Explained

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


def explain(store: object, exc: BaseException) -> Explained | None:
    """The real cause of a redis-py error, for ``translate_errors``; None for the rest."""
    if not isinstance(exc, redis.exceptions.RedisError):
        return None
    text = str(exc)
    if isinstance(exc, OutOfMemoryError) or text.startswith("OOM "):
        return StoreFull, (
            f"the server is out of memory ({text}): maxmemory is reached and its policy "
            "(noeviction) refuses writes. Nothing of this call was stored. Let the workers "
            "drain it (completions free memory), lower result_ttl, or raise maxmemory"
        )
    if isinstance(exc, (AuthenticationError, AuthenticationWrongNumberOfArgsError)) or any(
        marker in text for marker in ("WRONGPASS", "NOAUTH", "invalid username-password")
    ):
        return RedisUnavailable, f"authentication failed ({text}): check the user and password in the URL"
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return RedisUnavailable, (
            f"permission denied ({text}): the ACL user needs every command on the "
            "namespace's keys (they start with {namespace), e.g. ACL SETUSER <user> on "
            "~{conveyor* &* +@all"
        )
    if "certificate verify failed" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return RedisUnavailable, (
            f"TLS: the server's certificate is not trusted ({text}): name the CA that signed it "
            "with ssl_ca_certs=/path/ca.pem in the URL"
        )
    if "No such file or directory" in text and "ssl_" in str(getattr(store, "url", "")):
        return RedisUnavailable, (
            f"TLS: a file named in the URL (ssl_ca_certs, ssl_certfile, ssl_keyfile) cannot be read ({text})"
        )
    if text.startswith("NOREPLICAS"):
        return RedisUnavailable, (
            f"the master refuses writes ({text}): fewer replicas are connected than its "
            "min-replicas-to-write; nothing was stored. Check the replicas (INFO replication)"
        )
    if text.startswith(("LOADING", "MASTERDOWN")):
        return RedisUnavailable, f"the server cannot serve yet ({text}); try again in a moment"
    if isinstance(exc, ReadOnlyError) or "previous master is now a slave" in text:
        return RedisUnavailable, (
            f"the server is a read-only replica ({text}): point the URL at the master, or use "
            "redis+sentinel:// so that a failover is followed"
        )
    return None


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


#: TLS options every URL form takes as query parameters (redis-py's names).
TLS_OPTIONS: Final = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password")


def _tls_options(query: dict[str, list[str]]) -> dict[str, Any]:
    """redis-py's TLS keywords from the URL's query: the CA, a client certificate,
    ``ssl_cert_reqs`` (required, optional, none) and ``ssl_check_hostname``."""
    options: dict[str, Any] = {"ssl": True}
    for name in TLS_OPTIONS:
        if name in query:
            options[name] = query[name][-1]
    if "ssl_cert_reqs" in query:
        reqs = query["ssl_cert_reqs"][-1].lower()
        if reqs not in ("required", "optional", "none"):
            raise ConfigurationError(
                f"ssl_cert_reqs={reqs!r} in the Redis URL must be required, optional or none"
            )
        options["ssl_cert_reqs"] = reqs
    if "ssl_check_hostname" in query:
        options["ssl_check_hostname"] = _flag(query["ssl_check_hostname"][-1])
    return options


#: Query parameters conveyor reads itself and never hands to redis-py.
OWN_OPTIONS: Final = ("protocol", "replicas", "replicas_timeout")


def durability(query: dict[str, list[str]]) -> tuple[int, float]:
    """``replicas`` and ``replicas_timeout`` of the URL (0 and 5 s when absent)."""
    try:
        replicas = int(query.get("replicas", ["0"])[-1])
        timeout = float(query.get("replicas_timeout", ["5"])[-1])
    except ValueError:
        raise ConfigurationError(
            "replicas= must be an integer and replicas_timeout= seconds in the Redis URL"
        ) from None
    if replicas < 0 or timeout <= 0:
        raise ConfigurationError("replicas= must be 0 or more and replicas_timeout= above 0 in the Redis URL")
    return replicas, timeout


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


class Connected:
    """A redis-py client for a URL and what kind of deployment it reaches."""

    def __init__(
        self, client: Any, cluster: bool, sentinel: bool, replicas: int, replicas_timeout: float
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.sentinel = sentinel
        self.replicas = replicas
        self.replicas_timeout = replicas_timeout


def connect(url: str, replicas: int | None = None, aio: bool = False) -> Connected:
    """A redis-py client for ``url``. ``replicas`` (``Conveyor(replicas=N)``) overrides the
    URL's ``replicas=``. With ``aio``, the same client from ``redis.asyncio`` (for the async
    client API), built from the same options."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query, keep_blank_values=True)
    options = _client_options(query, aio)
    kinds: Any = _asyncio() if aio else redis
    wanted, timeout = durability(query)
    if replicas is not None:
        if replicas < 0:
            raise ConfigurationError(f"replicas={replicas!r} must be 0 or more")
        wanted = replicas
    if scheme in ("redis", "rediss", "unix"):
        if scheme == "unix":
            del options["socket_keepalive"]  # a TCP option: redis-py's unix connection refuses it
        # protocol is passed explicitly; from_url would also read it, but checked above.
        # Re-encoded: a CA path with a space or an & stays one value.
        rest = [(k, v[-1]) for k, v in query.items() if k not in OWN_OPTIONS]
        stripped = urlencode(rest, quote_via=quote, safe="/")
        # Built by hand: urlunsplit writes unix:///path as unix:/path, which redis-py refuses.
        rebuilt = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{stripped}" if stripped else "")
        return Connected(kinds.Redis.from_url(rebuilt, **options), False, False, wanted, timeout)
    if scheme in ("redis+cluster", "rediss+cluster"):
        user, password, hosts = _hosts(parts.netloc, 6379)
        if scheme == "rediss+cluster" or _flag(query.get("ssl", ["false"])[-1]):
            options.update(_tls_options(query))
        cluster_options = {k: v for k, v in options.items() if k not in ("retry_on_error",)}
        cluster_type, node_type = (
            (kinds.cluster.RedisCluster, kinds.cluster.ClusterNode) if aio else (RedisCluster, ClusterNode)
        )
        client = cluster_type(
            startup_nodes=[node_type(h, p) for h, p in hosts],
            username=user,
            password=password,
            **cluster_options,
        )
        return Connected(client, True, False, wanted, timeout)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        user, password, hosts = _hosts(parts.netloc, 26379)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigurationError(f"{scheme}:// needs a service name: {scheme}://host:26379/mymaster/0")
        service = unquote(path[0])
        db = int(path[1]) if len(path) > 1 else 0
        sentinel_password = query.get("sentinel_password", [None])[-1]
        sentinel_kwargs: dict[str, Any] = {
            "password": sentinel_password,
            "socket_connect_timeout": options["socket_connect_timeout"],
            "socket_timeout": 5.0,
            # The master's own retry policy asks the sentinels again; retrying inside
            # each look-up as well made an unreachable Sentinel take 15 s to report.
            "retry": (kinds.retry.Retry if aio else Retry)(NoBackoff(), 0),
        }
        if scheme == "rediss+sentinel" or _flag(query.get("ssl", ["false"])[-1]):
            tls = _tls_options(query)
            options.update(tls)
            if _flag(query.get("sentinel_ssl", ["true"])[-1]):
                sentinel_kwargs.update(tls)
        sentinel = (kinds.sentinel.Sentinel if aio else Sentinel)(
            hosts, sentinel_kwargs=sentinel_kwargs, **options
        )
        client = sentinel.master_for(service, db=db, username=user, password=password)
        return Connected(client, False, True, wanted, timeout)
    raise ConfigurationError(f"not a Redis URL: {scheme}://")
