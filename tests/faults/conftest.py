"""Fixtures of the fault suite: a real store of each kind, worker processes, and figures.

Stores are the shared session servers unless a test restarts or stops its store: those get
a private server (``private_store``), never the shared one. A store whose module is missing
is skipped, as in the conformance suite.

``CONVEYOR_FAULTS_FULL=1`` runs the full sizes (``make faults``). Each scenario records its
figures with ``figures.record(...)``; with ``CONVEYOR_FAULTS_REPORT=path`` they are appended
there as JSON lines for ``tests/faults/report.py``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError
from tests.servers import PostgresServer, RedisServer, ServerNotAvailable

from .faults_app import make_app

ROOT = Path(__file__).resolve().parents[2]
STORES = ["sqlite", "redis", "postgres"]
FULL = os.environ.get("CONVEYOR_FAULTS_FULL", "").strip() not in ("", "0")
LEASE = 1.0
_counter = itertools.count()


def size(small: int, full: int) -> int:
    return full if FULL else small


def fresh_namespace() -> str:
    return f"f{os.getpid()}_{next(_counter)}"


def open_or_skip(app: Conveyor) -> Conveyor:
    """Open the store now, so that a store module not written yet skips the test."""
    try:
        app.backend  # noqa: B018
    except ConfigurationError as exc:
        if "needs the" in str(exc):
            pytest.skip(str(exc))
        raise
    return app


def _start_or_skip(server: Any) -> Any:
    try:
        return server.start()
    except ServerNotAvailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A shared real store of each kind (never restarted here)."""
    if store == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    if store == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return str(request.getfixturevalue("postgres_server").url)


class Private:
    """A store of the test's own: it may be restarted, halted, or (SQLite) reopened."""

    def __init__(self, kind: str, url: str, server: RedisServer | PostgresServer | None) -> None:
        self.kind = kind
        self.url = url
        self.server = server


@pytest.fixture(scope="module")
def _private_redis() -> Iterator[RedisServer]:
    server = _start_or_skip(RedisServer(appendonly=True))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _private_postgres() -> Iterator[PostgresServer]:
    server = _start_or_skip(PostgresServer())
    yield server
    server.stop()


@pytest.fixture
def private_store(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Private:
    if store == "sqlite":
        return Private(store, f"sqlite:///{tmp_path}/jobs.db", None)
    fixture = "_private_redis" if store == "redis" else "_private_postgres"
    server = request.getfixturevalue(fixture)
    if not server.running:
        server.start()
    return Private(store, str(server.url), server)


# -- worker processes ----------------------------------------------------------------------
class Workers:
    """``conveyor worker tests.faults.faults_app:app`` processes on one store and namespace."""

    def __init__(
        self, tmp: Path, url: str, lease: float = LEASE, max_queue_length: int | None = None
    ) -> None:
        self.tmp = tmp
        self.url = url
        self.namespace = fresh_namespace()
        self.lease = lease
        self.run_log = tmp / "runs.log"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "CONVEYOR_URL": url,
            "CONVEYOR_NAMESPACE": self.namespace,
            "CONVEYOR_RUN_LOG": str(self.run_log),
            "CONVEYOR_LEASE": str(lease),
            "CONVEYOR_MAX_QUEUE": "" if max_queue_length is None else str(max_queue_length),
            "PYTHONPATH": str(ROOT),
        }
        self.app = open_or_skip(make_app(url, self.namespace, lease, max_queue_length))

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "tests.faults.faults_app:app", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 the worker and everything in its process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker-*.log")))

    def runs(self) -> list[tuple[str, int]]:
        """(tag, pid) of every run so far."""
        if not self.run_log.exists():
            return []
        out: list[tuple[str, int]] = []
        for line in self.run_log.read_text().splitlines():
            tag, _, pid = line.partition(" ")
            out.append((tag, int(pid or 0)))
        return out

    def counts(self) -> Counter[str]:
        return Counter(tag for tag, _ in self.runs())

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> float:
        """Poll until ``condition()``; returns the seconds it took."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"timed out after {timeout} s {what}; worker logs:\n{self.logs()[-6000:]}"
                )
            time.sleep(0.05)
        return time.monotonic() - start

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.app.close()


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def factory(url: str, **options: Any) -> Workers:
        workers = Workers(tmp_path, url, **options)
        made.append(workers)
        return workers

    yield factory
    for workers in made:
        workers.close()
