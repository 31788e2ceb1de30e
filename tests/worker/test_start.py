"""A worker's start: it registers, then claims, and its first recovery waits for that claim."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.job import WorkerInfo


def test_the_first_recovery_follows_the_first_claim(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")

    @app.task(name="t.noop")
    def noop() -> None: ...

    noop.enqueue()
    backend = app.backend
    fetch, heartbeat, recover = backend.fetch, backend.heartbeat, backend.recover
    calls: list[str] = []

    def slow_fetch(queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float) -> Any:
        calls.append("fetch sent")
        if calls.count("fetch sent") == 1:
            time.sleep(0.3)  # (a slow first answer: the recovery would go out meanwhile)
        found = fetch(queues, limit, worker, lease, now)
        calls.append("fetch answered")
        return found

    def beat(info: WorkerInfo, lease: float, now: float) -> None:
        calls.append("heartbeat")
        heartbeat(info, lease, now)

    def recovery(now: float, completed_before: float) -> int:
        calls.append("recover")
        return recover(now, completed_before)

    backend.fetch = slow_fetch  # type: ignore[method-assign]
    backend.heartbeat = beat  # type: ignore[method-assign]
    backend.recover = recovery  # type: ignore[method-assign]
    worker = app.worker(concurrency=1, burst=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "burst worker did not finish"
    assert app.stats().queues["default"] == {"completed": 1}
    # Registered first (a store that cannot be reached fails the start), then the first
    # claim, and only once it is answered the first recovery: beside it, it took the store
    # from the claim.
    assert calls[:3] == ["heartbeat", "fetch sent", "fetch answered"], calls
    assert "recover" in calls, calls
    app.close()
