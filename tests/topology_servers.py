"""Production topologies for the test suite, built from tests/servers.py's real servers: a
Redis Sentinel trio over a master and two replicas, and PgBouncer (Debian's) in transaction
mode in front of a PostgreSQL server. TLS comes from ``TlsFiles`` (a self-made CA).

Like tests/servers.py this imports neither pytest nor a driver: readiness is checked over raw
sockets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers import (
    HOST,
    START_TIMEOUT,
    PostgresServer,
    RedisServer,
    RespError,
    ServerNotAvailable,
    TlsFiles,
    _Identity,
    _postgres_user,
    _Server,
    find_redis_binaries,
    resp_command,
)

SERVICE = "mymaster"


class RedisSentinel(_Server):
    """One Sentinel (``redis-server --sentinel``) watching the master on ``master_port``."""

    name = "redis-sentinel"

    def __init__(self, master_port: int, tls: TlsFiles | None = None, down_after_ms: int = 1000) -> None:
        super().__init__()
        self.master_port = master_port
        self.tls = tls
        self.down_after_ms = down_after_ms
        self._server_bin = find_redis_binaries()[0]

    def command(self, *args: str | bytes | int) -> object:
        return resp_command(self.port, *args, tls=self.tls)

    def _log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "sentinel.log"

    def _command(self) -> list[str]:
        assert self.dir is not None
        conf = self.dir / "sentinel.conf"
        if not conf.exists():  # Sentinel rewrites it as it learns: kept across restarts
            listen = [f"port {self.port}"]
            if self.tls is not None:
                listen = [
                    "port 0",
                    f"tls-port {self.port}",
                    f"tls-cert-file {self.tls.cert}",
                    f"tls-key-file {self.tls.key}",
                    f"tls-ca-cert-file {self.tls.ca}",
                    "tls-auth-clients no",
                    "tls-replication yes",  # Sentinel talks TLS to the Redis servers too
                ]
            conf.write_text(
                "\n".join(
                    [
                        *listen,
                        f"bind {HOST}",
                        "daemonize no",
                        f"dir {self.dir}",
                        f"logfile {self._log_path()}",
                        f"sentinel monitor {SERVICE} {HOST} {self.master_port} 2",
                        f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
                        f"sentinel failover-timeout {SERVICE} 10000",
                        f"sentinel parallel-syncs {SERVICE} 2",
                    ]
                )
                + "\n"
            )
        return [self._server_bin, str(conf), "--sentinel"]

    def _is_ready(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except (OSError, RespError):
            return False


class SentinelGroup:
    """A master, two replicas and three Sentinels (quorum 2): the smallest deployment that
    fails over by itself. ``url`` is the ``redis+sentinel://`` (``rediss+sentinel://`` with
    TLS) URL of the service; ``failover()`` asks for one, ``kill_master()`` kill -9s it."""

    def __init__(self, tls: TlsFiles | None = None, appendonly: bool = True) -> None:
        self.tls = tls
        self.appendonly = appendonly
        self.redis: list[RedisServer] = []
        self.sentinels: list[RedisSentinel] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        if self.tls is not None:
            return f"rediss+sentinel://{hosts}/{SERVICE}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> Self:
        try:
            master = RedisServer(appendonly=self.appendonly, tls=self.tls).start()
            self.redis.append(master)
            for _ in range(2):
                self.redis.append(
                    RedisServer(appendonly=self.appendonly, tls=self.tls, replica_of=master.port).start()
                )
            for _ in range(3):
                self.sentinels.append(RedisSentinel(master.port, self.tls).start())
            self._wait(lambda: self._replicas_in_sync(master) and self._sentinels_agree(master.port))
        except BaseException:
            self.stop()
            raise
        return self

    def master_port(self) -> int:
        """The master's port, as the first Sentinel that answers says."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with contextlib.suppress(OSError, RespError):
                reply = sentinel.command("SENTINEL", "get-master-addr-by-name", SERVICE)
                if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
                    return int(reply[1])
        raise RuntimeError("no Sentinel names a master")

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.redis if s.port == port)

    def failover(self) -> RedisServer:
        """``SENTINEL FAILOVER``; returns the new master once it accepts writes."""
        old = self.master_port()
        self.sentinels[0].command("SENTINEL", "FAILOVER", SERVICE)
        return self._wait_new_master(old)

    def kill_master(self) -> RedisServer:
        """kill -9 of the master; returns the replica the Sentinels promoted. The old master
        is started again afterwards (as it would be by its supervisor) and rejoins as a
        replica, losing whatever it had that the new master has not."""
        old = self.master()
        old.halt(hard=True)
        new = self._wait_new_master(old.port)
        old.start()
        return new

    def _wait_new_master(self, old_port: int) -> RedisServer:
        def promoted() -> bool:
            port = self.master_port()
            if port == old_port:
                return False
            role = resp_command(port, "ROLE", tls=self.tls)
            return isinstance(role, list) and role[0] == b"master"

        self._wait(promoted)
        new = self.master()
        self._wait(lambda: all(self._names(s) == new.port for s in self.sentinels if s.running))
        return new

    def _names(self, sentinel: RedisSentinel) -> int:
        reply = sentinel.command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return int(reply[1]) if isinstance(reply, list) and isinstance(reply[1], bytes) else 0

    def _replicas_in_sync(self, master: RedisServer) -> bool:
        info = master.command("INFO", "replication")
        return isinstance(info, bytes) and b"connected_slaves:2" in info

    def _sentinels_agree(self, port: int) -> bool:
        for sentinel in self.sentinels:
            reply = sentinel.command("SENTINEL", "get-master-addr-by-name", SERVICE)
            if not (isinstance(reply, list) and len(reply) == 2 and reply[1] == str(port).encode()):
                return False
            replicas = sentinel.command("SENTINEL", "replicas", SERVICE)
            if not (isinstance(replicas, list) and len(replicas) == 2):
                return False
            for replica in replicas:
                fields = _fields(replica)
                if fields.get("flags") != "slave" or fields.get("master-link-status") != "ok":
                    return False
            master = _fields(sentinel.command("SENTINEL", "master", SERVICE))
            if master.get("num-other-sentinels") != "2":
                return False
        return True

    def _wait(self, done: object, timeout: float = START_TIMEOUT) -> None:
        assert callable(done)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RespError, RuntimeError, StopIteration):
                if done():
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"Sentinel group: {getattr(done, '__name__', 'condition')} not reached in {timeout} s"
        )

    def stop(self) -> None:
        for server in [*self.sentinels, *self.redis]:
            server.stop()
        self.sentinels, self.redis = [], []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _fields(reply: object) -> dict[str, str]:
    """A Sentinel reply of alternating names and values, as a dict."""
    if not isinstance(reply, list):
        return {}
    items = [v.decode() if isinstance(v, bytes) else str(v) for v in reply]
    return dict(zip(items[::2], items[1::2], strict=False))


def find_pgbouncer() -> str:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ServerNotAvailable("pgbouncer not found; apt-get install pgbouncer (scripts/test.sh does)")


class PgBouncer(_Server):
    """Debian's PgBouncer in ``pool_mode`` (transaction by default) in front of
    ``postgres``, trusting the users in ``users`` (PostgreSQL runs with trust auth too)."""

    name = "pgbouncer"
    stop_signal = signal.SIGINT  # "safe" shutdown

    def __init__(
        self, postgres: PostgresServer, users: tuple[str, ...] = ("postgres",), pool_mode: str = "transaction"
    ) -> None:
        super().__init__()
        self.postgres = postgres
        self.users = users
        self.pool_mode = pool_mode
        self._binary = find_pgbouncer()
        self._os_user = _postgres_user()  # PgBouncer refuses to run as root

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@{HOST}:{self.port}/{dbname}"

    def _prepare(self, base: Path) -> None:
        if self._os_user is not None:
            # PgBouncer writes its own log too: the file must be its account's.
            (base / "pgbouncer.log").touch()
            for path in (base, base / "pgbouncer.log"):
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)

    def _identity(self) -> _Identity:
        assert self.dir is not None
        account = self._os_user
        if account is None:
            return _Identity(cwd=str(self.dir))
        return _Identity(cwd=str(self.dir), user=account.pw_uid, group=account.pw_gid, extra_groups=[])

    def _log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "pgbouncer.log"

    def _command(self) -> list[str]:
        assert self.dir is not None
        users = self.dir / "users.txt"
        users.write_text("".join(f'"{u}" ""\n' for u in self.users))
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            f"""[databases]
* = host={HOST} port={self.postgres.port}

[pgbouncer]
listen_addr = {HOST}
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = {self.pool_mode}
max_client_conn = 400
default_pool_size = 8
ignore_startup_parameters = extra_float_digits,options
logfile = {self._log_path()}
"""
        )
        if self._os_user is not None:
            for path in (users, ini):
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)
        return [self._binary, str(ini)]

    def _is_ready(self) -> bool:
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        return True
