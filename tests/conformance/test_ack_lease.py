"""Acknowledgement, leases and recovery: at-least-once, and nothing lost."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from conveyor.backends import prune
from conveyor.job import Failure, WorkerInfo

from .helpers import ids, record


def _info(worker: str, running: tuple[str, ...] = ()) -> WorkerInfo:
    return WorkerInfo(worker, "host", 123, ("default",), 10, time.time(), running=running)


def test_complete_stores_the_result(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app)])
    app.backend.fetch(None, 1, "w", 30, time.time())
    app.backend.complete([(r.id, b'{"ok":1}')], "w", time.time())
    job = app.get_job(r.id)
    assert job is not None and job.state == "completed" and job.return_value == {"ok": 1}
    assert job.finished_at is not None and job.worker is None
    assert app.stats().processed >= 1


def test_fail_with_retry_at_waits_then_comes_back(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app, max_attempts=3)])
    now = time.time()
    app.backend.fetch(None, 1, "w", 30, now)
    app.backend.fail([Failure(r.id, "ValueError: x", "Traceback…", now + 60)], "w", now)
    job = app.get_job(r.id)
    assert job is not None and job.state == "retry" and job.last_error == "ValueError: x"
    assert job.traceback == "Traceback…"
    assert app.backend.fetch(None, 1, "w", 30, now + 1) == []
    (again,) = app.backend.fetch(None, 1, "w", 30, now + 61)
    assert again.attempts == 2
    stats = app.stats()
    assert stats.failed >= 1


def test_fail_without_retry_at_is_dead(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app)])
    app.backend.fetch(None, 1, "w", 30, time.time())
    app.backend.fail([Failure(r.id, "Fail: no", None, None)], "w", time.time())
    job = app.get_job(r.id)
    assert job is not None and job.state == "dead" and job.last_error == "Fail: no"
    assert app.stats().total("dead") == 1


def test_ack_from_a_worker_that_lost_the_lease_is_ignored(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app, max_attempts=3)])
    now = time.time()
    app.backend.fetch(None, 1, "w1", 1, now)
    assert app.backend.recover(now + 5, 0) == 1
    (again,) = app.backend.fetch(None, 1, "w2", 30, now + 5)
    app.backend.complete([(r.id, b"1")], "w1", now + 6)  # too late: w2 holds it now
    assert app.get_job(r.id).state == "active"  # type: ignore[union-attr]
    app.backend.complete([(r.id, b"2")], "w2", now + 7)
    job = app.get_job(r.id)
    assert job is not None and job.state == "completed" and job.return_value == 2
    assert again.attempts == 2


def test_expired_lease_counts_as_a_failed_attempt(app: Conveyor) -> None:
    app.backend.enqueue([keep := record(app, max_attempts=2), last := record(app, max_attempts=1)])
    now = time.time()
    app.backend.fetch(None, 2, "w1", 10, now)
    assert app.backend.recover(now + 5, 0) == 0  # not expired yet
    assert app.backend.recover(now + 11, 0) == 2
    retried, dead = app.get_job(keep.id), app.get_job(last.id)
    # Back for another run at once (the recovery's clock is 11 s ahead of this one).
    assert retried is not None and retried.state == "retry" and retried.attempts == 1
    assert retried.last_error is not None and retried.last_error.startswith("worker lost")
    assert ids(app.backend.fetch(None, 2, "w2", 10, now + 11)) == [keep.id]
    assert dead is not None and dead.state == "dead" and dead.last_error.startswith("worker lost")  # type: ignore[union-attr]


def test_heartbeat_extends_every_lease_of_the_worker(app: Conveyor) -> None:
    app.backend.enqueue([a := record(app), b := record(app), c := record(app, max_attempts=2)])
    now = time.time()
    app.backend.fetch(None, 2, "w1", 10, now)
    app.backend.fetch(None, 1, "w2", 10, now)
    app.backend.heartbeat(_info("w1", (a.id, b.id)), 10, now + 8)
    assert app.backend.recover(now + 12, 0) == 1  # only w2's job expired
    assert app.get_job(c.id).state == "retry"  # type: ignore[union-attr]
    assert {app.get_job(a.id).state, app.get_job(b.id).state} == {"active"}  # type: ignore[union-attr]


def test_each_job_keeps_its_own_lease_within_one_worker(app: Conveyor) -> None:
    """Leases are per job: a worker's later fetch does not extend its earlier jobs, nor does
    an earlier job's expiry take the later ones; active counts and listings follow."""
    app.backend.enqueue([first := record(app, max_attempts=2), later := record(app, max_attempts=2)])
    now = time.time()
    assert ids(app.backend.fetch(None, 1, "w1", 10, now)) == [first.id]
    assert ids(app.backend.fetch(None, 1, "w1", 10, now + 8)) == [later.id]
    assert app.stats().total("active") == 2
    assert {j.id for j in app.jobs(state="active")} == {first.id, later.id}
    assert app.backend.recover(now + 12, 0) == 1  # only the first job's lease has passed
    assert app.get_job(first.id).state == "retry"  # type: ignore[union-attr]
    assert app.get_job(later.id).state == "active"  # type: ignore[union-attr]
    assert app.stats().total("active") == 1
    assert app.backend.recover(now + 17, 0) == 0
    assert app.backend.recover(now + 19, 0) == 1
    assert app.stats().total("active") == 0 and app.jobs(state="active") == []


def test_release_hands_jobs_back_without_counting(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app)])
    app.backend.fetch(None, 1, "w", 30, time.time())
    app.backend.release([r.id], "other-worker")  # not the holder: no effect
    assert app.get_job(r.id).state == "active"  # type: ignore[union-attr]
    app.backend.release([r.id], "w")
    job = app.get_job(r.id)
    assert job is not None and job.state == "pending" and job.attempts == 0 and job.worker is None


def test_recover_prunes_completed_jobs_past_their_ttl(app: Conveyor) -> None:
    app.backend.enqueue([old := record(app), fresh := record(app)])
    now = time.time()
    app.backend.fetch(None, 2, "w", 30, now)
    app.backend.complete([(old.id, None)], "w", now - 100)
    app.backend.complete([(fresh.id, None)], "w", now)
    app.backend.recover(now, now - 50)
    assert app.get_job(old.id) is None
    assert app.get_job(fresh.id) is not None


def test_recover_prunes_a_backlog_larger_than_a_batch(app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Completed jobs past their ttl that are many batches' worth are all deleted by one
    housekeeping pass (batch after batch while they come back full), the oldest first; the
    fresh ones stay."""
    monkeypatch.setattr(prune, "PRUNE_BATCH", 7)
    old = [record(app) for _ in range(40)]
    fresh = [record(app) for _ in range(5)]
    app.backend.enqueue(old + fresh)
    now = time.time()
    assert len(app.backend.fetch(None, 45, "w", 30, now)) == 45
    app.backend.complete([(r.id, None) for r in old], "w", now - 100)
    app.backend.complete([(r.id, None) for r in fresh], "w", now)
    app.backend.recover(now, now - 50)
    assert [r.id for r in old if app.get_job(r.id) is not None] == []
    assert all(app.get_job(r.id) is not None for r in fresh)
    assert app.stats().total("completed") == 5


def test_workers_register_and_leave(app: Conveyor) -> None:
    now = time.time()
    app.backend.heartbeat(_info("w1", ("j1",)), 30, now)
    app.backend.heartbeat(_info("w2"), 30, now)
    workers = {w.id: w for w in app.workers()}
    assert set(workers) == {"w1", "w2"}
    assert workers["w1"].running == ("j1",) and workers["w1"].concurrency == 10
    assert workers["w1"].last_seen >= now - 1
    from dataclasses import replace

    app.backend.heartbeat(replace(_info("w1"), alive=False), 30, now)
    assert ids(app.workers()) == ["w2"]  # type: ignore[arg-type]
    app.backend.recover(now + 3600, 0)  # silent for an hour: forgotten
    assert app.workers() == []
