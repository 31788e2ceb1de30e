"""The acker writes a claimed batch's outcomes in as few writes as its batch bound allows."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.worker.acker import MAX_BATCH, Acker


@pytest.mark.parametrize("max_batch", [MAX_BATCH, MAX_BATCH + 10])
def test_outcomes_waiting_behind_a_write_go_out_together_up_to_the_bound(
    tmp_path: Path, max_batch: int
) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'acks.db'}")

    @app.task(name="t.noop")
    def noop() -> None: ...

    app.enqueue_many([noop.job() for _ in range(1 + max_batch)])
    backend = app.backend
    ids = [r.id for r in backend.fetch(None, 1 + max_batch, "w1", 60.0, 0.0)]
    assert len(ids) == 1 + max_batch
    complete = backend.complete
    sizes: list[int] = []
    first_written = threading.Event()
    all_put = threading.Event()

    def held_complete(results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> Any:
        sizes.append(len(results))
        if len(sizes) == 1:  # the first write waits until every other outcome is queued
            first_written.set()
            assert all_put.wait(10)
        return complete(results, worker, now)

    backend.complete = held_complete  # type: ignore[method-assign]
    acker = Acker(backend, "w1", max_batch=max_batch)
    try:
        acker.put((ids[0], None))
        assert first_written.wait(10)
        for job_id in ids[1:]:
            acker.put((job_id, None))
        all_put.set()
        assert acker.flush(10)
        assert app.stats().queues["default"] == {"completed": 1 + max_batch}
    finally:
        acker.stop()
        app.close()
    # A capacity of 1,010 with a bound of 1,000 wrote each claim's outcomes twice, the
    # second write for 10 jobs; a bound of the capacity writes them once.
    assert sizes == [1, max_batch]


def test_a_worker_sizes_its_acknowledgements_to_the_most_a_claim_hands_over(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'w.db'}")
    worker = app.worker(concurrency=10, prefetch=1000, burst=True)
    try:
        worker.run()  # nothing to do: the burst worker starts, makes its acker, and stops
        assert worker._acker.max_batch == 1010
    finally:
        app.close()
