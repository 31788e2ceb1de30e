"""SQLite's limited claim: what it does inside its write transaction besides claiming (the
outcomes of its own process that wait for the lock; the rows of jobs taken ahead), checked
where the semantics cannot see it (tests/conformance states the rest on every store)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends.sqlite import SQLiteBackend


def _app(path: Path, concurrency: int = 1) -> tuple[Conveyor, Any]:
    app = Conveyor(f"sqlite:///{path}", namespace="lim")

    @app.task(name="t.limited", concurrency=concurrency)
    def limited(n: int) -> None: ...

    return app, limited


def _state(store: SQLiteBackend, job_id: str) -> str:
    record = store.get(job_id)
    assert record is not None
    return record.state


def _processed(store: SQLiteBackend) -> int:
    return int(store._conn().execute("SELECT coalesce(sum(processed), 0) FROM lim_counters").fetchone()[0])


def _blocked_complete(store: SQLiteBackend, job_id: str, worker: str, now: float) -> threading.Thread:
    """complete() in a thread of its own while the caller holds the write lock: returns once
    that call waits for the lock with its outcome offered to a claim."""
    thread = threading.Thread(target=store.complete, args=([(job_id, None)], worker, now))
    thread.start()
    deadline = time.monotonic() + 10
    while not store._acks:
        assert time.monotonic() < deadline, "complete() never offered its outcome"
        time.sleep(0.001)
    return thread


def test_a_limited_claim_writes_the_outcomes_waiting_for_the_lock(tmp_path: Path) -> None:
    app, limited = _app(tmp_path / "jobs.db")
    jobs = [limited.enqueue(n) for n in range(2)]
    store: SQLiteBackend = app.backend  # type: ignore[assignment]
    now = time.time() + 2
    [first] = store.fetch(None, 5, "w1", 30, now)
    assert first.id == jobs[0].id and store.fetch(None, 5, "w1", 30, now) == []
    with store._write_lock:  # the fetcher's claim holds the lock; the acker waits for it
        acker = _blocked_complete(store, first.id, "w1", now + 0.1)
    # The next claim writes that outcome first, so the slot it frees is this claim's.
    [second] = store.fetch(None, 5, "w1", 30, now + 0.2)
    acker.join(10)
    assert not acker.is_alive() and second.id == jobs[1].id
    assert _state(store, first.id) == "completed"
    assert _processed(store) == 1  # written once: by the claim, not again by its caller


def test_outcomes_a_failed_claim_took_are_written_by_their_caller(tmp_path: Path) -> None:
    app, limited = _app(tmp_path / "jobs.db")
    jobs = [limited.enqueue(n) for n in range(2)]
    store: SQLiteBackend = app.backend  # type: ignore[assignment]
    now = time.time() + 2
    [first] = store.fetch(None, 5, "w1", 30, now)
    conn = store._conn()
    taken: list[Any] = []
    with store._write_lock:
        acker = _blocked_complete(store, first.id, "w1", now + 0.1)
        with pytest.raises(RuntimeError), store._transaction(conn):
            store._absorb_acks(conn, taken)
            raise RuntimeError("the claim failed after taking the outcome")
        assert taken and not taken[0].done
    acker.join(10)
    assert not acker.is_alive()
    assert _state(store, first.id) == "completed" and _processed(store) == 1
    assert [r.id for r in store.fetch(None, 5, "w1", 30, now + 0.2)] == [jobs[1].id]


def test_a_job_ahead_holds_its_slot_once_another_process_recorded_its_runs_end(tmp_path: Path) -> None:
    # The process that took a job ahead settles its row when it writes the run's end; when
    # another one writes it (here a second store on the file, as a second process would),
    # the row stays until a pass over them all, and meanwhile the count must still see the
    # job ahead as running.
    app, limited = _app(tmp_path / "jobs.db")
    jobs = [limited.enqueue(n) for n in range(3)]
    mine: SQLiteBackend = app.backend  # type: ignore[assignment]
    other = SQLiteBackend(f"sqlite:///{tmp_path / 'jobs.db'}", "lim")
    now = time.time() + 2
    [run] = mine.fetch(None, 1, "w1", 30, now)
    ahead, _ = mine.fetch_ahead(None, 0, "w1", 30, now, [(run.queue, run.id, run.attempts)])
    assert [r.id for r in ahead] == [jobs[1].id]
    assert other.fetch(None, 5, "w2", 30, now) == []  # (its pass over every row is done)
    other.complete([(run.id, None)], "w1", now + 0.1)
    assert mine._follows  # not settled by this process: the row is still there
    assert other.fetch(None, 5, "w2", 30, now + 0.2) == []  # the slot is the job ahead's
    other.complete([(jobs[1].id, None)], "w1", now + 0.3)
    assert [r.id for r in other.fetch(None, 5, "w2", 30, now + 0.4)] == [jobs[2].id]
    other.close()
