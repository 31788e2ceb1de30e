"""A worker's start: its first claim goes out before anything else it has to write."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.job import WorkerInfo


def test_the_first_claim_goes_before_the_registration(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    release = threading.Event()

    @app.task(name="t.hold")
    def hold() -> None:
        release.wait(20)

    hold.enqueue()
    backend = app.backend
    fetch, heartbeat = backend.fetch, backend.heartbeat
    calls: list[str] = []

    def first_fetch(queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float) -> Any:
        calls.append("fetch")
        return fetch(queues, limit, worker, lease, now)

    def first_heartbeat(info: WorkerInfo, lease: float, now: float) -> None:
        calls.append("heartbeat")
        heartbeat(info, lease, now)

    backend.fetch = first_fetch  # type: ignore[method-assign]
    backend.heartbeat = first_heartbeat  # type: ignore[method-assign]
    worker = app.worker(concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        # The registration follows the first claim's answer, while the job runs.
        for _ in range(500):
            if app.workers():
                break
            threading.Event().wait(0.02)
        assert [w.id for w in app.workers()] == [worker.id]
        assert calls[0] == "fetch" and "heartbeat" in calls, calls
    finally:
        release.set()
        worker.stop()
        thread.join(10)
        app.close()
    assert not thread.is_alive()
    assert app.workers() == []  # (unregistered as it stopped)
