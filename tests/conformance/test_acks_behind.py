"""A worker whose acknowledgements fall behind its claims stops claiming (issue 19: in a 1M
drain on PostgreSQL the acker's backlog grew to 650,000 jobs, all active in the store, until
the heartbeat that extends their leases took 27 s, leases expired and jobs ran twice)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from conveyor import Conveyor

JOBS = 300
CONCURRENCY = 2
PREFETCH = 8
CAPACITY = CONCURRENCY + PREFETCH


def test_slow_acknowledgements_hold_the_claims_back(app: Conveyor) -> None:
    @app.task(name="t.noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(JOBS)])
    backend = app.backend
    complete = backend.complete
    active: list[int] = []

    def slow_complete(results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> Any:
        # The store's own count of active jobs as each batch is written: every one is a
        # lease the heartbeat must extend. Then a store that acknowledges slowly (no-op jobs
        # run far faster than 50 batches a second are written).
        active.append(app.stats().queues.get("default", {}).get("active", 0))
        time.sleep(0.02)
        return complete(results, worker, now)

    backend.complete = slow_complete  # type: ignore[method-assign]
    worker = app.worker(concurrency=CONCURRENCY, prefetch=PREFETCH, burst=True, grace=5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "burst worker did not finish"
    assert app.stats().queues["default"] == {"completed": JOBS}
    # Held (at most a capacity) plus outcomes not written (claims stop at a capacity): never
    # the whole queue, however much faster the jobs run than their acknowledgements.
    assert max(active) <= 2 * CAPACITY, active
