"""The Redis store (also Valkey): every state change that touches more than one key is one
Lua script, so nothing is ever half-written, and every script touches one hash slot only, so
the same code runs on a single server, behind Sentinel, and on Redis Cluster.

URLs::

    redis://[user:password@]host:6379/0[?protocol=3]     rediss://… for TLS
    unix:///run/redis.sock?db=0
    redis+sentinel://[user:password@]host:26379,host:26380/service_name/0
    redis+cluster://[user:password@]host:7000[,host:7001][?protocol=3&ssl=true]

Key layout (``ns`` is the app's namespace, ``q`` a queue name, ``p`` a priority)::

    {ns}:queues           SET    every queue ever used: fetch(None), stats, recover, heartbeat
    {ns}:where            HASH   job id -> queue, for get() and admin actions by id; jobs of
                                 the queue "default" are not indexed (a lookup asks the index
                                 and the default queue at once), which spares the commonest
                                 enqueue a quarter of its server time
    {ns}:workers          HASH   worker id -> JSON of its last heartbeat
    {ns}:seen             ZSET   worker id by last heartbeat (expiry)
    {ns:q}:j:<id>         HASH   one job: p payload, m "priority|max_attempts|timeout|
                                 created_at" (the settings no script changes, one field: a
                                 hash's fields are scanned one by one), s state, ra run_at,
                                 a attempts, sa started_at, fa finished_at, r result,
                                 e last_error, tb traceback, lb locked_by, lu lease_until
    {ns:q}:prios          ZSET   priorities that have waiting jobs (member = score = p)
    {ns:q}:w:<p>          ZSET   waiting jobs (scheduled, pending, retry) of priority p by
                                 run_at; members of equal score sort by id, so a fetch reads
                                 priority DESC, run_at, id exactly as the SQLite store does
    {ns:q}:sched          ZSET   ids stored as 'scheduled', by run_at (admin counts only)
    {ns:q}:retry          ZSET   ids stored as 'retry', by run_at (admin counts only)
    {ns:q}:held:<worker>  SET    ids one worker holds: its active jobs (the heartbeat extends
                                 exactly these; complete checks ownership here, not in the job)
    {ns:q}:leases         ZSET   worker id by the earliest lease (lu) of the jobs it holds;
                                 recover looks at a worker once that passes and checks each
                                 job's own lease. One entry per worker, not per job, spares
                                 every job run a sorted-set insert and removal (~10% of the
                                 server's time per job)
    {ns:q}:claim:<worker> LIST   token and ids of the worker's last fetch (idempotent retry)
    {ns:q}:done           ZSET   completed ids by finished_at (pruned by recover)
    {ns:q}:dead           ZSET   dead ids by finished_at
    {ns:q}:cancelled      ZSET   cancelled ids by finished_at
    {ns:q}:paused         STRING present while the queue is paused
    {ns:q}:wake           LIST   wake-up tokens for idle workers in BLPOP (a hint, never state)
    {ns:q}:counts         HASH   p:<minute> processed, f:<minute> failed (stats, history)
    {ns:q}:pruned         STRING set for a minute after recover pruned old counters

Everything of one queue shares the hash tag ``{ns:q}``, hence one slot; the namespace-wide
keys share ``{ns}``. Scripts (``lua/*.lua``) touch one queue's slot; work across queues is
one script call per queue from Python, pipelined into one round-trip wherever order allows
(fetch alone goes queue by queue, because the first queue must be drained before the next).
On a single server the pipeline is written straight to a connection each thread keeps
for its lifetime: redis-py's ``Pipeline`` object, and even taking a connection from its
pool and giving it back, cost more Python time than the server's work for one job.

The id index and the queue registry live in another slot than the jobs, so on Cluster they
are written by a separate call, *before* the jobs. A client that dies in between leaves an
index entry (or a registered queue) without a job: ``get`` finds no job and says None, an
empty queue shows zero counts. The reverse, a job that ``get`` cannot find, would be
harmful, so it cannot happen by this order; should an index entry be lost anyway, ``get``
falls back to looking in every queue and repairs it. On a single server or Sentinel, where
a script may touch keys of any slot, the enqueue script writes the index, the registry and
the jobs together.

Guarantees and their limits:

* Every script is safe to run twice (redis-py re-sends a call whose reply was lost): enqueue
  does nothing when the first job of its call exists (a call is all or nothing), fetch
  returns the same claim for the same token, complete, fail and release act only on jobs
  the worker still holds (its ``held`` set).
* ``max_queue_length`` is checked inside the enqueue script, so a queue never passes it. A
  batch spanning several queues is all-or-none by compensation: when one queue is full, the
  jobs the others just stored are deleted again before ``QueueFull`` is raised. Each queue's
  part of a batch is stored whole or not at all; a client dying in the middle of a batch
  spanning several queues may leave some queues' parts stored and not the others.
* A batch of more than 1,000 jobs with no queue limit is streamed (``enqueue_stream``):
  each chunk of 1,000 is written as soon as it is built, so the server stores one while
  Python builds the next, and the replies are read at the end (bulk enqueue 43k -> 55k
  jobs/s). Every job is checked and encoded before the first chunk leaves, so bad input
  still stores nothing; a client dying part-way leaves the chunks it sent stored, each job
  whole, as Sidekiq's ``push_bulk`` does with its slices of 1,000.
* Idle workers block in BLPOP on their queues' wake lists. On Cluster one BLPOP cannot span
  slots, so a worker of several queues blocks on the first and finds jobs of the others at
  its next fetch (``idle_wait`` later).
* Admin listings (``jobs``, ``act`` by state) read every id of the state and sort them in
  Python: O(jobs in that state), kept off the hot path on purpose.

Payloads and results are bytes moved by the scripts as they are; only Python parses them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib.resources import files
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..errors import ConfigurationError, QueueFull, StoreUnavailable
from ..job import (
    ACTIVE,
    BAD_RUN_AT,
    COMPLETED,
    FAR_FUTURE,
    PENDING,
    RETRY,
    SCHEDULED,
    Failure,
    JobRecord,
    Stats,
    WorkerInfo,
)
from .base import check_action, translate_errors

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # redis-py without its hiredis extra: its own packer then
    _pack = None

log = logging.getLogger("conveyor.redis")

WORKER_EXPIRY: Final = 60.0  # seconds of silence after which a worker is forgotten
LOST: Final = (
    "worker lost: its lease expired while the job was active (the worker was killed, crashed or stalled)"
)
#: Tokens pushed to a queue's wake list per enqueue, and the most it keeps: enough to wake
#: that many idle workers at once; leftovers only cause one spare fetch each.
WAKE_TOKENS: Final = 16
#: How long fetch retries, with the same claim token, while Redis is unreachable. A claim
#: the server made but whose reply was lost comes back to the retry instead of staying
#: held by this worker (its heartbeat would keep extending it) until the worker exits.
FETCH_OUTAGE: Final = 5.0
DEFAULT: Final = "default"  # the queue whose jobs the id index leaves out
FIELDS: Final = ("p", "m", "s", "ra", "a", "sa", "fa", "r", "e", "tb", "lb", "lu")
_CLAIMED: Final = 7  # values per job fetch.lua returns
_SCRIPTS: Final = (
    "enqueue",
    "enqueue_one",
    "fetch",
    "complete",
    "fail",
    "release",
    "extend",
    "recover",
    "act",
    "ids",
    "stats",
    "beat",
    "forget",
)
_RETRYABLE = (RedisConnectionError, RedisTimeoutError)
#: redis-py's errors that mean the server (or the cluster) cannot be reached.
_UNAVAILABLE = (*_RETRYABLE, ClusterDownError, RedisClusterException)

T = TypeVar("T")


class RedisUnavailable(StoreUnavailable, RedisConnectionError):
    """Redis could not be reached (after retrying with backoff for a few seconds).

    A ``redis.exceptions.ConnectionError``, so code that already handles redis-py's
    errors handles this one too."""

    def __init__(self, message: str) -> None:
        # StoreUnavailable comes first in the MRO, and OSError's __init__ does not call on:
        # redis-py's own __init__ must run, or its __repr__ and retry helpers find no
        # ``error_type`` (an AttributeError instead of this error).
        RedisConnectionError.__init__(self, message)


def _unreachable(exc: BaseException) -> bool:
    # RedisClusterException is also raised for misuse; only "cannot be connected" is an outage.
    return type(exc) is not RedisClusterException or "cannot be connected" in str(exc)


# --------------------------------------------------------------------------- connecting


def _client_options(query: dict[str, list[str]]) -> dict[str, Any]:
    """Options every connection gets: retry with backoff on connection errors, so a
    restarted server is reconnected by itself, yet an unreachable one fails in about 2 s."""
    options: dict[str, Any] = {
        "retry": Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), retries=3),
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


def connect(url: str) -> tuple[Any, bool]:
    """A redis-py client for ``url`` and whether it is a Cluster client."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qs(parts.query)
    options = _client_options(query)
    if scheme in ("redis", "rediss", "unix"):
        if scheme == "unix":
            del options["socket_keepalive"]  # a TCP option: redis-py's unix connection refuses it
        # protocol is passed explicitly; from_url would also read it, but checked above.
        stripped = "&".join(f"{k}={v[-1]}" for k, v in query.items() if k != "protocol")
        # Built by hand: urlunsplit writes unix:///path as unix:/path, which redis-py refuses.
        rebuilt = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{stripped}" if stripped else "")
        return redis.Redis.from_url(rebuilt, **options), False
    if scheme == "redis+cluster":
        user, password, hosts = _hosts(parts.netloc, 6379)
        ssl = query.get("ssl", ["false"])[-1].lower() in ("1", "true", "yes")
        cluster_options = {k: v for k, v in options.items() if k not in ("retry_on_error",)}
        client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in hosts],  # type: ignore[no-untyped-call]
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
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts,
            sentinel_kwargs={
                "password": sentinel_password,
                "socket_connect_timeout": options["socket_connect_timeout"],
                "socket_timeout": 5.0,
                # The master's own retry policy asks the sentinels again; retrying inside
                # each look-up as well made an unreachable Sentinel take 15 s to report.
                "retry": Retry(NoBackoff(), 0),
            },
            **options,
        )
        client = sentinel.master_for(service, db=db, username=user, password=password)  # type: ignore[no-untyped-call]
        return client, False
    raise ConfigurationError(f"not a Redis URL: {scheme}://")


# --------------------------------------------------------------------------- decoding


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _meta(priority: int, max_attempts: int, timeout: str, created_at: str) -> str:
    """A job hash's field m: the settings no script changes (timeout "" for none)."""
    return f"{int(priority)}|{int(max_attempts)}|{timeout}|{created_at}"


def _record(job_id: str, queue: str, v: Sequence[Any]) -> JobRecord:
    """A job hash (``FIELDS``) as a record, tolerating wrong values in a hand-written hash:
    the worker then sends that one job to ``dead`` with a reason instead of crashing.

    complete.lua leaves a completed job's last lease and error in its hash (removing them
    would cost a command per job), so they are dropped here."""
    state = _text(v[2]) or PENDING
    if state == COMPLETED:
        v = [*v[:8], None, None, None, None]
    meta = v[1].split(b"|") if isinstance(v[1], bytes) else []
    priority, max_attempts, timeout, created = (*meta, None, None, None, None)[:4]
    return JobRecord(
        id=job_id,
        queue=queue,
        payload=v[0] if isinstance(v[0], bytes) else b"",
        priority=_int(priority, 0),
        state=state,
        run_at=_float(v[3]) or 0.0,
        attempts=_int(v[4], 0),
        max_attempts=_int(max_attempts, 1),
        timeout=_float(timeout or None),
        created_at=_float(created) or 0.0,
        started_at=_float(v[5]),
        finished_at=_float(v[6]),
        result=v[7],
        last_error=_text(v[8]),
        traceback=_text(v[9]),
        locked_by=_text(v[10]),
        lease_until=_float(v[11]),
    )


def _claimed(queue: str, flat: Sequence[Any], worker: str, lease_until: float, now: float) -> list[JobRecord]:
    """Records of jobs fetch.lua just claimed; it returns only what the caller cannot know."""
    out: list[JobRecord] = []
    reply = iter(flat)
    for job_id, payload, meta, run_at, attempts, error, tb in zip(*([reply] * _CLAIMED), strict=True):
        try:
            priority, max_attempts, timeout, created = meta.split(b"|")
            record = JobRecord(
                job_id.decode(),
                queue,
                payload,
                int(priority),
                ACTIVE,
                float(run_at),
                int(attempts),
                int(max_attempts),
                float(timeout) if timeout else None,
                float(created),
                now,
                None,
                None,
                None if error is None else error.decode(errors="replace"),
                None if tb is None else tb.decode(errors="replace"),
                worker,
                lease_until,
            )
        except (TypeError, ValueError, AttributeError):
            # A hand-written hash with wrong values: tolerate it here, and let the worker
            # send that one job to dead with a reason.
            values = [payload, meta, ACTIVE, run_at, attempts, now, None, None, error, tb, worker]
            record = _record(job_id.decode(), queue, [*values, lease_until])
        out.append(record)
    return out


def _names(values: Iterable[Any]) -> list[str]:
    """Queue names from SMEMBERS (a list in RESP2, a set in RESP3), default first."""
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return sorted(names, key=lambda q: (q != DEFAULT, q))


# --------------------------------------------------------------------------- the store


def _by_queue(records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    by_queue: dict[str, list[JobRecord]] = {}
    for r in records:
        by_queue.setdefault(r.queue, []).append(r)
    return by_queue


def _groups(batch: Sequence[JobRecord]) -> list[Any]:
    """enqueue.lua's arguments for ``batch``: runs of jobs that share their settings, each
    a header (count, priority, state, run_at, the hash's field m) and then the id and
    payload of every job of the run."""
    args: list[Any] = []
    times: dict[float, str] = {}  # a float's repr costs more than the rest of a job's arguments
    shared: tuple[Any, ...] = ()
    header = 0
    for r in batch:
        settings = (r.priority, r.state, r.run_at, r.max_attempts, r.timeout, r.created_at)
        if settings != shared:
            if header:
                args[header - 1] = (len(args) - header - 4) // 2
            shared = settings
            state = r.state if r.state in (SCHEDULED, PENDING, RETRY) else PENDING
            run_at = times.get(r.run_at) or times.setdefault(r.run_at, repr(float(r.run_at)))
            created = times.get(r.created_at) or times.setdefault(r.created_at, repr(float(r.created_at)))
            timeout = "" if r.timeout is None else repr(float(r.timeout))
            meta = _meta(r.priority, r.max_attempts, timeout, created)
            args += (0, int(r.priority), state, run_at, meta)
            header = len(args) - 4
        args += (r.id, r.payload)
    args[header - 1] = (len(args) - header - 4) // 2
    return args


class _Call:
    """One command of a pipeline: a plain command, or a script by name."""

    __slots__ = ("args", "script")

    def __init__(self, script: str | None, *args: Any) -> None:
        self.script = script
        self.args = args


class _OwnConnection:
    """A pool connection one thread keeps; back to the pool when the thread ends."""

    __slots__ = ("connection", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connection = pool.get_connection()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):  # the pool is closing, or the interpreter is
                self.pool.release(self.connection)


@translate_errors("Redis", _UNAVAILABLE, _unreachable, RedisUnavailable)
class RedisBackend:
    """Jobs in Redis, shared by any number of processes and machines."""

    def __init__(self, url: str, namespace: str) -> None:
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError(
                f"namespace {namespace!r} must not contain {{ or }}: the Redis store uses them "
                "as hash tags to keep each queue in one Cluster slot"
            )
        self.url = url
        self.ns = namespace
        self.client, self.cluster = connect(url)
        self._g = f"{{{namespace}}}:"
        self._scripts: dict[str, Any] = {}
        self._sources: dict[str, str] = {}
        lua = files("conveyor.backends") / "lua"
        for name in _SCRIPTS:
            source = (lua / f"{name}.lua").read_text()
            self._sources[name] = source
            self._scripts[name] = self.client.register_script(source)
        # Queues this process registered lately: enqueue skips re-registering them.
        self._registered: dict[str, float] = {}
        # Queue of each job this process fetched and has not acknowledged: complete/fail
        # find the job's keys without asking the id index (no extra round-trip).
        self._held: dict[str, str] = {}
        self._known: list[str] = []
        self._local = threading.local()
        self._offset = (-1e9, 0.0)  # (when measured, seconds): see _clock_offset

    # -- plumbing -------------------------------------------------------------------------
    def _q(self, queue: str) -> str:
        return f"{{{self.ns}:{queue}}}:"

    def _sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._run([_Call(name, keys, args)])[0]

    def _run(self, calls: Sequence[_Call]) -> list[Any]:
        """Run ``calls`` in one pipeline (one round-trip per node); scripts by SHA.

        A script the server does not know (SCRIPT FLUSH, a restart without persistence, a
        failover) is loaded and the calls that failed with NOSCRIPT are run again: a
        NOSCRIPT call did nothing, and every script is safe to repeat.
        """
        return self._settle(calls, self._pipeline(calls))

    def _settle(self, calls: Sequence[_Call], results: list[Any]) -> list[Any]:
        """``results`` of ``calls`` with every NOSCRIPT one run again once its script is
        loaded; raises the first error reply."""
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for name in {calls[i].script for i in missing}:
                if name is not None:
                    self.client.script_load(self._sources[name])
            again = self._pipeline([calls[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _commands(self, calls: Sequence[_Call]) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for call in calls:
            if call.script is None:
                commands.append(call.args)
            else:
                keys, args = call.args
                commands.append(("EVALSHA", self._sha(call.script), len(keys), *keys, *args))
        return commands

    def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        commands = self._commands(calls)
        if self.cluster:
            pipe = self.client.pipeline()
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))
        return self._on_own_connection(lambda conn: self._send(conn, commands))

    def _on_own_connection(self, exchange: Callable[[Any], T]) -> T:
        """Run ``exchange(connection)`` on this thread's own connection.

        Each thread keeps one pooled connection for as long as it lives: taking one from
        redis-py's pool and giving it back costs about 30 µs (a lock, a readiness poll of
        the socket), a third of a whole enqueue. The connection goes back to the pool when
        the thread ends, and is replaced in a forked child.
        """
        conn = self._own_connection()
        try:
            # The connection's own retry policy: reconnect with backoff and send it all
            # again, which every command here is safe to repeat.
            return conn.retry.call_with_retry(lambda: exchange(conn), lambda error: conn.disconnect())  # type: ignore[no-any-return]
        except BaseException:
            # Replies may be left unread (an interrupt, an error past the retries): never
            # send on such a connection again before it reconnects.
            conn.disconnect()
            raise

    def _own_connection(self) -> Any:
        own: _OwnConnection | None = getattr(self._local, "own", None)
        if own is None or own.pid != os.getpid():
            own = self._local.own = _OwnConnection(self.client.connection_pool)
        return own.connection

    @staticmethod
    def _write(conn: Any, commands: Sequence[tuple[Any, ...]]) -> None:
        if _pack is None:
            conn.send_packed_command(conn.pack_commands(commands))
        else:
            # hiredis packs in C; redis-py's own packer first looks at every argument in
            # Python, which for a batch of 10,000 jobs costs more than the server's work.
            conn.send_packed_command([_pack(command) for command in commands])

    @staticmethod
    def _replies(conn: Any, count: int) -> list[Any]:
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # an error reply; the rest still has to be read
                replies.append(exc)
        return replies

    @classmethod
    def _send(cls, conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        cls._write(conn, commands)
        return cls._replies(conn, len(commands))

    def _queues(self) -> list[str]:
        """Every queue ever used in this namespace, ``default`` first."""
        known = _names(self.client.smembers(self._g + "queues"))
        self._known = known
        return known

    def _unregistered(self, queues: Iterable[str]) -> list[str]:
        """Queues not added to the registry by this process lately, now marked as added (a
        queue is never unregistered, so re-adding it every 10 s only guards against a
        flushed server)."""
        fresh = [q for q in queues if not self._is_registered(q)]
        now = time.monotonic()
        for q in fresh:
            self._registered[q] = now
        return fresh

    def _is_registered(self, queue: str) -> bool:
        return time.monotonic() - self._registered.get(queue, -1e9) <= 10.0

    def _locate(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Job ids grouped by queue: from this process's fetches, else the id index or the
        default queue (asked together), else (an index entry lost) a look in every queue,
        repairing the index."""
        by_queue: dict[str, list[str]] = {}
        unknown: list[str] = []
        for job_id in ids:
            queue = self._held.get(job_id)
            if queue is None:
                unknown.append(job_id)
            else:
                by_queue.setdefault(queue, []).append(job_id)
        if unknown:
            default = self._q(DEFAULT)
            found, *in_default = self._run(
                [
                    _Call(None, "HMGET", self._g + "where", *unknown),
                    *(_Call(None, "EXISTS", f"{default}j:{i}") for i in unknown),
                ]
            )
            lost: list[str] = []
            for job_id, queue, default_has_it in zip(unknown, found, in_default, strict=True):
                if queue is not None:
                    by_queue.setdefault(queue.decode(), []).append(job_id)
                elif default_has_it:
                    by_queue.setdefault(DEFAULT, []).append(job_id)
                else:
                    lost.append(job_id)
            if lost:
                for job_id, queue in self._search(lost).items():
                    by_queue.setdefault(queue, []).append(job_id)
        return by_queue

    def _search(self, ids: Sequence[str]) -> dict[str, str]:
        """Which queue holds each job, looking in every queue but the default one."""
        queues = [q for q in self._queues() if q != DEFAULT]
        if not queues:
            return {}
        calls = [_Call(None, "EXISTS", f"{self._q(q)}j:{i}") for i in ids for q in queues]
        exists = self._run(calls)
        found: dict[str, str] = {}
        for n, flag in enumerate(exists):
            if flag:
                found.setdefault(ids[n // len(queues)], queues[n % len(queues)])
        if found:
            self.client.hset(self._g + "where", mapping=found)
        return found

    def _keys(self, queue: str, *names: str) -> list[str]:
        prefix = self._q(queue)
        return [prefix + n for n in names]

    # -- the hot path ---------------------------------------------------------------------
    def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if len(records) == 1 and max_queue_length is None and not self.cluster:
            r = records[0]
            if self._is_registered(r.queue) and self._enqueue_one(r, time.time()):
                return
        if not records:
            return
        by_queue = _by_queue(records)
        if max_queue_length is not None:
            for queue, batch in by_queue.items():
                # A queue can never take more than its limit at once: refuse before writing.
                if len(batch) > max_queue_length:
                    raise QueueFull(
                        f"queue {queue!r} may hold {max_queue_length} waiting jobs; adding "
                        f"{len(batch)} at once would pass that limit"
                    )
        fresh = self._unregistered(by_queue)
        scripts = self._enqueue_calls(by_queue, fresh, max_queue_length)
        try:
            if self.cluster:
                # Index and registry first, by their own call: see the module docstring.
                index = [x for r in records if r.queue != DEFAULT for x in (r.id, r.queue)]
                first = [_Call(None, "SADD", self._g + "queues", *fresh)] if fresh else []
                if index:
                    first.append(_Call(None, "HSET", self._g + "where", *index))
                if first:
                    self._run(first)
            results = self._run(scripts)
        except BaseException:
            for queue in fresh:  # the registry may not have been written: send it again
                self._registered.pop(queue, None)
            raise
        full = [(i, r) for i, r in enumerate(results) if r[0] == -1]
        if full:
            self._undo(by_queue, {i for i, _ in full})
            i, (_, waiting) = full[0]
            queue = list(by_queue)[i]
            raise QueueFull(
                f"queue {queue!r} holds {waiting} waiting jobs; adding {len(by_queue[queue])} "
                f"would pass its limit of {max_queue_length}"
            )

    def _enqueue_calls(
        self, by_queue: dict[str, list[JobRecord]], fresh: list[str], max_queue_length: int | None
    ) -> list[_Call]:
        """One enqueue.lua call per queue; ``fresh`` queues are added to the registry."""
        now = time.time()
        limit = "" if max_queue_length is None else max_queue_length
        calls: list[_Call] = []
        for queue, batch in by_queue.items():
            prefix = self._q(queue)
            keys = [prefix + "prios", prefix + "sched", prefix + "retry", prefix + "wake"]
            if not self.cluster:
                keys += (self._g + "where", self._g + "queues")
            args = [prefix, limit, now, WAKE_TOKENS, queue, "1" if queue in fresh else "", *_groups(batch)]
            calls.append(_Call("enqueue", keys, args))
        return calls

    def enqueue_stream(self, chunks: Iterable[Sequence[JobRecord]]) -> None:
        """``enqueue`` of a large batch (no queue limit) whose jobs the caller builds as it
        goes: each chunk is written to the server as soon as it is built, so the server
        stores one chunk while Python builds the next (built whole, then stored whole, the
        two took turns). The replies are read at the end: still one round-trip.

        Each chunk is one script call per queue, stored whole or not at all, and safe to
        send again; if the client dies part-way, the chunks sent before stay stored.
        """
        if self.cluster:  # a pipeline across slots may go to several nodes: all at once
            self.enqueue([r for chunk in chunks for r in chunk])
            return
        calls: list[_Call] = []
        registered: list[str] = []
        conn = self._own_connection()
        writing = True
        try:
            for chunk in chunks:
                by_queue = _by_queue(chunk)
                fresh = self._unregistered(by_queue)
                registered += fresh
                added = self._enqueue_calls(by_queue, fresh, None)
                calls += added
                if writing:
                    try:
                        self._write(conn, self._commands(added))
                    except _RETRYABLE:
                        # Stop writing; what was built is sent again below, with retries.
                        conn.disconnect()
                        writing = False
            results: list[Any] | None = None
            if writing:
                try:
                    results = self._replies(conn, len(calls))
                except _RETRYABLE:
                    conn.disconnect()
            if results is None:
                results = self._pipeline(calls)  # every call is safe to send twice
            self._settle(calls, results)
        except BaseException:
            if writing:  # replies may be left unread: never reuse the connection as it is
                conn.disconnect()
            for queue in registered:  # the registry may not have been written: send it again
                self._registered.pop(queue, None)
            raise

    def _enqueue_one(self, r: JobRecord, now: float) -> bool:
        """One pending or scheduled job of a registered queue, by enqueue_one.lua; False
        for any other state."""
        if r.state == PENDING:
            due = "1" if r.run_at <= now else ""
        elif r.state == SCHEDULED:
            due = ""
        else:
            return False
        prefix = self._q(r.queue)
        keys = (
            prefix + "j:" + r.id,
            f"{prefix}w:{int(r.priority)}",
            prefix + "prios",
            prefix + "wake",
            self._g + "where",
            prefix + "sched",
        )
        timeout = "" if r.timeout is None else repr(float(r.timeout))
        args = (
            r.payload,
            int(r.priority),
            r.state,
            repr(float(r.run_at)),
            _meta(r.priority, r.max_attempts, timeout, repr(float(r.created_at))),
            r.id,
            r.queue,
            due,
            WAKE_TOKENS,
        )
        # The commonest call of all, sent without the general path's bookkeeping.
        command = ("EVALSHA", self._sha("enqueue_one"), len(keys), *keys, *args)
        reply = self._on_own_connection(lambda conn: self._send(conn, (command,)))[0]
        if isinstance(reply, Exception):  # NOSCRIPT: load it and run again; else raise
            self._run([_Call("enqueue_one", keys, args)])
        return True

    def _undo(self, by_queue: dict[str, list[JobRecord]], full: set[int]) -> None:
        """A queue of the batch was full: take back what the others stored (all or none)."""
        calls: list[_Call] = []
        for n, (queue, batch) in enumerate(by_queue.items()):
            ids = [r.id for r in batch]
            if n not in full:
                prefix = self._q(queue)
                calls.append(_Call("act", self._act_keys(queue), [prefix, "delete", time.time(), "", *ids]))
            calls.append(_Call(None, "HDEL", self._g + "where", *ids))
        self._run(calls)

    def fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float
    ) -> list[JobRecord]:
        if limit <= 0:
            return []
        deadline = time.monotonic() + FETCH_OUTAGE
        pause = 0.1
        # One token for every attempt: a claim whose reply was lost is returned again.
        token = os.urandom(8).hex()
        while True:
            try:
                return self._fetch(queues, limit, worker, lease, now, token)
            except _RETRYABLE as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("fetch failed, retrying in %.1f s: %s", pause, exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _fetch_call(
        self, queue: str, limit: int, worker: str, lease_until: float, now: float, token: str
    ) -> _Call:
        p = self._q(queue)
        keys = [
            p + "prios",
            p + "leases",
            p + "sched",
            p + "retry",
            p + "paused",
            p + "held:" + worker,
            p + "claim:" + worker,
        ]
        # The claim is remembered for a minute: long enough for redis-py to re-send.
        return _Call("fetch", keys, [p, limit, worker, lease_until, now, token, 60000])

    def _fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float, token: str
    ) -> list[JobRecord]:
        lease_until = now + lease
        got: list[JobRecord] = []
        if queues is None:
            # The registry and the first queue in one round-trip; later queues only if the
            # first did not fill the batch.
            known, first = self._run(
                [
                    _Call(None, "SMEMBERS", self._g + "queues"),
                    self._fetch_call(DEFAULT, limit, worker, lease_until, now, token),
                ]
            )
            order = _names(known)
            self._known = order
            got += _claimed(DEFAULT, first, worker, lease_until, now)
            rest = [q for q in order if q != DEFAULT]
        else:
            rest = list(queues)
        for queue in rest:
            if len(got) >= limit:
                break
            call = self._fetch_call(queue, limit - len(got), worker, lease_until, now, token)
            keys, args = call.args
            got += _claimed(queue, self._script("fetch", keys, args), worker, lease_until, now)
        self._hold(got)
        return got

    def _hold(self, records: Iterable[JobRecord]) -> None:
        held = self._held
        for r in records:
            held[r.id] = r.queue

    def complete(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        if not results:
            return
        values = dict(results)
        minute = int(now // 60) * 60
        calls: list[_Call] = []
        for queue, ids in self._locate(list(values)).items():
            p = self._q(queue)
            flags = "".join("0" if values[i] is None else "1" for i in ids)
            args: list[Any] = [p, worker, now, f"p:{minute}", flags]
            for i in ids:
                result = values[i]
                args += (i, b"" if result is None else result)
            keys = [p + "done", p + "counts", p + "held:" + worker]
            calls.append(_Call("complete", keys, args))
        self._run(calls)
        self._forget(values)

    def _forget(self, ids: Iterable[str]) -> None:
        held = self._held
        for i in ids:
            held.pop(i, None)

    def fail(self, failures: Sequence[Failure], worker: str, now: float) -> None:
        if not failures:
            return
        by_id = {f.id: f for f in failures}
        minute = int(now // 60) * 60
        calls: list[_Call] = []
        for queue, ids in self._locate(list(by_id)).items():
            p = self._q(queue)
            batch = [by_id[i] for i in ids]
            flags = "".join("0" if f.traceback is None else "1" for f in batch)
            args: list[Any] = [p, worker, now, minute, flags]
            for f in batch:
                args += (f.id, "" if f.retry_at is None else f.retry_at, f.error, f.traceback or "")
            keys = [p + "dead", p + "retry", p + "prios", p + "counts", p + "held:" + worker]
            calls.append(_Call("fail", keys, args))
        self._run(calls)
        self._forget(by_id)

    def release(self, ids: Sequence[str], worker: str) -> None:
        if not ids:
            return
        calls: list[_Call] = []
        for queue, batch in self._locate(ids).items():
            p = self._q(queue)
            keys = [p + "prios", p + "held:" + worker, p + "wake"]
            calls.append(_Call("release", keys, [p, worker, WAKE_TOKENS, *batch]))
        self._run(calls)
        self._forget(ids)

    def heartbeat(self, info: WorkerInfo, lease: float, now: float) -> None:
        queues = set(self._queues()) | set(self._held.values())
        calls = [
            _Call(
                "extend",
                [self._q(q) + "held:" + info.id, self._q(q) + "leases"],
                [self._q(q), info.id, now + lease],
            )
            for q in sorted(queues)
        ]
        body = ""
        if info.alive:
            body = orjson.dumps(
                {
                    "host": info.host,
                    "pid": info.pid,
                    "queues": list(info.queues),
                    "concurrency": info.concurrency,
                    "started_at": info.started_at,
                    "last_seen": now,
                    "running": list(info.running),
                }
            ).decode()
        calls.append(_Call("beat", [self._g + "workers", self._g + "seen"], [info.id, body, now]))
        self._run(calls)

    def recover(self, now: float, completed_before: float) -> int:
        minute = int(now // 60) * 60
        calls: list[_Call] = []
        queues = self._queues()
        for queue in queues:
            p = self._q(queue)
            keys = self._keys(queue, "leases", "dead", "retry", "prios", "done", "counts", "pruned", "sched")
            args = [p, now, completed_before, minute, LOST, now - 86400, now + FAR_FUTURE, BAD_RUN_AT]
            calls.append(_Call("recover", keys, args))
        calls.append(_Call("forget", [self._g + "workers", self._g + "seen"], [now - WORKER_EXPIRY]))
        results = self._run(calls)
        recovered = 0
        pruned: list[bytes] = []
        for queue, result in zip(queues, results[:-1], strict=True):
            recovered += int(result[0])
            if queue != DEFAULT:  # the default queue's jobs are not in the index
                pruned += result[1:]
        for i in range(0, len(pruned), 1000):
            self.client.hdel(self._g + "where", *pruned[i : i + 1000])
        return recovered

    def wait_and_fetch(
        self, queues: Sequence[str] | None, timeout: float, limit: int, worker: str, lease: float
    ) -> list[JobRecord]:
        """``wait``, then ``fetch``, in one round-trip: the fetch is sent right behind the
        BLPOP on the same connection, so the server runs it the moment the BLPOP returns and
        the job that woke the worker is claimed without another round-trip. The fetch then
        reads the time from the server's clock (in the worker's clock, by an offset measured
        once a minute), since it runs later than it was sent."""
        if self.cluster or timeout <= 0.001 or limit <= 0:
            self.wait(queues, timeout)
            return self.fetch(queues, limit, worker, lease, time.time())
        names = list(queues) if queues is not None else (self._known or [DEFAULT])
        first = names[0] if queues is not None else DEFAULT
        token = os.urandom(8).hex()
        fetch = self._fetch_call(first, limit, worker, lease, 0.0, token)
        args = fetch.args[1]
        args[4] = ""  # now: the server's clock
        args.append(self._clock_offset())
        calls = [_Call(None, "BLPOP", *[self._q(q) + "wake" for q in names], timeout)]
        if queues is None:
            calls.append(_Call(None, "SMEMBERS", self._g + "queues"))
        calls.append(fetch)
        try:
            replies = self._run(calls)
        except ResponseError as exc:
            log.debug("wait: %s", exc)
            return self.fetch(queues, limit, worker, lease, time.time())
        # A connection error, past redis-py's retries, is an outage: raised (as
        # StoreUnavailable), for the worker to back off, rather than spending another
        # FETCH_OUTAGE in a fetch that would meet the same closed port.
        flat = replies[-1]
        now = float(flat[0])
        got = _claimed(first, flat[1:], worker, now + lease, now)
        self._hold(got)
        if not got and replies[0] is not None:
            # Woken, yet nothing was due by the server's clock: the job may come from a
            # machine whose clock runs a little ahead. Look again by this one's.
            return self.fetch(queues, limit, worker, lease, time.time())
        if queues is None:
            order = _names(replies[1])
            self._known = order
            rest = [q for q in order if q != DEFAULT]
        else:
            rest = names[1:]
        if rest and len(got) < limit:
            got += self._fetch(rest, limit - len(got), worker, lease, now, token)
        return got

    def _clock_offset(self) -> float:
        """This machine's clock minus the Redis server's, in seconds (re-read every minute):
        of five readings, the one with the shortest round-trip, whose midpoint is closest
        to the moment the server read its clock."""
        measured, offset = self._offset
        if time.monotonic() - measured < 60.0:
            return offset
        samples: list[tuple[float, float]] = []
        for _ in range(5):
            before = time.time()
            seconds, micros = self._on_own_connection(lambda conn: self._send(conn, [("TIME",)]))[0]
            after = time.time()
            samples.append((after - before, (before + after) / 2 - (int(seconds) + int(micros) / 1e6)))
        offset = min(samples)[1]
        self._offset = (time.monotonic(), offset)
        return offset

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        if timeout <= 0.001:
            return
        names = list(queues) if queues is not None else (self._known or [DEFAULT])
        if self.cluster:
            # BLPOP takes keys of one slot only; block on the first queue, and find jobs of
            # the others at the next fetch, after ``timeout``.
            names = names[:1]
        keys = [self._q(q) + "wake" for q in names]
        deadline = time.monotonic() + timeout
        try:
            # BLPOP blocks in the server: an enqueue's token wakes this worker within a
            # round-trip, and an idle worker sends one command per ``timeout``.
            self._on_own_connection(lambda conn: self._send(conn, [("BLPOP", *keys, timeout)]))
        except (*_RETRYABLE, ResponseError) as exc:
            log.debug("wait: %s", exc)
            time.sleep(max(0.0, deadline - time.monotonic()))

    # -- admin ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        found = self._locate([job_id])
        if not found:
            return None
        (queue,) = found
        values = self.client.hmget(f"{self._q(queue)}j:{job_id}", FIELDS)
        if values[2] is None:
            return None
        return _record(job_id, queue, values)

    def _act_keys(self, queue: str) -> list[str]:
        return self._keys(queue, "prios", "sched", "retry", "leases", "done", "dead", "cancelled", "wake")

    def _ids(self, state: str | None, queue: str | None, now: float) -> list[tuple[str, str]]:
        """(id, queue) of every job in ``state`` (and ``queue``), newest first."""
        queues = [queue] if queue is not None else self._queues()
        if not queues:
            return []
        calls = [_Call("ids", self._act_keys(q)[:7], [self._q(q), state or "", now]) for q in queues]
        found: list[tuple[str, str]] = []
        for q, ids in zip(queues, self._run(calls), strict=True):
            found += ((i.decode(), q) for i in ids)
        found.sort(reverse=True)
        return found

    def _read(self, pairs: Sequence[tuple[str, str]]) -> list[JobRecord]:
        if not pairs:
            return []
        calls = [_Call(None, "HMGET", f"{self._q(q)}j:{i}", *FIELDS) for i, q in pairs]
        return [
            _record(i, q, values)
            for (i, q), values in zip(pairs, self._run(calls), strict=True)
            if values[2] is not None
        ]

    def jobs(
        self,
        state: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
        now: float | None = None,
        search: str | None = None,
    ) -> list[JobRecord]:
        # Admin listings read every id in the state and sort them here: O(jobs in the state),
        # kept off the hot path (no per-job index writes just for listings).
        now = time.time() if now is None else now
        pairs = self._ids(state, queue, now)
        if not search:
            return self._read(pairs[offset : offset + limit])
        needle = search.encode()
        matched: list[JobRecord] = []
        for start in range(0, len(pairs), 500):
            for r in self._read(pairs[start : start + 500]):
                if needle in r.payload:
                    matched.append(r)
            if len(matched) >= offset + limit:
                break
        return matched[offset : offset + limit]

    def stats(self, now: float) -> Stats:
        queues = self._queues()
        since = now - 3600
        calls = [
            _Call(
                "stats",
                self._keys(
                    q, "prios", "sched", "retry", "leases", "done", "dead", "cancelled", "paused", "counts"
                ),
                [self._q(q), now, since],
            )
            for q in queues
        ]
        by_queue: dict[str, dict[str, int]] = {}
        paused: set[str] = set()
        oldest: dict[str, float] = {}
        history: dict[float, list[int]] = {}
        processed = failed = 0
        names = ("pending", "scheduled", "retry", "active", "completed", "dead", "cancelled")
        for q, row in zip(queues, self._run(calls) if calls else [], strict=True):
            if row[0]:
                paused.add(q)
            by_queue[q] = {name: int(n) for name, n in zip(names, row[1:8], strict=True) if int(n)}
            if row[8] is not None:
                oldest[q] = max(0.0, now - float(row[8]))
            processed += int(row[9])
            failed += int(row[10])
            for i in range(11, len(row), 3):
                slot = history.setdefault(float(row[i]), [0, 0])
                slot[0] += int(row[i + 1])
                slot[1] += int(row[i + 2])
        return Stats(
            queues=by_queue,
            paused=frozenset(paused),
            processed=processed,
            failed=failed,
            oldest_pending=oldest,
            history=[(minute, p, f) for minute, (p, f) in sorted(history.items())],
        )

    def workers(self) -> list[WorkerInfo]:
        raw = self.client.hgetall(self._g + "workers")
        found: list[WorkerInfo] = []
        for key, body in dict(raw).items():
            try:
                data = orjson.loads(body)
                found.append(
                    WorkerInfo(
                        id=key.decode(),
                        host=str(data["host"]),
                        pid=int(data["pid"]),
                        queues=tuple(data["queues"]),
                        concurrency=int(data["concurrency"]),
                        started_at=float(data["started_at"]),
                        last_seen=float(data["last_seen"]),
                        running=tuple(data["running"]),
                    )
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("ignoring a malformed worker entry %r", key)
        found.sort(key=lambda w: w.started_at)
        return found

    def act(
        self,
        action: str,
        ids: Sequence[str] | None,
        now: float,
        state: str | None = None,
        queue: str | None = None,
    ) -> int:
        check_action(action)
        if ids is not None:
            by_queue = self._locate(ids)
            only = ""
        else:
            by_queue = {}
            for job_id, q in self._ids(state, queue, now):
                by_queue.setdefault(q, []).append(job_id)
            only = state or ""
        calls: list[_Call] = []
        for q, batch in by_queue.items():
            for i in range(0, len(batch), 1000):
                calls.append(
                    _Call("act", self._act_keys(q), [self._q(q), action, now, only, *batch[i : i + 1000]])
                )
        if not calls:
            return 0
        changed = 0
        follow: list[_Call] = []
        for result in self._run(calls):
            changed += int(result[0])
            if len(result) > 1:
                follow.append(_Call(None, "HDEL", self._g + "where", *result[1:]))
        if follow:
            self._run(follow)
        return changed

    def set_paused(self, queue: str, paused: bool) -> None:
        key = self._q(queue) + "paused"
        # Registry first: a client dying in between leaves a registered queue, not a paused
        # queue no listing knows about.
        self.client.sadd(self._g + "queues", queue)
        if paused:
            self.client.set(key, "1")
        else:
            self.client.delete(key)

    def close(self) -> None:
        try:
            self.client.close()
        except RedisError as exc:
            log.debug("close: %s", exc)
