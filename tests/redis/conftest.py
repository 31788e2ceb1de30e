"""Fixtures of the Redis store's own tests.

``store_url`` is overridden here to point at the session's 3-master Redis Cluster, so the
conformance tests imported by ``test_cluster_conformance.py`` run unchanged on Cluster, with
the conformance suite's own ``make_app`` and ``app`` fixtures.
"""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.backends.redis.wire import Wire
from tests.conformance.conftest import app, make_app
from tests.servers import RedisCluster

__all__ = ["app", "make_app", "sent", "store_url"]


@pytest.fixture
def store_url(redis_cluster: RedisCluster) -> str:
    host, port = redis_cluster.nodes[0]
    return f"redis+cluster://{host}:{port}"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every command the store writes to a connection of its own."""
    commands: list[tuple[Any, ...]] = []
    write = Wire.write

    def record(conn: Any, batch: Any) -> None:
        commands.extend(batch)
        write(conn, batch)

    monkeypatch.setattr(Wire, "write", staticmethod(record))
    return commands
