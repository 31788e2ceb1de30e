"""A PostgreSQL worker claims while its last batch's outcomes are written: each runs on a
connection and a server process of its own, so the claim and the acknowledgement take the
two at once instead of turns (a 100k no-op drain: both in flight 13% of the time before,
about 60% after). The bound on active jobs stays: tests/conformance/test_acks_behind.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from .conftest import AppFactory

JOBS = 2000


def test_claims_go_out_while_acknowledgements_are_written(make_app: AppFactory) -> None:
    app = make_app(namespace="beside")

    @app.task(name="noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(JOBS)])
    backend = app.backend
    complete, fetch = backend.complete, backend.fetch
    writing = threading.Event()
    beside: list[bool] = []

    def slow_complete(results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> Any:
        # An acknowledgement slower than the runs (no-op jobs run in microseconds).
        writing.set()
        try:
            time.sleep(0.02)
            return complete(results, worker, now)
        finally:
            writing.clear()

    def watched_fetch(*args: Any) -> Any:
        was = writing.is_set()
        records = fetch(*args)
        if records:
            beside.append(was)
        return records

    backend.complete = slow_complete  # type: ignore[method-assign]
    backend.fetch = watched_fetch  # type: ignore[method-assign,assignment]
    worker = app.worker(concurrency=2, prefetch=98, burst=True, grace=5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "burst worker did not finish"
    assert app.stats().queues["default"] == {"completed": JOBS}
    # Waiting for a whole capacity of outcomes to be written first, a claim went out beside
    # an acknowledgement only by chance (none of 20 on the code before; 18-19 of 20 now).
    assert sum(beside) >= len(beside) // 2, beside
