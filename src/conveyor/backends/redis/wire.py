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
"""

from __future__ import annotations

import contextlib
import os
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
    "enqueue",
    "enqueue_one",
    "fetch",
    "due",
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
)


def script_source(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text()


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


class Wire:
    """One redis-py client, its scripts, and the calls that send commands on it."""

    def __init__(self, client: Any, cluster: bool) -> None:
        self.client = client
        self.cluster = cluster
        self._sources = {name: script_source(name) for name in SCRIPTS}
        self._scripts = {name: client.register_script(source) for name, source in self._sources.items()}
        self._local = threading.local()

    def source(self, name: str) -> str:
        return self._sources[name]

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.run([Call(name, keys, args)])[0]

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Run ``calls`` in one pipeline (one round-trip per node); scripts by SHA.

        A script the server does not know (SCRIPT FLUSH, a restart without persistence, a
        failover) is loaded and the calls that failed with NOSCRIPT are run again: a
        NOSCRIPT call did nothing, and every script is safe to repeat.
        """
        return self.settle(calls, self.pipeline(calls))

    def settle(self, calls: Sequence[Call], results: list[Any]) -> list[Any]:
        """``results`` of ``calls`` with every NOSCRIPT one run again once its script is
        loaded; raises the first error reply."""
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for name in {calls[i].script for i in missing}:
                if name is not None:
                    self.client.script_load(self._sources[name])
            again = self.pipeline([calls[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def commands(self, calls: Sequence[Call]) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for call in calls:
            if call.script is None:
                commands.append(call.args)
            else:
                keys, args = call.args
                commands.append(("EVALSHA", self.sha(call.script), len(keys), *keys, *args))
        return commands

    def pipeline(self, calls: Sequence[Call]) -> list[Any]:
        commands = self.commands(calls)
        if self.cluster:
            results = self._by_node(commands)
            if results is not None:
                return results
            pipe = self.client.pipeline()
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))
        return self.on_own_connection(lambda conn: self.send(conn, commands))

    def _by_node(self, commands: Sequence[tuple[Any, ...]]) -> list[Any] | None:
        """``commands`` on a Cluster, grouped by the node of their first key; None when the
        batch must go through redis-py's pipeline instead (see the module docstring)."""
        slots = self.client.nodes_manager
        groups: dict[str, tuple[Any, list[int]]] = {}
        try:
            for i, command in enumerate(commands):
                key = command[3] if command[0] == "EVALSHA" else command[1]
                node = slots.get_node_from_slot(self.client.keyslot(key))
                groups.setdefault(node.name, (node, []))[1].append(i)
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
        try:
            # The connection's own retry policy: reconnect with backoff and send it all
            # again, which every command here is safe to repeat.
            return conn.retry.call_with_retry(lambda: exchange(conn), lambda error: conn.disconnect())  # type: ignore[no-any-return]
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
