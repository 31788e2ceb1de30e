"""Real Redis, PostgreSQL and nginx servers for the test suite.

Each class starts the real server binary on a free loopback port, with its data in a fresh
temporary directory, waits until it answers, and tears it down again. Nothing here imports
pytest, redis-py or psycopg: readiness is checked over raw sockets (Redis) or with
``pg_isready``, so the module also works from benchmarks and scripts.

Guarantees:

* Every server runs in its own process group. ``stop()`` ends the whole group and deletes the
  temporary directory.
* Servers still running at interpreter exit are stopped by an ``atexit`` hook. A small watchdog
  process also holds a pipe from this process; if this process dies without running ``atexit``
  (``kill -9``, ``os._exit`` from a timeout plugin, a segfault), the watchdog sees the pipe close
  and kills the leftover process groups and removes their directories.
* ``restart()`` keeps the port and the data directory, so anything the server made durable
  (Redis AOF, PostgreSQL WAL) is still there afterwards. ``restart(hard=True)`` kills the
  process group with SIGKILL first, the way a crash does.
* PostgreSQL refuses to run as root. When this process is root (CI), PostgreSQL runs as the
  system user ``conveyor-pg`` (created on first use; ``nobody`` if that fails).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple, Self, TypeAlias

__all__ = [
    "NginxServer",
    "PostgresServer",
    "RedisCluster",
    "RedisServer",
    "RespError",
    "ServerNotAvailable",
    "TlsFiles",
    "find_nginx",
    "find_postgres_bindir",
    "find_redis_binaries",
    "free_port",
    "resp_command",
]

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PG_USER = "conveyor-pg"

RespValue: TypeAlias = "int | bytes | str | list[RespValue] | None"


class ServerNotAvailable(RuntimeError):
    """The server binary is not installed; the message says which package provides it."""


class RespError(Exception):
    """Redis answered with an error reply (``-ERR ...``)."""


# --------------------------------------------------------------------------- ports & lookups


def free_port(*, also_free: tuple[int, ...] = ()) -> int:
    """A TCP port on 127.0.0.1 that is free right now.

    ``also_free`` lists offsets that must be free too (e.g. ``(10000,)`` for a Redis Cluster
    node, whose bus port is ``port + 10000``). Another process may still take the port before
    the server binds it; the server classes retry with a new port when that happens.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if all(port + off <= 65535 and _port_is_free(port + off) for off in also_free):
            return port
    raise RuntimeError(f"no free port (with offsets {also_free}) found on {HOST}")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def find_redis_binaries() -> tuple[str, str]:
    """Paths of ``redis-server`` and ``redis-cli`` (Valkey's names are accepted too)."""
    server = shutil.which("redis-server") or shutil.which("valkey-server")
    cli = shutil.which("redis-cli") or shutil.which("valkey-cli")
    for path in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if server is None and os.access(path, os.X_OK):
            server = path
    for path in ("/usr/bin/redis-cli", "/usr/local/bin/redis-cli"):
        if cli is None and os.access(path, os.X_OK):
            cli = path
    if server is None or cli is None:
        raise ServerNotAvailable(
            "redis-server/redis-cli not found in PATH; install them with "
            "`apt-get install redis-server` (or run scripts/test.sh, which does)"
        )
    return server, cli


def _pg_version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)


def find_postgres_bindir() -> Path:
    """The directory holding ``initdb``, ``postgres`` and ``pg_ctl``.

    ``$CONVEYOR_PG_BINDIR`` wins, then ``initdb`` found in PATH, then the highest version under
    ``/usr/lib/postgresql/*/bin`` (Debian keeps the server binaries there, outside PATH).
    """
    candidates: list[Path] = []
    if env := os.environ.get("CONVEYOR_PG_BINDIR"):
        candidates.append(Path(env))
    if initdb := shutil.which("initdb"):
        candidates.append(Path(os.path.realpath(initdb)).parent)
    candidates += [
        Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_pg_version_key, reverse=True)
    ]
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise ServerNotAvailable(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found in PATH or "
        "/usr/lib/postgresql/*/bin; install them with `apt-get install postgresql` "
        "(or run scripts/test.sh, which does), or set CONVEYOR_PG_BINDIR"
    )


# --------------------------------------------------------------------------- RESP over a socket


class TlsFiles(NamedTuple):
    """A self-made certificate authority and a server certificate it signed (for 127.0.0.1
    and localhost), made with Debian's openssl by ``make``."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        directory.mkdir(parents=True, exist_ok=True)
        ca, ca_key = directory / "ca.crt", directory / "ca.key"
        cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
        ext = directory / "san.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
             "-days", "2", "-subj", "/CN=conveyor test CA"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
             "-days", "2", "-extfile", ext],
        ]  # fmt: skip
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ServerNotAvailable("openssl not found; apt-get install openssl")
        for step in steps:
            subprocess.run([openssl, *map(str, step)], check=True, capture_output=True, timeout=60)
        for path in (ca, cert, key):
            path.chmod(0o644)  # the servers may run as another user
        return cls(ca, cert, key)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def resp_command(
    port: int, *args: str | bytes | int, host: str = HOST, timeout: float = 5.0, tls: TlsFiles | None = None
) -> RespValue:
    """Send one command to Redis over a fresh connection and return the decoded reply.

    Bulk strings come back as ``bytes``, simple strings as ``str``; an error reply raises
    :class:`RespError`. Enough for PING, CLUSTER INFO and FLUSHALL without redis-py.
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = raw if tls is None else tls.context().wrap_socket(raw, server_hostname=host)
        sock.sendall(b"".join(parts))
        with sock.makefile("rb") as reader:
            return _read_resp(reader)


def _read_resp(reader: IO[bytes]) -> RespValue:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed in the middle of a Redis reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RespError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        length = int(body)
        if length < 0:
            return None
        data = reader.read(length + 2)
        if len(data) != length + 2:
            raise ConnectionError("connection closed in the middle of a Redis reply")
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_resp(reader) for _ in range(count)]
    raise ConnectionError(f"unexpected Redis reply: {line!r}")


# --------------------------------------------------------------------------- cleanup machinery

# The watchdog reads commands on stdin until EOF (this process exited, however it exited),
# then stops every process group still registered and removes every registered directory.
_WATCHDOG_SOURCE = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups, dirs = {}, {}
for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    if cmd == "group":
        pgid, sig = arg.split()
        groups[int(pgid)] = int(sig)
    elif cmd == "ungroup":
        groups.pop(int(arg), None)
    elif cmd == "dir":
        dirs[arg] = True
    elif cmd == "undir":
        dirs.pop(arg, None)
def alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
for pgid, sig in groups.items():
    try:
        os.kill(pgid, sig)
    except OSError:
        pass
deadline = time.monotonic() + 5
while any(alive(p) for p in groups) and time.monotonic() < deadline:
    time.sleep(0.05)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
for path in dirs:
    shutil.rmtree(path, ignore_errors=True)
"""


class _Cleanup:
    """Process-wide registry of live servers, the atexit hook and the watchdog pipe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen[str] | None = None
        self._servers: list[_Server] = []
        atexit.register(self._at_exit)

    def _send(self, line: str) -> None:
        with self._lock:
            if os.getpid() != self._owner_pid:
                return  # a forked child must not touch the parent's watchdog
            if self._watchdog is None:
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", _WATCHDOG_SOURCE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,
                    close_fds=True,
                )
            stdin = self._watchdog.stdin
            assert stdin is not None
            with contextlib.suppress(OSError, ValueError):
                stdin.write(line + "\n")
                stdin.flush()

    def watch_group(self, pgid: int, sig: int) -> None:
        self._send(f"group {pgid} {int(sig)}")

    def unwatch_group(self, pgid: int) -> None:
        self._send(f"ungroup {pgid}")

    def watch_dir(self, path: Path) -> None:
        self._send(f"dir {path}")

    def unwatch_dir(self, path: Path) -> None:
        self._send(f"undir {path}")

    def add(self, server: _Server) -> None:
        with self._lock:
            if server not in self._servers:
                self._servers.append(server)

    def discard(self, server: _Server) -> None:
        with self._lock:
            if server in self._servers:
                self._servers.remove(server)

    def _at_exit(self) -> None:
        if os.getpid() != self._owner_pid:
            return
        with self._lock:
            servers = list(reversed(self._servers))
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        with self._lock:
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(10)


_cleanup = _Cleanup()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of ``pid`` (Linux /proc; empty elsewhere).

    Needed because PostgreSQL backends call setsid(): killing the postmaster's process group
    does not reach them."""
    parents: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()  # skip "pid (comm) "; comm may hold spaces
        parents.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every descendant, wherever their group is."""
    victims = _descendants(pid)
    _kill_group(pid)
    for victim in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _Server:
    """Shared lifecycle: a temp dir, one process group, start/halt/restart/stop."""

    name = "server"
    stop_signal = signal.SIGTERM
    address_in_use: tuple[str, ...] = ("Address already in use",)

    def __init__(self) -> None:
        self.port: int = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()

    # subclasses fill these in
    def _prepare(self, base: Path) -> None:
        """Initialise the data directory (runs once, before the first launch)."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _identity(self) -> _Identity:
        """Working directory, environment and OS account of the server's processes."""
        return _Identity()

    def _log_path(self) -> Path:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _choose_port(self) -> int:
        return free_port()

    # lifecycle
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it answers. After ``halt()`` it comes back on the
        same port with the same data. Starting a running server does nothing."""
        with self._lock:
            if self.running:
                return self
            first = self.dir is None
            if first:
                self.dir = self._make_dir()
                _cleanup.add(self)
                try:
                    self._prepare(self.dir)
                except BaseException:
                    self.stop()
                    raise
            attempts = 5 if first else 1
            for attempt in range(attempts):
                if first:
                    self.port = self._choose_port()
                try:
                    self._launch()
                    return self
                except _PortInUse:
                    if attempt == attempts - 1:
                        if first:
                            self.stop()
                        raise RuntimeError(
                            f"{self.name}: port {self.port} is taken by another process ({attempts} tries)"
                        ) from None
                except BaseException:
                    if first:
                        self.stop()
                    raise
            raise AssertionError("unreachable")

    def halt(self, hard: bool = False) -> None:
        """Stop the server process but keep its port and data for a later ``start()``.

        ``hard=True`` sends SIGKILL to the server and all its processes, like a crash of the
        server (not of the machine: data already handed to the OS survives)."""
        with self._lock:
            proc, self.proc = self.proc, None
            if proc is None:
                return
            if proc.poll() is None:
                if hard:
                    _kill_tree(proc.pid)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(self.stop_signal)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    _kill_tree(proc.pid)
                    proc.wait()
            _kill_group(proc.pid)  # stragglers left in the group
            _cleanup.unwatch_group(proc.pid)

    def restart(self, hard: bool = False) -> Self:
        """``halt(hard)`` then ``start()``: same port, same data directory."""
        with self._lock:
            self.halt(hard=hard)
            return self.start()

    def stop(self) -> None:
        """Stop the server and delete its data. Safe to call twice."""
        with self._lock:
            try:
                self.halt()
            finally:
                if self.dir is not None:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    _cleanup.unwatch_dir(self.dir)
                    self.dir = None
                _cleanup.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {HOST}:{self.port} {state}>"

    # helpers
    def _make_dir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"conveyor-{self.name}-", dir=_temp_base()))
        _cleanup.watch_dir(path)
        return path

    def _launch(self) -> None:
        log = self._log_path()
        with open(log, "ab") as out:
            ident = self._identity()
            proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=ident.cwd,
                env=ident.env,
                user=ident.user,
                group=ident.group,
                extra_groups=ident.extra_groups,
            )
        self.proc = proc
        _cleanup.watch_group(proc.pid, self.stop_signal)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.halt()
                text = _tail(log)
                if any(marker in text for marker in self.address_in_use):
                    raise _PortInUse
                raise RuntimeError(
                    f"{self.name} exited with code {proc.returncode} while starting "
                    f"on port {self.port}; last log lines:\n{text}"
                )
            if self._is_ready():
                return
            time.sleep(0.02)
        self.halt(hard=True)
        raise RuntimeError(
            f"{self.name} did not become ready on port {self.port} within {START_TIMEOUT:.0f} s;"
            f" last log lines:\n{_tail(log)}"
        )


class _PortInUse(Exception):
    pass


class _Identity(NamedTuple):
    cwd: str | None = None
    env: dict[str, str] | None = None
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def _temp_base() -> str:
    """A temp base every user can traverse (PostgreSQL may run as another user)."""
    base = tempfile.gettempdir()
    if os.geteuid() == 0:
        path = Path(base).resolve()
        for part in (path, *path.parents):
            if not part.stat().st_mode & 0o001:
                return "/tmp"
    return base


# --------------------------------------------------------------------------- Redis


class RedisServer(_Server):
    """One ``redis-server`` on a free loopback port.

    With ``appendonly=True`` (the default) every write is appended to the AOF and fsynced
    before the reply, so acknowledged writes survive ``restart()`` and ``restart(hard=True)``.
    RDB snapshots are off. ``extra_args`` are appended to the command line, e.g.
    ``["--maxmemory", "10mb"]``.
    """

    name = "redis"

    def __init__(
        self,
        appendonly: bool = True,
        extra_args: list[str] | None = None,
        tls: TlsFiles | None = None,
        replica_of: int | None = None,
    ) -> None:
        super().__init__()
        self.appendonly = appendonly
        self.extra_args = list(extra_args or [])
        #: TLS only (no plain port), with certificates from ``tls``; replication over TLS too.
        self.tls = tls
        #: Port of the master this server replicates (``--replicaof``), if any.
        self.replica_of = replica_of
        self._server_bin, self._cli_bin = find_redis_binaries()

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://{HOST}:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://{HOST}:{self.port}/0"

    @property
    def host(self) -> str:
        return HOST

    def command(self, *args: str | bytes | int) -> RespValue:
        """Run one command over a raw socket, e.g. ``server.command("FLUSHALL")``."""
        return resp_command(self.port, *args, tls=self.tls)

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "no",
            "--tls-replication", "yes",
        ]  # fmt: skip

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def _log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "redis.log"

    def _command(self) -> list[str]:
        assert self.dir is not None
        # The log file is also the process's stdout, which catches errors printed before
        # redis-server opens its log (bad arguments); both writers append.
        replica = ["--replicaof", HOST, str(self.replica_of)] if self.replica_of else []
        return [
            self._server_bin,
            *self._tls_args(),
            *replica,
            "--bind", HOST,
            "--protected-mode", "no",
            "--daemonize", "no",
            "--dir", str(self.dir),
            "--logfile", str(self._log_path()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            # A replica (or a returning old master) syncs at once, not after 5 s.
            "--repl-diskless-sync-delay", "0",
            *self.extra_args,
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except (OSError, RespError):  # refused, or -LOADING while the AOF is replayed
            return False


class RedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on free loopback ports.

    ``url`` points at the first node; a cluster client discovers the rest. ``nodes`` lists
    ``(host, port)`` of every node. Nodes keep no data on disk (no AOF, no RDB).
    """

    def __init__(
        self, masters: int = 3, replicas: int = 0, tls: TlsFiles | None = None, node_timeout_ms: int = 5000
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.masters = masters
        #: Replicas per master (a master killed is then replaced by its replica).
        self.replicas = replicas
        self.tls = tls
        self.node_timeout_ms = node_timeout_ms
        self.servers: list[RedisServer] = []
        self._cli_bin = find_redis_binaries()[1]

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [(HOST, s.port) for s in self.servers]

    @property
    def url(self) -> str:
        if not self.servers:
            raise RuntimeError("RedisCluster is not started")
        if self.tls is not None:
            hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
            return f"rediss+cluster://{hosts}?ssl_ca_certs={self.tls.ca}"
        return self.servers[0].url

    @property
    def port(self) -> int:
        return self.servers[0].port if self.servers else 0

    def start(self) -> Self:
        if self.servers:
            return self
        try:
            for _ in range(self.masters * (1 + self.replicas)):
                node = _ClusterNode(self.tls, self.node_timeout_ms)
                self.servers.append(node)
                node.start()
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        addresses = [f"{HOST}:{s.port}" for s in self.servers]
        tls = [] if self.tls is None else ["--tls", "--cacert", str(self.tls.ca)]
        result = subprocess.run(
            [self._cli_bin, *tls, "--cluster", "create", *addresses,
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if all(self._node_ok(s) for s in self.servers):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Redis Cluster on {addresses} did not reach cluster_state:ok")

    def _node_ok(self, server: RedisServer) -> bool:
        try:
            info = server.command("CLUSTER", "INFO")
        except (OSError, RespError):
            return False
        if not isinstance(info, bytes):
            return False
        fields = dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_slots_ok") == "16384"
            and fields.get("cluster_known_nodes") == str(self.masters * (1 + self.replicas))
        )

    def masters_now(self) -> list[RedisServer]:
        """The running nodes that are masters at this moment (after failovers too)."""
        found: list[RedisServer] = []
        for server in self.servers:
            if not server.running:
                continue
            with contextlib.suppress(OSError, RespError):
                info = server.command("ROLE")
                if isinstance(info, list) and info and info[0] == b"master":
                    found.append(server)
        return found

    def wait_promoted(self, masters: int, timeout: float = START_TIMEOUT) -> None:
        """Until ``masters`` running nodes are masters: after a master is killed, until its
        replica took over. ``wait_ok`` alone is not enough: the other nodes report
        cluster_state:ok until they agree the dead master failed (node timeout), and a
        master restarted before its replica took over comes back empty (no persistence here)
        and the replica copies the empty data set, losing every write it had confirmed."""
        deadline = time.monotonic() + timeout
        while len(self.masters_now()) < masters:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over: {len(self.masters_now())} of {masters} masters")
            time.sleep(0.05)

    def wait_ok(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node reports cluster_state:ok (after a failover)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for server in self.servers:
                if server.running:
                    with contextlib.suppress(OSError, RespError):
                        info = server.command("CLUSTER", "INFO")
                        states.append(isinstance(info, bytes) and b"cluster_state:ok" in info)
            if states and all(states):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not come back to cluster_state:ok")

    def cluster_info(self, index: int = 0) -> dict[str, str]:
        """``CLUSTER INFO`` of one node as a dict."""
        info = self.servers[index].command("CLUSTER", "INFO")
        assert isinstance(info, bytes)
        return dict(line.split(":", 1) for line in info.decode().splitlines() if ":" in line)

    def flushall(self) -> None:
        for server in self.servers:
            server.flushall()

    def stop(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisCluster {self.nodes}>"


class _ClusterNode(RedisServer):
    name = "redis-cluster"

    def __init__(self, tls: TlsFiles | None = None, node_timeout_ms: int = 5000) -> None:
        super().__init__(
            appendonly=False,
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                *([] if tls is None else ["--tls-cluster", "yes"]),
            ],
            tls=tls,
        )  # fmt: skip

    def _choose_port(self) -> int:
        return free_port(also_free=(10000,))  # the cluster bus listens on port + 10000


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: None (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(PG_USER)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--user-group",
             "--shell", "/usr/sbin/nologin", PG_USER],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
    try:
        return pwd.getpwnam(PG_USER)  # also covers losing a useradd race to another process
    except KeyError:
        return pwd.getpwnam("nobody")


class PostgresServer(_Server):
    """A private PostgreSQL cluster (``initdb``) on a free loopback port.

    Superuser ``postgres``, trust authentication, listening on 127.0.0.1 only, its Unix socket
    inside the temp dir. By default ``fsync=off``: committed data survives ``restart()`` and
    ``restart(hard=True)`` (the OS still has it) but not a crash of the machine. Pass
    ``durable=True`` to keep fsync on. ``settings`` adds ``-c name=value`` options.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit
    address_in_use = ("could not bind", "Address already in use")

    def __init__(self, durable: bool = False, settings: dict[str, str] | None = None) -> None:
        super().__init__()
        self.durable = durable
        self.settings = {"max_connections": "200", **(settings or {})}
        if not durable:
            self.settings = {"fsync": "off", "full_page_writes": "off", **self.settings}
        self.bindir = find_postgres_bindir()
        self.user = "postgres"
        self._os_user: pwd.struct_passwd | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        self.psql(f"CREATE DATABASE {_quote_ident(name)}")
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with ``psql`` as the superuser and return its unaligned output."""
        psql = self.bindir / "psql"
        binary = str(psql) if psql.exists() else shutil.which("psql")
        if binary is None:
            raise ServerNotAvailable("psql not found; install postgresql-client")
        result = subprocess.run(
            [binary, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", dbname, "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_pg_env(),
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {sql!r}\n{result.stderr.strip()}")
        return result.stdout

    def _prepare(self, base: Path) -> None:
        self._os_user = _postgres_user()
        (base / "sock").mkdir()
        if self._os_user is not None:
            for path in (base, base / "sock"):
                os.chown(path, self._os_user.pw_uid, self._os_user.pw_gid)
        log = base / "initdb.log"
        ident = self._identity()
        with open(log, "wb") as out:
            result = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(base / "data"), "-U", self.user,
                 "--auth=trust", "--encoding=UTF8", "--locale=C",
                 *([] if self.durable else ["--no-sync"])],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                cwd=ident.cwd,
                env=ident.env,
                user=ident.user,
                group=ident.group,
                extra_groups=ident.extra_groups,
            )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{_tail(log)}")

    def _identity(self) -> _Identity:
        assert self.dir is not None
        env = _pg_env()
        account = self._os_user
        if account is None:
            return _Identity(cwd=str(self.dir), env=env)
        env.update(HOME=str(self.dir), USER=account.pw_name, LOGNAME=account.pw_name)
        # extra_groups=[] drops root's supplementary groups along with its uid and gid.
        return _Identity(
            cwd=str(self.dir), env=env, user=account.pw_uid, group=account.pw_gid, extra_groups=[]
        )

    def _log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    def _command(self) -> list[str]:
        assert self.dir is not None
        options = [f"-c{name}={value}" for name, value in self.settings.items()]
        return [
            str(self.bindir / "postgres"),
            "-D", str(self.dir / "data"),
            "-p", str(self.port),
            "-h", HOST,
            "-k", str(self.dir / "sock"),
            *options,
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        assert self.dir is not None
        # postmaster.pid's 8th line turns "ready" once connections are accepted (PG >= 10).
        try:
            lines = (self.dir / "data" / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        pg_isready = self.bindir / "pg_isready"
        if pg_isready.exists():
            result = subprocess.run(
                [str(pg_isready), "-q", "-h", HOST, "-p", str(self.port), "-U", self.user,
                 "-d", "postgres", "-t", "5"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=_pg_env(),
                timeout=30,
            )  # fmt: skip
            return result.returncode == 0
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        return True


def _pg_env() -> dict[str, str]:
    """The environment without PG* variables that could point tools elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- nginx


def find_nginx() -> str:
    """Path of Debian's ``nginx`` (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if found is None and os.access(path, os.X_OK):
            found = path
    if found is None:
        raise ServerNotAvailable(
            "nginx not found; install it with `apt-get install nginx` (or run scripts/test.sh, which does)"
        )
    return found


class NginxServer(_Server):
    """Debian's nginx on a free loopback port as a reverse proxy to ``upstream``, configured
    the way a default site is: ``location / { proxy_pass ...; }`` and nothing more, so it sends
    no ``X-Forwarded-*`` header and rewrites ``Host`` to the upstream's address. ``locations``
    replaces that block with one of the caller's (``{upstream}`` is filled in)."""

    name = "nginx"
    address_in_use = ("Address already in use",)
    stop_signal = signal.SIGQUIT  # graceful

    def __init__(self, upstream: str, locations: str | None = None, port: int = 0) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.locations = locations or "location / { proxy_pass {upstream}; }"
        self.fixed_port = port
        self._bin = find_nginx()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _choose_port(self) -> int:
        return self.fixed_port or free_port()

    def _log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "error.log"

    def _command(self) -> list[str]:
        assert self.dir is not None
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(exist_ok=True)
        locations = self.locations.replace("{upstream}", self.upstream)
        temp = " ".join(
            f"{kind}_temp_path {self.dir / sub};"
            for kind, sub in (
                ("client_body", "body"),
                ("proxy", "proxy"),
                ("fastcgi", "fastcgi"),
                ("uwsgi", "uwsgi"),
                ("scgi", "scgi"),
            )
        )
        user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"""{user}
daemon off;
worker_processes 1;
pid {self.dir / "nginx.pid"};
error_log {self._log_path()} warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    {temp}
    server {{
        listen {HOST}:{self.port};
        {locations}
    }}
}}
"""
        )
        return [self._bin, "-p", str(self.dir), "-c", str(conf), "-e", str(self._log_path())]

    def _is_ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False
