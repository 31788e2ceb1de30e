"""Jobs taken ahead (``fetch_ahead``): a limited worker's prefetch. Each is claimed to start in
the slot of one run of its bucket that the same worker holds, and holds no slot while that run
is active; the store counts it from the moment it records that run's end. Times are passed in
(``now``), so nothing here waits on a clock."""

from __future__ import annotations

import time
from typing import Any

from conveyor import Conveyor
from conveyor.job import Failure, JobRecord

from .helpers import ids


def _limited(app: Conveyor, **limits: object) -> Any:
    @app.task(name="t.ahead", **limits)  # type: ignore[call-overload, untyped-decorator]
    def limited(n: int, key: str = "a") -> None: ...

    return limited


def _run(record: JobRecord) -> tuple[str, str, int]:
    return (record.queue, record.id, record.attempts)


def test_a_job_ahead_holds_no_slot_until_its_run_ends(app: Conveyor) -> None:
    limited = _limited(app, concurrency=2)
    jobs = [limited.enqueue(n) for n in range(6)]
    now = time.time() + 2  # after every enqueue (a loaded machine): all due by then
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 30, now)
    got, after = store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)])
    assert ids(got) == [jobs[1].id] and after == {jobs[1].id: first.id}
    assert app.get_job(jobs[1].id).state == "active"  # type: ignore[union-attr]
    # The job ahead holds no slot: another worker takes the second one.
    assert ids(store.fetch(None, 5, "w2", 30, now)) == [jobs[2].id]
    assert store.fetch(None, 5, "w3", 30, now) == []
    # Its run ends: the job ahead has its slot, nobody else gets one.
    store.complete([(first.id, None)], "w1", now + 0.5)
    assert store.fetch(None, 5, "w3", 30, now + 1) == []
    # It ends too: a slot is free.
    store.complete([(jobs[1].id, None)], "w1", now + 1)
    assert ids(store.fetch(None, 5, "w3", 30, now + 1)) == [jobs[3].id]
    # It started when its run ended, on the worker that held both.
    started = app.get_job(jobs[1].id).started_at  # type: ignore[union-attr]
    assert started is not None and abs(started.timestamp() - (now + 0.5)) < 0.01


def test_one_key_one_slot_with_a_chain_ahead(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": key)
    a = [limited.enqueue(n, "a") for n in range(4)]
    b = limited.enqueue(9, "b")
    now = time.time() + 2
    store: Any = app.backend
    running = store.fetch(None, 5, "w1", 30, now)
    assert set(ids(running)) == {a[0].id, b.id}
    first = next(r for r in running if r.id == a[0].id)
    got, after = store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)])
    assert ids(got) == [a[1].id] and after == {a[1].id: a[0].id}
    # A chain: the next one waits for the job ahead, which waits for the run.
    second = next(r for r in got)
    got, after = store.fetch_ahead(None, 0, "w1", 30, now, [_run(second)])
    assert ids(got) == [a[2].id] and after == {a[2].id: a[1].id}
    assert store.fetch(None, 5, "w2", 30, now) == []  # key a's slot is the run's
    for done, at in ((a[0], 0.1), (a[1], 0.2)):
        store.complete([(done.id, None)], "w1", now + at)
        assert store.fetch(None, 5, "w2", 30, now + at) == []  # handed on, never free
    store.complete([(a[2].id, None)], "w1", now + 0.3)
    assert ids(store.fetch(None, 5, "w2", 30, now + 0.3)) == [a[3].id]


def test_a_run_that_failed_hands_its_slot_on_too(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    jobs = [limited.enqueue(n) for n in range(3)]
    now = time.time() + 2
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 30, now)
    got, _ = store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)])
    assert ids(got) == [jobs[1].id]
    store.fail([Failure(first.id, "boom", None, now + 60)], "w1", now + 0.1)
    assert store.fetch(None, 5, "w2", 30, now + 0.1) == []
    store.fail([Failure(jobs[1].id, "boom", None, None)], "w1", now + 0.2)
    assert ids(store.fetch(None, 5, "w2", 30, now + 0.2)) == [jobs[2].id]


def test_a_job_ahead_handed_back_waits_in_the_store_again(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    jobs = [limited.enqueue(n) for n in range(3)]
    now = time.time() + 2
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 30, now)
    got, _ = store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)])
    assert ids(got) == [jobs[1].id]
    store.release([jobs[1].id], "w1")  # its run lasted too long: back to the store
    job = app.get_job(jobs[1].id)
    assert job is not None and job.state == "pending" and job.attempts == 0
    assert store.fetch(None, 5, "w2", 30, now) == []  # the run still holds the slot
    store.complete([(first.id, None)], "w1", now + 0.1)
    assert ids(store.fetch(None, 5, "w2", 30, now + 0.1)) == [jobs[1].id]


def test_nothing_is_taken_ahead_of_a_run_the_worker_does_not_hold(app: Conveyor) -> None:
    limited = _limited(app, concurrency=3)
    limited.enqueue(0)
    limited.enqueue(1)
    now = time.time() + 2
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 30, now)
    # Another worker's run, a run at another attempt, a run that ended: nothing ahead.
    assert store.fetch_ahead(None, 0, "w2", 30, now, [_run(first)]) == ([], {})
    stale = (first.queue, first.id, first.attempts + 1)
    assert store.fetch_ahead(None, 0, "w1", 30, now, [stale]) == ([], {})
    store.complete([(first.id, None)], "w1", now)
    assert store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)]) == ([], {})


def test_nothing_is_taken_ahead_under_a_rate(app: Conveyor) -> None:
    limited = _limited(app, concurrency=5, rate="100/s")
    limited.enqueue(0)
    limited.enqueue(1)
    now = time.time() + 2
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 30, now)
    # A job ahead would start later than it is claimed, past the rate's meter.
    assert store.fetch_ahead(None, 0, "w1", 30, now, [_run(first)]) == ([], {})


def test_a_lost_worker_gives_back_its_run_and_its_jobs_ahead(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    jobs = [limited.enqueue(n) for n in range(3)]
    now = time.time() + 2
    store: Any = app.backend
    [first] = store.fetch(None, 1, "w1", 1, now)
    store.fetch_ahead(None, 0, "w1", 1, now, [_run(first)])
    assert store.fetch(None, 5, "w2", 30, now + 0.5) == []
    store.recover(now + 5, 0)  # both leases expired: both back to retry, the slot free
    assert {app.get_job(j.id).state for j in jobs[:2]} == {"retry"}  # type: ignore[union-attr]
    assert ids(store.fetch(None, 1, "w2", 30, now + 5)) == [jobs[2].id]
