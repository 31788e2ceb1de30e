"""Batches on Redis beyond the conformance suite: a forward or a callback's enqueue cut short
by a crash is finished by housekeeping, once (backends/redis/batches.py), on one server and on
Cluster."""

from __future__ import annotations

import os
import time

import pytest

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend


@pytest.mark.parametrize("topology", ["single", "cluster"])
def test_a_forward_cut_short_is_finished_by_housekeeping(
    topology: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if topology == "single":
        url = str(request.getfixturevalue("redis_server").url)
    else:
        host, port = request.getfixturevalue("redis_cluster").nodes[0]
        url = f"redis+cluster://{host}:{port}"
    app = Conveyor(url, namespace=f"bf{os.getpid()}{topology}")
    try:
        task = app.task(name="t.noop")(lambda n: None)
        batch = app.batch([task.job(i) for i in range(5)], on_complete=task.job(-1))
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        # The worker dies right after its acknowledgement: nothing forwarded.
        with monkeypatch.context() as m:
            m.setattr(RedisBackend, "batch_calls", lambda self, queues: ([], []))
            m.setattr(RedisBackend, "batches_acknowledged", lambda self, *args: None)
            got = backend.fetch(None, 10, "w", 30, time.time())
            backend.complete([(r.id, None) for r in got], "w", time.time())
        assert batch.status()["completed"] == 0
        # Housekeeping forwards; this time the process dies between the decision and the
        # callback's enqueue.
        with monkeypatch.context() as m:
            m.setattr(RedisBackend, "fire_callbacks", lambda self, entries=None: None)
            backend.recover(time.time(), 0)
        assert batch.status()["completed"] == 5 and batch.refresh().fired["complete"]
        assert app.get_job(batch.callbacks["complete"]) is None  # decided, not yet enqueued
        # The next housekeeping pass enqueues it; the ones after add nothing.
        for _ in range(3):
            backend.recover(time.time(), 0)
            backend.forward_batches(["default"])
        callback = app.get_job(batch.callbacks["complete"])
        assert callback is not None and callback.state == "pending"
        assert [j.id for j in app.jobs(state="pending")] == [callback.id]
        assert batch.status()["completed"] == 5
    finally:
        app.close()
