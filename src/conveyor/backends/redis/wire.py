"""Talking to Redis: scripts by SHA, pipelines, and the connection each thread keeps.

On a single server a pipeline is written straight to a connection each thread keeps for its
lifetime: redis-py's ``Pipeline`` object, and even taking a connection from its pool and
giving it back, cost more Python time than the server's work for one job.

On a Cluster, redis-py's ``ClusterPipeline`` costs about 0.1 ms of Python per command (200
small commands: 29 ms), so a pipeline is grouped by node here and written to a pooled
connection of each node, then every reply read: one round-trip per node, all nodes at once.
A reply that says the slot moved (a resharding or a failover), or a connection that fails,
sends the whole batch again through redis-py's pipeline, which follows the cluster's new
layout; every command sent here is safe to send twice.

Behind Sentinel that kept connection asks the sentinels for the master whenever it
reconnects (redis-py's own reconnect goes back to the address it had), and a script missing
after a failover is loaded on the very connection that runs it. With ``replicas=N`` a
durable call (enqueue, completion) ends with ``WAIT N``: it returns once N replicas have it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any, Final, TypeVar

from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MovedError,
    NoScriptError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from ...errors import StoreUnavailable

#: Replies of a node that say the batch must go through redis-py's own cluster pipeline.
_RELAYOUT = (MovedError, AskError, TryAgainError, ClusterDownError)

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # redis-py without its hiredis extra: its own packer then
    _pack = None

T = TypeVar("T")

#: The scripts of ``lua/``, each safe to run twice (see the package's docstring).
SCRIPTS: Final = (
    "batch_create",
    "batch_add",
    "batch_ids",
    "batch_fix",
    "batch_seal",
    "batch_prune",
    "batch_apply",
    "batch_read",
    "batch_sent",
    "enqueue",
    "enqueue_one",
    "fetch",
    "due",
    "hint_drop",
    "hints_read",
    "fetch_limited",
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
    "partition",
    "progress",
    "cancels",
    "watch",
    "enqueue_each",
    "change",
    "sweep",
    "ticks",
    "unschedule",
    "deps_link",
    "deps_add",
    "deps_release",
    "deps_cancel",
    "deps_done",
)


def script_source(name: str) -> str:
    """The script's text, each ``--#include NAME`` line replaced by ``lua/NAME.inc.lua``
    (Lua in Redis has no ``require``: a piece several scripts share is pasted in here)."""
    folder = files(__package__) / "lua"
    return _INCLUDE.sub(
        lambda m: (folder / f"{m[1]}.inc.lua").read_text(), (folder / f"{name}.lua").read_text()
    )


_INCLUDE = re.compile(r"^--#include (\w+)\n", re.M)


class Call:
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


class NotReplicated(StoreUnavailable):
    """A durable write (``replicas=N``) reached the master, but fewer than N replicas
    confirmed it in time: it may be lost if the master fails now."""


class Wire:
    """One redis-py client, its scripts, and the calls that send commands on it."""

    def __init__(
        self,
        client: Any,
        cluster: bool,
        sentinel: bool = False,
        replicas: int = 0,
        replicas_timeout: float = 5.0,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.sentinel = sentinel
        self.replicas = replicas
        self.wait_ms = max(1, int(replicas_timeout * 1000))
        self._sources = {name: script_source(name) for name in SCRIPTS}
        self._scripts = {name: client.register_script(source) for name, source in self._sources.items()}
        self._local = threading.local()
        #: Cluster: the calls that follow ``calls`` with their queues' hints (store.py sets
        #: it; see ``_fetch_slots`` there), None elsewhere.
        self.hints: Callable[[Sequence[Call]], list[Call]] | None = None

    def source(self, name: str) -> str:
        return self._sources[name]

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.run([Call(name, keys, args)])[0]

    def run(self, calls: Sequence[Call], durable: bool = False) -> list[Any]:
        """Run ``calls`` in one pipeline (one round-trip per node); scripts by SHA.

        A script the server does not know (SCRIPT FLUSH, a restart without persistence, a
        failover) is loaded and the calls that failed with NOSCRIPT are run again: a
        NOSCRIPT call did nothing, and every script is safe to repeat. ``durable`` calls
        wait for the configured replicas (``replicas=N``).
        """
        extra = self.hints(calls) if self.hints is not None else []
        if not extra:
            return self.settle(calls, self.pipeline(calls, durable), durable)
        # The hints go in the same pipeline, each behind its call on the same connection (a
        # queue's stamp is in its slot); a failed hint only costs a later fetch a look.
        n = len(calls)
        results = self.pipeline([*calls, *extra], durable)[:n]
        if any(isinstance(r, NoScriptError) for r in results):
            results = self.rerun_missing(calls, results, durable)
            self.pipeline(extra)  # behind the calls run again
        return self.settle(calls, results, durable)

    def settle(self, calls: Sequence[Call], results: list[Any], durable: bool = False) -> list[Any]:
        """``results`` of ``calls`` with every NOSCRIPT one run again once its script is
        loaded; raises the first error reply."""
        results = self.rerun_missing(calls, results, durable)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def rerun_missing(self, calls: Sequence[Call], results: list[Any], durable: bool = False) -> list[Any]:
        """``results`` of ``calls`` with every NOSCRIPT one run again once its script is
        loaded; error replies are left in place."""
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            # A batch forward that rode behind a refused complete.lua or fail.lua ran before
            # it: it runs again behind it (it is safe to repeat), and the callbacks both runs
            # fired are kept, so the acknowledgement's moves are not left for housekeeping.
            behind = [
                i
                for i in range(missing[0], len(calls))
                if calls[i].script == "batch_apply" and not isinstance(results[i], Exception)
            ]
            before = {i: results[i] for i in behind}
            missing = sorted({*missing, *behind})
            names = {calls[i].script for i in missing} - {None}
            loads = [Call(None, "SCRIPT", "LOAD", self._sources[str(name)]) for name in names]
            if self.cluster:
                for load in loads:
                    self.client.script_load(load.args[-1])
                loads = []
            # On one server the scripts are loaded in the same pipeline, on the connection
            # that runs them: after a failover another connection may reach another server.
            again = self.pipeline([*loads, *(calls[i] for i in missing)], durable)[len(loads) :]
            for i, result in zip(missing, again, strict=True):
                first = before.get(i)
                results[i] = (
                    [*first, *result] if isinstance(first, list) and isinstance(result, list) else result
                )
        return results

    def durable_commands(self, commands: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``commands`` followed by the ``WAIT`` that makes them durable (single server)."""
        return [*commands, ("WAIT", self.replicas, self.wait_ms)]

    def check_replicated(self, confirmed: Any) -> None:
        """Raise ``NotReplicated`` unless ``confirmed`` (WAIT's reply) reaches ``replicas``."""
        if isinstance(confirmed, Exception):
            raise confirmed
        if int(confirmed) < self.replicas:
            raise NotReplicated(
                f"written to the Redis master, but only {int(confirmed)} of {self.replicas} replicas "
                f"confirmed it within {self.wait_ms / 1000:g} s (replicas=, replicas_timeout=): it "
                "is stored, yet a failover now could lose it. Check the replicas' link (INFO "
                "replication); retrying is safe"
            )

    def commands(self, calls: Sequence[Call]) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for call in calls:
            if call.script is None:
                commands.append(call.args)
            else:
                keys, args = call.args
                commands.append(("EVALSHA", self.sha(call.script), len(keys), *keys, *args))
        return commands

    def pipeline(self, calls: Sequence[Call], durable: bool = False) -> list[Any]:
        commands = self.commands(calls)
        durable = durable and self.replicas > 0
        if self.cluster:
            written: dict[str, Any] = {}
            results = self._by_node(commands, written)
            if results is None:
                written.clear()  # redis-py's pipeline follows redirects: where each went is unknown
                pipe = self.client.pipeline()
                for command in commands:
                    pipe.execute_command(*command)
                results = list(pipe.execute(raise_on_error=False))
            if durable and calls:
                self._wait_on_nodes(calls, written)
            return results
        if durable:
            commands = self.durable_commands(commands)
            results = self.on_own_connection(lambda conn: self.send(conn, commands))
            self.check_replicated(results.pop())
            return results
        return self.on_own_connection(lambda conn: self.send(conn, commands))

    def _wait_on_nodes(self, calls: Sequence[Call], written: dict[str, Any]) -> None:
        """Cluster: ``WAIT`` on each master that took one of ``calls``' writes (the master of
        each call's first key; a call's keys share one slot).

        WAIT covers the writes of the connection it is sent on, and the calls went out on
        pooled connections (or redis-py's pipeline, after a MOVED): so a small write to a
        key of the call's own slot (``{tag}:durable``, expiring) goes first on the same
        connection; a master's replication offset only grows, so confirming that write
        confirms every earlier one of that master.

        ``written`` names the node each slot's writes were sent to (``_by_node``): the WAIT
        goes to that node, not to the slot's master looked up again, because a failover
        between the write and the WAIT would otherwise confirm the new master's replicas for
        a write that only the dead master took (the write was acknowledged and lost: the
        Cluster fault test saw it about once in five runs). If that node no longer serves
        the slot, the marker's write fails there and the enqueue is refused."""
        markers: dict[str, tuple[Any, str]] = {}
        for call in calls:
            key = str(call.args[0][0] if call.script else call.args[1])
            end = key.find("}")
            marker = (key[: end + 1] if key.startswith("{") and end > 0 else key) + ":durable"
            sent_to = written.get(str(self.client.keyslot(key)))
            target = sent_to if sent_to is not None else self.client.get_node_from_key(marker)
            markers.setdefault(target.name, (target, marker))
        confirmed: list[int] = []
        for target, marker in markers.values():
            node = self.client.get_redis_connection(target)
            pipe = node.pipeline(transaction=False)
            pipe.set(marker, 1, px=60000)
            pipe.execute_command("WAIT", self.replicas, self.wait_ms)
            confirmed.append(int(pipe.execute()[-1]))
        self.check_replicated(min(confirmed))

    def _by_node(
        self, commands: Sequence[tuple[Any, ...]], written: dict[str, Any] | None = None
    ) -> list[Any] | None:
        """``commands`` on a Cluster, grouped by the node of their first key; None when the
        batch must go through redis-py's pipeline instead (see the module docstring).
        ``written`` gains, per slot (as a string), the node its commands were sent to."""
        slots = self.client.nodes_manager
        groups: dict[str, tuple[Any, list[int]]] = {}
        try:
            for i, command in enumerate(commands):
                key = command[3] if command[0] == "EVALSHA" else command[1]
                slot = self.client.keyslot(key)
                node = slots.get_node_from_slot(slot)
                groups.setdefault(node.name, (node, []))[1].append(i)
                if written is not None:
                    written[str(slot)] = node
        except (IndexError, KeyError, AttributeError, ResponseError, ClusterDownError):
            return None  # a command without a key, or a slot no node serves yet
        taken: list[tuple[Any, Any, list[int]]] = []
        results: list[Any] = [None] * len(commands)
        try:
            for node, indexes in groups.values():
                pool = node.redis_connection.connection_pool
                conn = pool.get_connection()
                taken.append((pool, conn, indexes))
                self.write(conn, [commands[i] for i in indexes])
            for _, conn, indexes in taken:
                for i, reply in zip(indexes, self.replies(conn, len(indexes)), strict=True):
                    results[i] = reply
        except (ConnectionError, TimeoutError, OSError):
            for _, conn, _ in taken:
                conn.disconnect()  # replies may be left unread
            return None
        finally:
            for pool, conn, _ in taken:
                pool.release(conn)
        if any(isinstance(r, _RELAYOUT) for r in results):
            return None
        return results

    def on_own_connection(self, exchange: Callable[[Any], T]) -> T:
        """Run ``exchange(connection)`` on this thread's own connection.

        Each thread keeps one pooled connection for as long as it lives: taking one from
        redis-py's pool and giving it back costs about 30 µs (a lock, a readiness poll of
        the socket), a third of a whole enqueue. The connection goes back to the pool when
        the thread ends, and is replaced in a forked child.
        """
        conn = self.own_connection()
        sentinel = self.sentinel

        def attempt() -> T:
            if sentinel:
                # redis-py reconnects a dropped connection to the address it had (its
                # send calls connect_check_health); Sentinel's connect() asks the
                # sentinels where the master is now.
                conn.connect()
            return exchange(conn)

        try:
            # The connection's own retry policy: reconnect with backoff and send it all
            # again, which every command here is safe to repeat.
            return conn.retry.call_with_retry(attempt, lambda error: conn.disconnect())  # type: ignore[no-any-return]
        except BaseException:
            # Replies may be left unread (an interrupt, an error past the retries): never
            # send on such a connection again before it reconnects.
            conn.disconnect()
            raise

    def own_connection(self) -> Any:
        own: _OwnConnection | None = getattr(self._local, "own", None)
        if own is None or own.pid != os.getpid():
            own = self._local.own = _OwnConnection(self.client.connection_pool)
        return own.connection

    def node_connection(self, key: str) -> Any:
        """Cluster: this thread's own connection to the master of ``key``'s slot (BLPOP
        must block there). A failover moves the slot: the next call finds the new master."""
        node = self.client.get_node_from_key(key)
        pool = self.client.get_redis_connection(node).connection_pool
        nodes: dict[int, _OwnConnection] | None = getattr(self._local, "nodes", None)
        if nodes is None:
            nodes = self._local.nodes = {}
        own = nodes.get(id(pool))
        if own is None or own.pid != os.getpid() or own.pool is not pool:
            own = nodes[id(pool)] = _OwnConnection(pool)
        return own.connection

    @staticmethod
    def write(conn: Any, commands: Sequence[tuple[Any, ...]]) -> None:
        if _pack is None:
            conn.send_packed_command(conn.pack_commands(commands))
        else:
            # hiredis packs in C; redis-py's own packer first looks at every argument in
            # Python, which for a batch of 10,000 jobs costs more than the server's work.
            conn.send_packed_command([b"".join([_pack(command) for command in commands])])

    @staticmethod
    def replies(conn: Any, count: int) -> list[Any]:
        replies: list[Any] = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:  # an error reply; the rest still has to be read
                replies.append(exc)
        return replies

    @classmethod
    def send(cls, conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        cls.write(conn, commands)
        return cls.replies(conn, len(commands))
