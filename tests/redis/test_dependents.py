"""Redis: an acknowledgement that completes many parents of one job tells that job once, and
marks the parents told in one call per queue (a call per parent and per edge made 1,000
parents of one job 90 ms an acknowledgement; then 23)."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.wire import SCRIPTS
from tests.servers import RedisServer

PARENTS = 300


def test_completing_many_parents_tells_their_child_in_one_call(
    redis_server: RedisServer, sent: list[tuple[Any, ...]]
) -> None:
    app = Conveyor(redis_server.url, namespace=f"fan{os.getpid()}")

    @app.task(name="t.step")
    def step(n: int) -> int:
        return n

    try:
        # Scripts loaded first (a script's first call is sent again after NOSCRIPT).
        warm = step.using(queue="q1").enqueue(0)
        step.using(queue="q2", after=[warm]).enqueue(0)
        [first] = app.backend.fetch(["q1"], 1, "w1", 30.0, time.time())
        app.backend.complete([(first.id, None)], "w1", time.time())
        parents = [
            job.id for job in app.enqueue_many([step.using(queue="q1").job(n) for n in range(PARENTS)])
        ]
        child = step.using(queue="q2", after=parents).enqueue(-1)
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        claimed = backend.fetch(["q1"], PARENTS, "w1", 30.0, time.time())
        assert len(claimed) == PARENTS
        by_sha = {backend._wire.sha(name): name for name in SCRIPTS}
        sent.clear()
        backend.complete([(r.id, None) for r in claimed], "w1", time.time())
        calls = Counter(by_sha[c[1]] for c in sent if c[0] == "EVALSHA")
        assert calls["deps_release"] == 1, calls
        assert calls["deps_done"] == 1, calls
        found = app.get_job(child.id)
        assert found is not None and found.state == "pending"
    finally:
        app.close()
