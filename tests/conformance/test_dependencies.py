"""Jobs that wait for others (issue 17), on every store: ``using(after=...)``, the
``waiting`` state, release exactly once, cancellation down the graph, ``app.chain`` and
``current_job().dependencies()``. Dependencies live in other queues than their dependents
on purpose: on Redis Cluster those are other hash slots."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from conveyor import ConfigurationError, Conveyor, Fail, current_job
from conveyor.backends import StoresDependencies
from conveyor.errors import UnknownDependency
from conveyor.job import Failure, JobRecord, new_id

from .test_worker_runs import drain


def _tasks(app: Conveyor) -> Any:
    @app.task(name="t.step", retries=0)
    def step(n: int) -> int:
        return n

    return step


def _claim(app: Conveyor, worker: str = "w", queues: list[str] | None = None) -> list[JobRecord]:
    return app.backend.fetch(queues or ["q1", "q2", "q3", "q4"], 100, worker, 30.0, time.time())


def _state(app: Conveyor, job_id: str) -> str | None:
    job = app.get_job(job_id)
    return None if job is None else job.state


def test_a_job_waits_until_every_dependency_completed(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    b = step.using(queue="q2").enqueue(2)
    c = step.using(queue="q3", after=[a, b.id]).enqueue(3)
    assert c.state == "waiting" and _state(app, c.id) == "waiting"
    assert [job.id for job in app.jobs(state="waiting")] == [c.id]
    assert [job.id for job in app.jobs(state="waiting", queue="q3")] == [c.id]
    assert app.stats().queues["q3"].get("waiting") == 1
    claimed = _claim(app)
    assert sorted(r.id for r in claimed) == sorted([a.id, b.id])
    app.backend.complete([(a.id, None)], "w", time.time())
    assert _state(app, c.id) == "waiting"
    assert _claim(app) == []
    app.backend.complete([(b.id, None)], "w", time.time())
    assert _state(app, c.id) == "pending"
    assert [r.id for r in _claim(app)] == [c.id]
    assert isinstance(app.backend, StoresDependencies)
    assert app.backend.dependencies(c.id) == [a.id, b.id]
    assert app.backend.dependents(a.id) == [c.id]
    assert "waiting" not in app.stats().queues["q3"]


def test_a_delayed_dependent_is_scheduled_when_released(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    later = step.using(queue="q2", after=[a], delay=3600).enqueue(2)
    _claim(app)
    app.backend.complete([(a.id, None)], "w", time.time())
    assert _state(app, later.id) == "scheduled"


def test_dead_or_cancelled_dependencies_cancel_down_the_graph(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    b = step.using(queue="q2", after=[a]).enqueue(2)
    c = step.using(queue="q3", after=[b]).enqueue(3)
    d = step.using(queue="q1", after=[b, a]).enqueue(4)
    other = step.using(queue="q4").enqueue(5)
    e = step.using(queue="q4", after=[other]).enqueue(6)
    [claimed] = _claim(app, queues=["q1"])
    assert claimed.id == a.id
    app.backend.fail([Failure(a.id, "boom")], "w", time.time())
    for job, parent, how in ((b, a, "dead"), (c, b, "cancelled"), (d, a, "dead")):
        found = app.get_job(job.id)
        assert found is not None and found.state == "cancelled", job
        assert found.last_error is not None
        if job is not d:
            assert found.last_error == f"dependency {parent.id} ended {how}"
        else:  # either of its two failed dependencies names the cause
            assert found.last_error in (f"dependency {a.id} ended dead", f"dependency {b.id} ended cancelled")
    assert _state(app, e.id) == "waiting"
    # Cancelling a dependency by hand cancels its dependents too.
    assert app.cancel(other.id) == 1
    found = app.get_job(e.id)
    assert found is not None and found.state == "cancelled" and other.id in (found.last_error or "")


def test_cancelling_a_waiting_job_cancels_its_dependents(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    b = step.using(queue="q2", after=[a]).enqueue(2)
    c = step.using(queue="q3", after=[b]).enqueue(3)
    assert app.cancel(b.id) == 1
    assert _state(app, b.id) == "cancelled" and _state(app, c.id) == "cancelled"
    _claim(app)
    app.backend.complete([(a.id, None)], "w", time.time())
    assert _state(app, b.id) == "cancelled"


def test_completed_pruned_failed_and_unknown_dependencies(app: Conveyor) -> None:
    step = _tasks(app)
    done = step.using(queue="q1").enqueue(1)
    dead = step.using(queue="q2").enqueue(2)
    _claim(app)
    app.backend.complete([(done.id, None)], "w", time.time())
    app.backend.fail([Failure(dead.id, "boom")], "w", time.time())
    assert _state(app, step.using(queue="q3", after=[done]).enqueue(3).id) == "pending"
    # An id the store does not hold, older than result_ttl: completed, then pruned.
    old_ms = int((time.time() - 2 * app.result_ttl) * 1000)
    pruned = f"{old_ms >> 16:08x}-{old_ms & 0xFFFF:04x}-7000-8000-{random.getrandbits(48):012x}"
    assert _state(app, step.using(queue="q3", after=[pruned, done.id]).enqueue(4).id) == "pending"
    failed = step.using(queue="q3", after=[done, dead]).enqueue(5)
    found = app.get_job(failed.id)
    assert found is not None and found.state == "cancelled"
    assert found.last_error == f"dependency {dead.id} ended dead"
    # A young id the store does not hold is a mistake: nothing is stored.
    before = len(app.jobs(limit=1000))
    with pytest.raises(UnknownDependency) as raised:
        step.using(queue="q3", after=[done.id, new_id()]).enqueue(6)
    assert raised.value.dependency != done.id
    with pytest.raises(ValueError):
        step.using(after=["not-a-job-id"])
    assert len(app.jobs(limit=1000)) == before


def test_the_last_dependencies_racing_release_the_dependent_once(make_app: Any) -> None:
    app = make_app()
    step = _tasks(app)
    parents = [step.using(queue=f"q{1 + n % 4}").enqueue(n) for n in range(24)]
    child = step.using(queue="q1", after=parents).enqueue(99)
    # Six workers (each its own app: another process's view) complete their jobs at once.
    workers: dict[str, list[str]] = {}
    for n in range(6):
        got = app.backend.fetch(["q1", "q2", "q3", "q4"], 4, f"w{n}", 30.0, time.time())
        workers[f"w{n}"] = [r.id for r in got]
    assert sum(len(ids) for ids in workers.values()) == 24
    apps = {worker: make_app() for worker in workers}
    barrier = threading.Barrier(len(workers))

    def finish(worker: str) -> None:
        barrier.wait()
        for job_id in workers[worker]:
            apps[worker].backend.complete([(job_id, None)], worker, time.time())

    threads = [threading.Thread(target=finish, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert _state(app, child.id) == "pending"
    assert [r.id for r in _claim(app, "w9")] == [child.id]
    assert _claim(app, "w9") == []


def test_retrying_a_dead_dependency_leaves_its_cancelled_dependents(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    b = step.using(queue="q2", after=[a]).enqueue(2)
    _claim(app)
    app.backend.fail([Failure(a.id, "boom")], "w", time.time())
    assert app.retry(a.id) == 1
    _claim(app)
    app.backend.complete([(a.id, None)], "w", time.time())
    assert _state(app, b.id) == "cancelled"


def test_deleting_a_dependency_before_it_completed_cancels_its_dependents(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    b = step.using(queue="q2", after=[a]).enqueue(2)
    assert app.delete(a.id) == 1
    found = app.get_job(b.id)
    assert found is not None and found.state == "cancelled" and a.id in (found.last_error or "")


def test_a_chain_runs_in_order_and_reads_what_came_before(app: Conveyor) -> None:
    seen: list[Any] = []

    @app.task(name="t.fetch", queue="q1")
    def fetch(url: str) -> str:
        return f"<{url}>"

    @app.task(name="t.parse", queue="q2")
    def parse() -> int:
        current = current_job()
        assert current is not None
        [page] = current.dependencies()
        seen.append(page.return_value)
        return len(page.return_value)

    @app.task(name="t.store", queue="q3")
    def store() -> None:
        current = current_job()
        assert current is not None
        seen.append([job.task for job in current.dependencies()])

    jobs = app.chain(fetch.job("x"), parse.job(), store.job())
    assert [job.state for job in jobs] == ["pending", "waiting", "waiting"]
    assert [job.task for job in app.dependents(jobs[0].id)] == ["t.parse"]
    assert [job.id for job in app.dependencies(jobs[2].id)] == [jobs[1].id]
    deadline = time.monotonic() + 60
    while _state(app, jobs[2].id) != "completed" and time.monotonic() < deadline:
        drain(app)
    assert seen == ["<x>", ["t.parse"]]
    assert jobs[1].result(timeout=5) == 3


def test_a_failing_step_cancels_the_rest_of_the_chain(app: Conveyor) -> None:
    @app.task(name="t.bad", retries=0)
    def bad() -> None:
        raise Fail("no")

    step = _tasks(app)
    jobs = app.chain(step.job(1), bad.job(), step.job(3), step.job(4))
    deadline = time.monotonic() + 60
    while _state(app, jobs[3].id) not in ("cancelled", "completed") and time.monotonic() < deadline:
        drain(app)
    assert [_state(app, job.id) for job in jobs] == ["completed", "dead", "cancelled", "cancelled"]
    last = app.get_job(jobs[3].id)
    assert last is not None and last.last_error == f"dependency {jobs[2].id} ended cancelled"


def test_enqueue_many_takes_dependent_specs(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    jobs = app.enqueue_many([step.using(queue="q2", after=[a]).job(2), step.using(queue="q3").job(3)])
    assert [_state(app, job.id) for job in jobs] == ["waiting", "pending"]


def test_a_chain_through_a_partitioned_queue(app: Conveyor) -> None:
    """On Redis a partitioned queue spreads its jobs over hash slots as they are stored: each
    step is then linked and stored in turn (elsewhere one queue is one queue)."""
    app.queue("p1", partitions=3)
    step = _tasks(app)
    jobs = app.chain(*(step.using(queue="p1" if n % 2 else "q2").job(n) for n in range(5)))
    assert [job.state for job in jobs] == ["pending"] + ["waiting"] * 4
    deadline = time.monotonic() + 60
    while _state(app, jobs[-1].id) != "completed" and time.monotonic() < deadline:
        drain(app)
    assert [job.result(timeout=5) for job in jobs] == list(range(5))


def test_one_acknowledgement_of_plain_jobs_and_of_jobs_in_workflows(app: Conveyor) -> None:
    """A store may take jobs outside workflows another way than the others (SQLite: they fire
    no trigger); one acknowledgement holding both kinds, with and without return values,
    ends every job and moves every workflow: a parent whose dependent came while it ran, a
    batch's job, a job whose earlier run failed (its last error cleared)."""
    step = _tasks(app)
    plain = [step.using(queue="q1").enqueue(n) for n in range(4)]
    parents = [step.using(queue="q2").enqueue(n) for n in (10, 11)]
    failed = step.using(queue="q3").enqueue(12)
    batch = app.batch([step.using(queue="q4").job(20), step.using(queue="q4").job(21)])
    claimed = {r.id for r in _claim(app)}
    assert claimed == {j.id for j in [*plain, *parents, failed, *batch.jobs]}
    app.backend.fail([Failure(failed.id, "boom", retry_at=time.time() - 1)], "w", time.time())
    assert [r.id for r in _claim(app)] == [failed.id]  # its second run
    children = [step.using(queue="q1", after=[p]).enqueue(n) for n, p in enumerate(parents)]
    assert [_state(app, c.id) for c in children] == ["waiting", "waiting"]
    results: list[tuple[str, bytes | None]] = [(plain[0].id, None), (plain[1].id, b"1")]
    results += [(parents[0].id, None), (parents[1].id, b"11"), (failed.id, None)]
    results += [(batch.jobs[0].id, None), (batch.jobs[1].id, b"441")]
    results += [(plain[2].id, None), (plain[3].id, b"3")]
    app.backend.complete(results, "w", time.time())
    for job_id, _ in results:
        found = app.get_job(job_id)
        assert found is not None and found.state == "completed" and found.last_error is None, job_id
    assert [_state(app, c.id) for c in children] == ["pending", "pending"]
    assert batch.status()["completed"] == 2 and batch.status()["unfinished"] == 0
    processed = app.stats().processed
    app.backend.complete(results, "w", time.time())  # again: nothing moves twice
    assert app.stats().processed == processed and batch.status()["completed"] == 2


def test_an_expiry_counts_from_enqueue_while_the_job_waits(app: Conveyor) -> None:
    """after= with expires: the expiry counts from enqueue, waiting included. A waiting job
    past it ends cancelled ("expired") and its own dependents follow; one released in time
    runs as any job; a released one that expires before it starts is cancelled as usual."""
    step = _tasks(app)
    a = step.using(queue="q1").enqueue(1)
    late = step.using(queue="q2", after=[a], expires=30).enqueue(2)
    behind = step.using(queue="q3", after=[late]).enqueue(3)
    on_time = step.using(queue="q4", after=[a], expires=3600).enqueue(4)
    stored = app.get_job(late.id)
    assert stored is not None and stored.expires_at is not None
    assert stored.expires_at.timestamp() == pytest.approx(time.time() + 30, abs=5)
    now = time.time()
    app.backend.sweep(now, None, None, 100)  # not yet
    assert _state(app, late.id) == "waiting"
    app.backend.sweep(now + 31, None, None, 100)
    gone = app.get_job(late.id)
    assert gone is not None and (gone.state, gone.last_error) == ("cancelled", "expired")
    tail = app.get_job(behind.id)
    assert tail is not None and tail.state == "cancelled"
    assert tail.last_error == f"dependency {late.id} ended cancelled"
    assert _state(app, on_time.id) == "waiting"
    drain(app)
    assert _state(app, a.id) == "completed" and _state(app, on_time.id) == "completed"
    # Released, then expired before a worker took it.
    b = step.using(queue="q1").enqueue(5)
    stale = step.using(queue="q2", after=[b], expires=30).enqueue(6)
    [claimed] = _claim(app, queues=["q1"])
    app.backend.complete([(claimed.id, None)], "w", time.time())
    assert _state(app, stale.id) == "pending"
    app.backend.sweep(time.time() + 31, None, None, 100)
    assert _state(app, stale.id) == "cancelled"


def test_after_with_unique_for_is_refused_with_why(app: Conveyor) -> None:
    step = _tasks(app)
    a = step.enqueue(1)
    with pytest.raises(ConfigurationError, match="unique key is taken by the store's own"):
        step.using(after=[a], unique_for=60).enqueue(2)


def test_limited_tasks_wait_for_others(app: Conveyor) -> None:
    """after= on tasks with concurrency= (per key) and rate= limits, and a chain through
    them: released, each job is offered to its limit's bucket and runs under its limit."""
    seen: list[int] = []
    lock = threading.Lock()

    @app.task(name="l.first", queue="q1")
    def first(n: int) -> int:
        return n

    @app.task(name="l.lim", concurrency=1, limit_key=lambda n: f"k{n % 2}")
    def lim(n: int) -> int:
        with lock:
            seen.append(n)
        return n

    @app.task(name="l.rate", rate="100/s")
    def rate(n: int) -> int:
        with lock:
            seen.append(100 + n)
        return n

    a = first.enqueue(1)
    jobs = [lim.using(after=[a]).enqueue(i) for i in range(4)]
    rate.using(after=[a]).enqueue(1)
    chain = app.chain(first.job(2), lim.job(10), rate.job(20))
    assert [_state(app, j.id) for j in jobs] == ["waiting"] * 4
    drain(app)
    drain(app)
    assert sorted(seen) == [0, 1, 2, 3, 10, 101, 120]
    assert [_state(app, j.id) for j in chain] == ["completed"] * 3


def test_a_job_may_wait_for_thousands_of_jobs(app: Conveyor) -> None:
    """More dependencies than one call of Lua's unpack() takes (about 8,000): Redis stores
    them in slices (one SADD of them all failed: "too many results to unpack")."""
    step = _tasks(app)
    many = 9_000
    parents = [job.id for job in app.enqueue_many([step.using(queue="q1").job(n) for n in range(many)])]
    child = step.using(queue="q2", after=parents).enqueue(-1)
    assert _state(app, child.id) == "waiting"
    done = 0
    while claimed := app.backend.fetch(["q1"], 1000, "w", 30.0, time.time()):
        app.backend.complete([(r.id, None) for r in claimed], "w", time.time())
        done += len(claimed)
        if done < many:
            assert _state(app, child.id) == "waiting"
    assert done == many
    assert _state(app, child.id) == "pending"
