"""Session-wide real servers: ``redis_server``, ``redis_cluster``, ``postgres_server``.

Each starts on first use and is stopped at the end of the session. A missing server binary
skips the tests that need it on a developer machine, and fails them when ``CI`` is set, so CI
can never pass by silently skipping a store. Tests that restart or kill a server should start
their own instance (``with RedisServer() as server: ...``) rather than disturb the shared one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.servers import PostgresServer, RedisCluster, RedisServer, ServerNotAvailable

_S = TypeVar("_S", RedisServer, RedisCluster, PostgresServer)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _start(factory: Callable[[], _S]) -> _S:
    try:
        return factory().start()
    except ServerNotAvailable as exc:
        if _in_ci():
            pytest.fail(f"{exc} [CI is set: a missing server is an error, not a skip]", False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server with AOF (fsync always) for the whole session; ``.url``, ``.port``."""
    server = _start(RedisServer)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster for the whole session; ``.url`` (first node), ``.nodes``."""
    cluster = _start(RedisCluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server (fsync off) for the whole session; ``.url``, ``.create_database()``."""
    server = _start(PostgresServer)
    try:
        yield server
    finally:
        server.stop()
