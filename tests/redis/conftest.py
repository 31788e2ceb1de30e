"""Fixtures of the Redis store's own tests.

``store_url`` is overridden here to point at the session's 3-master Redis Cluster, so the
conformance tests imported by ``test_cluster_conformance.py`` run unchanged on Cluster, with
the conformance suite's own ``make_app`` and ``app`` fixtures.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import app, make_app
from tests.servers import RedisCluster

__all__ = ["app", "make_app", "store_url"]


@pytest.fixture
def store_url(redis_cluster: RedisCluster) -> str:
    host, port = redis_cluster.nodes[0]
    return f"redis+cluster://{host}:{port}"
