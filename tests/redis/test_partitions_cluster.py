"""A hot queue over a whole Redis Cluster: ``app.queue("hot", partitions=n)`` puts its jobs
on every master of the session's 3-master cluster, and one worker of the queue drains them
all, each once (issue 19 §5). bench/partitions_probe.py measures the same with figures."""

from __future__ import annotations

import os
from collections import Counter

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.partitions import shards
from tests.servers import RedisCluster


def _masters(backend: RedisBackend, names: list[str]) -> Counter[str]:
    """How many of ``names`` (queues) each master holds, by the slot of their keys."""
    held: Counter[str] = Counter()
    for name in names:
        node = backend.client.get_node_from_key(backend.keys.prefix(name) + "prios")
        held[node.name] += 1
    return held


def test_a_partitioned_queue_spreads_over_every_master_and_drains_once(redis_cluster: RedisCluster) -> None:
    host, port = redis_cluster.nodes[0]
    app = Conveyor(f"redis+cluster://{host}:{port}", namespace=f"hot{os.getpid()}")
    ran: list[int] = []

    @app.task(queue="hot", name="t.hot")
    def hot(n: int) -> int:
        ran.append(n)
        return n

    try:
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        alone = _masters(backend, ["hot"])
        assert app.queue("hot", partitions=12) == 12
        spread = _masters(backend, shards("hot", 12))
        assert len(alone) == 1 and len(spread) == len(redis_cluster.nodes), spread

        app.enqueue_many([hot.job(n) for n in range(600)])
        waiting = Counter[str]()
        for name in shards("hot", 12):
            node = backend.client.get_node_from_key(backend.keys.prefix(name) + "prios")
            waiting[node.name] += int(backend.client.zcard(backend.keys.prefix(name) + "w:0"))
        assert sum(waiting.values()) == 600 and len(waiting) == len(redis_cluster.nodes), waiting
        assert app.stats().queues == {"hot": {"pending": 600}}

        assert app.worker(queues=["hot"], concurrency=8, burst=True).run() == 0
        assert sorted(ran) == list(range(600))
        assert app.stats().queues["hot"] == {"completed": 600}
    finally:
        app.close()
