"""Fixtures of the fault suite: private servers, worker processes, and figures.

Tests that only need a store take ``store``/``store_url`` (``tests/conftest.py``: the shared
session servers). A test that restarts or stops its store takes ``private_store``: a server
of its own, never the shared one; SQLite has no server to restart, so those tests run on
Redis and PostgreSQL only (docs/reliability.md says "n/a" for SQLite).

``CONVEYOR_FAULTS_FULL=1`` runs the full sizes (``make faults``). Each scenario records its
figures with ``figures.record(...)``; with ``CONVEYOR_FAULTS_REPORT=path`` they are appended
there as JSON lines for ``tests/faults/report.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import WorkerProcesses, open_or_skip, start_server
from tests.servers import PostgresServer, RedisServer

from .faults_app import make_app

SERVER_STORES = ["redis", "postgres"]
FULL = os.environ.get("CONVEYOR_FAULTS_FULL", "").strip() not in ("", "0")
LEASE = 1.0
_counter = itertools.count()


def size(small: int, full: int) -> int:
    return full if FULL else small


def fresh_namespace() -> str:
    return f"f{os.getpid()}_{next(_counter)}"


class Private:
    """A server of the test's own: it may be restarted or halted."""

    def __init__(self, kind: str, server: RedisServer | PostgresServer) -> None:
        self.kind = kind
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.url)


@pytest.fixture(scope="module")
def _private_redis() -> Iterator[RedisServer]:
    server = start_server(lambda: RedisServer(appendonly=True))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _private_postgres() -> Iterator[PostgresServer]:
    server = start_server(PostgresServer)
    yield server
    server.stop()


@pytest.fixture(params=SERVER_STORES)
def private_store(request: pytest.FixtureRequest) -> Private:
    kind = str(request.param)
    server = request.getfixturevalue(f"_private_{kind}")
    if not server.running:
        server.start()
    return Private(kind, server)


# -- worker processes ----------------------------------------------------------------------
class Workers(WorkerProcesses):
    """``conveyor worker tests.faults.faults_app:app`` processes on one store, in a namespace
    of their own."""

    def __init__(
        self, tmp: Path, url: str, lease: float = LEASE, max_queue_length: int | None = None
    ) -> None:
        self.namespace = fresh_namespace()
        self.lease = lease
        super().__init__(
            "tests.faults.faults_app:app",
            open_or_skip(make_app(url, self.namespace, lease, max_queue_length)),
            tmp,
            url,
            CONVEYOR_NAMESPACE=self.namespace,
            CONVEYOR_LEASE=str(lease),
            CONVEYOR_MAX_QUEUE="" if max_queue_length is None else str(max_queue_length),
        )


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
