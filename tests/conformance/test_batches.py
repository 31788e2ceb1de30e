"""Batches on every store: counts, callbacks exactly once, add, nesting, retry re-opens,
results read page by page (``conveyor.batch``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from conveyor import Batch, BatchClosed, ConfigurationError, Conveyor, Fail, current_job

from .test_worker_runs import drain


def _tasks(app: Conveyor, seen: list[tuple[str, Any]]) -> dict[str, Any]:
    lock = threading.Lock()

    @app.task(name="t.square", retries=0)
    def square(x: int) -> int:
        if x < 0:
            raise Fail(f"negative {x}")
        return x * x

    @app.task(name="t.note", queue="notes", retries=0)
    def note(kind: str) -> None:
        cur = current_job()
        assert cur is not None
        batch_id = cur.batch_id
        total = None
        if batch_id is not None:
            batch = app.get_batch(batch_id)
            assert batch is not None
            total = sum(v for _, v in batch.results(page=3) if isinstance(v, int))
        with lock:
            seen.append((kind, total))

    return {"square": square, "note": note}


def test_callbacks_fire_once_with_results(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    batch = app.batch(
        [t["square"].job(i) for i in range(10)],
        on_success=t["note"].job("success"),
        on_complete=t["note"].job("complete"),
        on_death=t["note"].job("death"),
    )
    assert isinstance(batch, Batch) and len(batch.jobs) == 10
    assert all(job.batch_id == batch.id for job in batch.jobs)
    assert batch.status() == {"total": 10, "completed": 0, "dead": 0, "cancelled": 0, "unfinished": 10}
    with pytest.raises(TimeoutError):
        batch.wait(timeout=0.05)
    drain(app)
    assert batch.wait(timeout=5) == {"total": 10, "completed": 10, "dead": 0, "cancelled": 0, "unfinished": 0}
    drain(app)  # the callbacks
    assert sorted(seen) == [("complete", 285), ("success", 285)]
    found = app.get_batch(batch.id)
    assert found is not None and found.fired == {"success": True, "complete": True, "death": False}
    snapshot = app.get_job(batch.jobs[3].id)
    assert snapshot is not None and snapshot.batch_id == batch.id
    pages = [job.id for job in found.iter_jobs(page=4)]
    assert pages == sorted(job.id for job in batch.jobs)
    assert app.get_batch("no-such-batch") is None


def test_death_fires_on_first_dead_and_retry_reopens(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    batch = app.batch(
        [t["square"].job(i) for i in (1, 2, -3)],
        on_success=t["note"].job("success"),
        on_complete=t["note"].job("complete"),
        on_death=t["note"].job("death"),
    )
    drain(app)
    drain(app)
    assert batch.status()["dead"] == 1 and batch.status()["completed"] == 2
    assert sorted(kind for kind, _ in seen) == ["complete", "death"]
    (dead,) = [j for j in batch.iter_jobs() if j.state == "dead"]
    # Retrying the dead job re-opens the batch: the counts move back.
    assert app.retry(dead.id) == 1
    assert batch.status()["unfinished"] == 1 and batch.status()["dead"] == 0
    assert batch.add(t["square"].job(4))  # open again: it grows
    # It dies again: nothing fires twice.
    drain(app)
    drain(app)
    assert sorted(kind for kind, _ in seen) == ["complete", "death"]
    assert batch.status() == {"total": 4, "completed": 3, "dead": 1, "cancelled": 0, "unfinished": 0}
    with pytest.raises(BatchClosed):
        batch.add(t["square"].job(5))


def test_retry_then_success_fires_on_success(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    flaky_runs: list[int] = []

    @app.task(name="t.flaky", retries=0)
    def flaky() -> int:
        flaky_runs.append(1)
        if len(flaky_runs) == 1:
            raise Fail("first time")
        return 7

    t = _tasks(app, seen)
    batch = app.batch([flaky.job()], on_success=t["note"].job("success"), on_death=t["note"].job("death"))
    drain(app)
    drain(app)
    assert [kind for kind, _ in seen] == ["death"]
    assert app.retry(batch.jobs[0].id) == 1
    drain(app)
    drain(app)
    assert sorted(kind for kind, _ in seen) == ["death", "success"]
    assert ("success", 7) in seen


def test_add_while_open_and_closed_after(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)

    @app.task(name="t.fan_out", retries=0)
    def fan_out(n: int) -> int:
        cur = current_job()
        assert cur is not None
        me = app.get_job(cur.id)
        assert me is not None and me.batch_id is not None
        batch = app.get_batch(me.batch_id)
        assert batch is not None
        # A job of the batch adding to it while it runs always finds it open.
        batch.add([t["square"].job(i) for i in range(n)])
        return 0

    batch = app.batch([fan_out.job(3)], on_complete=t["note"].job("complete"))
    drain(app)
    drain(app)
    assert batch.wait(timeout=5)["total"] == 4
    assert seen == [("complete", 0 + 1 + 4)]
    with pytest.raises(BatchClosed):
        batch.add(t["square"].job(1))
    assert batch.status()["total"] == 4


def test_cancel_and_delete_count_as_ended(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    batch = app.batch(
        [t["square"].job(i) for i in range(3)],
        on_success=t["note"].job("success"),
        on_complete=t["note"].job("complete"),
    )
    with pytest.raises(ConfigurationError, match="keeps its queue"):
        app.update(batch.jobs[2].id, queue="elsewhere")
    assert app.cancel(batch.jobs[0].id) == 1
    assert app.delete(batch.jobs[1].id) == 1
    assert batch.status()["cancelled"] == 2
    drain(app)
    drain(app)
    assert [kind for kind, _ in seen] == ["complete"]
    assert batch.status() == {"total": 3, "completed": 1, "dead": 0, "cancelled": 2, "unfinished": 0}


def test_nested_batch_is_counted_by_its_parent(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    outer = app.batch([t["square"].job(1)], on_success=t["note"].job("outer"))
    inner = app.batch(
        [t["square"].job(i) for i in range(2, 5)],
        on_complete=t["note"].job("inner"),
        parent=outer,
    )
    assert inner.parent == outer.id
    # The outer batch counts the inner one's on_complete from now on.
    assert outer.status()["total"] == 2
    drain(app)
    drain(app)
    drain(app)
    assert [kind for kind, _ in seen] == ["inner", "outer"]
    inner_done = app.get_job(inner.callbacks["complete"])
    assert inner_done is not None and inner_done.batch_id == outer.id and inner_done.state == "completed"
    assert outer.status() == {"total": 2, "completed": 2, "dead": 0, "cancelled": 0, "unfinished": 0}
    with pytest.raises(ConfigurationError, match="on_complete"):
        app.batch([t["square"].job(1)], parent=outer)
    with pytest.raises(BatchClosed):
        app.batch([t["square"].job(1)], on_complete=t["note"].job("x"), parent=outer)


def test_racing_workers_fire_each_callback_once(make_app: Any) -> None:
    app = make_app()
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    batch = app.batch(
        [t["square"].job(i) for i in range(200)],
        on_success=t["note"].job("success"),
        on_complete=t["note"].job("complete"),
    )
    # Three processes' worth of workers (separate stores) finish the last jobs together.
    others = [make_app(namespace="a") for _ in range(2)]
    for other in others:
        _tasks(other, seen)
    threads = [
        threading.Thread(target=a.worker(concurrency=8, burst=True, grace=5).run) for a in [app, *others]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert batch.wait(timeout=10)["completed"] == 200
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        drain(app)
    assert sorted(kind for kind, _ in seen) == ["complete", "success"]


def test_finished_batches_go_away_result_ttl_after_they_finished(app: Conveyor) -> None:
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    done = app.batch([t["square"].job(i) for i in range(3)], on_complete=t["note"].job("complete"))
    died = app.batch([t["square"].job(-1)], on_complete=t["note"].job("died"))
    empty = app.batch([])  # open: it counts no job yet
    waiting = app.batch([t["square"].using(delay=3600).job(2)])  # open: its job has not run
    drain(app)
    drain(app)
    assert sorted(seen) == [("complete", 5), ("died", 0)]
    assert done.status()["unfinished"] == 0 and died.status()["dead"] == 1
    backend = app.backend
    now = time.time()
    backend.recover(now, now - 3600)  # finished less than result_ttl ago: kept
    assert app.get_batch(done.id) is not None and app.get_batch(died.id) is not None
    (dead,) = [j.id for j in died.iter_jobs()]
    assert app.retry(dead) == 1  # re-opened: an open batch is never pruned
    backend.recover(time.time(), time.time() + 1)  # result_ttl later
    assert app.get_batch(done.id) is None
    for kept in (died, empty, waiting):
        found = app.get_batch(kept.id)
        assert found is not None and found.record.callbacks == kept.refresh().record.callbacks
    assert app.get_batch(died.id) is not None and died.status()["unfinished"] == 1
    # Once it finished again it goes too; callbacks never fire again.
    drain(app)
    drain(app)
    backend.recover(time.time(), time.time() + 1)
    assert app.get_batch(died.id) is None
    assert app.get_batch(empty.id) is not None and app.get_batch(waiting.id) is not None
    assert sorted(seen) == [("complete", 5), ("died", 0)]


def test_a_batchs_jobs_may_wait_for_other_jobs(app: Conveyor) -> None:
    """Jobs of a batch with after=: they wait (the batch counts them as not ended), are
    released when their dependencies complete, and one whose dependency dies ends cancelled
    and counts so in the batch, which then finishes and fires its callbacks once."""
    seen: list[tuple[str, Any]] = []
    t = _tasks(app, seen)
    first = t["square"].using(queue="deps").enqueue(3)
    doomed = t["square"].using(queue="deps").enqueue(-1)
    gone = t["square"].using(queue="deps").enqueue(1)
    app.cancel(gone.id)  # already ended: the job that waits for it is cancelled at once
    batch = app.batch(
        [
            t["square"].job(2),
            t["square"].using(after=[first]).job(4),
            t["square"].using(queue="other", after=[first, doomed.id]).job(5),
            t["square"].using(after=[gone]).job(6),
        ],
        on_success=t["note"].job("success"),
        on_complete=t["note"].job("complete"),
    )
    assert [j.state for j in batch.jobs] == ["pending", "waiting", "waiting", "waiting"]
    assert batch.status() == {"total": 4, "completed": 0, "dead": 0, "cancelled": 1, "unfinished": 3}
    added = batch.add(t["square"].using(after=[first]).job(7))
    assert added[0].state == "waiting" and batch.status()["total"] == 5
    drain(app)
    drain(app)
    assert batch.wait(timeout=10) == {"total": 5, "completed": 3, "dead": 0, "cancelled": 2, "unfinished": 0}
    drain(app)
    assert seen == [("complete", 4 + 16 + 49)]
    assert app.get_job(batch.jobs[2].id).last_error == f"dependency {doomed.id} ended dead"  # type: ignore[union-attr]
