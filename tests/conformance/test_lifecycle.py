"""A job's life under control, on every store: unique jobs, expiry, snooze, reschedule and
update, retention of dead and cancelled jobs (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import ConfigurationError, Conveyor, Fail, QueueFull, Snooze

from .conftest import AppFactory
from .helpers import record
from .test_worker_runs import drain


def _every_job(app: Conveyor) -> list[str]:
    return [job.id for job in app.jobs(limit=10_000)]


# -- unique jobs ---------------------------------------------------------------------------
def test_a_duplicate_returns_the_live_job(app: Conveyor) -> None:
    @app.task(name="t.report", unique_for=600)
    def report(day: str, detail: dict[str, int] | None = None) -> None: ...

    first = report.enqueue("mon", detail={"a": 1, "b": 2})
    again = report.enqueue("mon", detail={"b": 2, "a": 1})
    other = report.enqueue("tue")
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.id == first.id and other.id != first.id
    assert sorted(_every_job(app)) == sorted([first.id, other.id])
    stored = app.get_job(first.id)
    assert stored is not None and stored.unique_key is not None and stored.unique_key.startswith("t.report:")


def test_an_explicit_key_and_enqueue_many_decides_each_job_alone(app: Conveyor) -> None:
    @app.task(name="t.charge")
    def charge(order: int) -> None: ...

    guarded = charge.using(unique_key="order-42", unique_for=600)
    jobs = app.enqueue_many([guarded.job(1), guarded.job(2), charge.job(3), charge.job(3)])
    assert [job.duplicate for job in jobs] == [False, True, False, False]
    assert jobs[1].id == jobs[0].id
    assert len(set(_every_job(app))) == 3
    later = guarded.enqueue(5)
    assert later.duplicate and later.id == jobs[0].id


def test_the_key_is_freed_when_the_job_ends(app: Conveyor) -> None:
    runs: list[str] = []

    @app.task(name="t.once", unique_for=600, retries=0)
    def once(what: str) -> None:
        runs.append(what)
        if what == "fail":
            raise Fail("no")

    for what in ("ok", "fail"):
        first = once.enqueue(what)
        drain(app)
        again = once.enqueue(what)
        assert not again.duplicate and again.id != first.id, what
    cancelled = once.enqueue("cancel")
    assert once.enqueue("cancel").duplicate
    assert app.cancel(cancelled.id) == 1
    assert not once.enqueue("cancel").duplicate
    deleted = once.using(delay=60).enqueue("delete")
    assert app.delete(deleted.id) == 1
    assert not once.using(delay=60).enqueue("delete").duplicate


def test_the_key_is_freed_after_unique_for_and_kept_through_retries(app: Conveyor) -> None:
    @app.task(name="t.brief", unique_for=0.3)
    def brief() -> None: ...

    first = brief.using(delay=60).enqueue()
    assert brief.enqueue().duplicate
    time.sleep(0.4)
    second = brief.using(delay=60).enqueue()
    assert not second.duplicate and second.id != first.id

    @app.task(name="t.flaky", unique_for=600, retries=3)
    def flaky() -> None: ...

    job = flaky.enqueue()
    backend = app.backend
    (claimed,) = backend.fetch(None, 10, "w1", 30.0, time.time())
    assert claimed.id == job.id
    assert flaky.enqueue().id == job.id  # running: still held
    from conveyor.job import Failure

    backend.fail([Failure(job.id, "boom", None, time.time() + 60)], "w1", time.time())
    assert app.get_job(job.id).state == "retry"  # type: ignore[union-attr]
    retry_dup = flaky.enqueue()
    assert retry_dup.duplicate and retry_dup.id == job.id


_CONTENDER = """
import json, sys, threading
from conveyor import Conveyor
url, namespace, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Conveyor(url, namespace=namespace)
task = app.task(name="t.contended")(lambda n: None)
ids, errors = [], []
start = threading.Barrier(8)
def enqueue(n):
    start.wait()
    try:
        for i in range(n):
            ids.append(task.using(unique_key="the-one", unique_for=600).enqueue(i).id)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=enqueue, args=(count // 8 + (t < count % 8),)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"ids": sorted(set(ids)), "count": len(ids), "errors": errors}))
"""


def test_eight_threads_in_three_processes_make_one_job(store_url: str, make_app: AppFactory) -> None:
    app = make_app()
    counts = [334, 333, 333]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, store_url, app.namespace, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for n in counts
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        reports.append(json.loads(out))
    assert [r["errors"] for r in reports] == [[], [], []]
    assert sum(r["count"] for r in reports) == 1000
    returned = {i for r in reports for i in r["ids"]}
    assert len(returned) == 1
    assert _every_job(app) == list(returned)


def test_a_full_queue_still_answers_a_duplicate(make_app: AppFactory) -> None:
    app = make_app(max_queue_length=1)

    @app.task(name="t.capped", unique_for=600)
    def capped(n: int) -> None: ...

    first = capped.enqueue(1)
    again = capped.enqueue(1)
    assert again.duplicate and again.id == first.id
    with pytest.raises(QueueFull):
        capped.enqueue(2)
    assert _every_job(app) == [first.id]


def test_bad_unique_options_name_the_value(app: Conveyor) -> None:
    @app.task(name="t.u")
    def u() -> None: ...

    with pytest.raises(ConfigurationError, match=r"unique_key must be .* not 42"):
        u.using(unique_key=42, unique_for=10)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not 'xxxxx"):
        u.using(unique_key="x" * 201, unique_for=10)
    with pytest.raises(ConfigurationError, match="needs unique_for"):
        u.using(unique_key="k")
    with pytest.raises(ConfigurationError, match=r"unique_for must be .* not -1"):
        u.using(unique_for=-1)


# -- expiry ----------------------------------------------------------------------------------
def test_an_expired_job_never_reaches_its_task(app: Conveyor) -> None:
    runs: list[int] = []

    @app.task(name="t.exp")
    def exp(n: int) -> None:
        runs.append(n)

    late = exp.using(expires=0.2).enqueue(1)
    fresh = exp.using(expires=datetime.now(UTC) + timedelta(minutes=5)).enqueue(2)
    time.sleep(0.3)
    drain(app)
    assert runs == [2]
    gone = app.get_job(late.id)
    assert gone is not None and gone.state == "cancelled" and gone.last_error == "expired"
    assert app.get_job(fresh.id).state == "completed"  # type: ignore[union-attr]


def test_housekeeping_cancels_expired_waiting_jobs(app: Conveyor) -> None:
    @app.task(name="t.exp2")
    def exp2() -> None: ...

    ran = exp2.using(expires=0.3).enqueue()
    drain(app)  # it ran in time: its expiry passing later changes nothing
    waiting = exp2.using(expires=0.2, delay=60).enqueue()
    lasting = exp2.using(expires=60, delay=60).enqueue()
    time.sleep(0.35)
    assert app.backend.sweep(time.time(), None, None, 100) == 1
    swept = app.get_job(waiting.id)
    assert swept is not None and swept.state == "cancelled" and swept.last_error == "expired"
    assert app.get_job(lasting.id).state == "scheduled"  # type: ignore[union-attr]
    assert app.get_job(ran.id).state == "completed"  # type: ignore[union-attr]
    assert app.backend.sweep(time.time(), None, None, 100) == 0


def test_bad_expiry_names_the_value(app: Conveyor) -> None:
    @app.task(name="t.exp3")
    def exp3() -> None: ...

    past = datetime.now(UTC) - timedelta(seconds=5)
    with pytest.raises(ConfigurationError, match="is in the past"):
        exp3.using(expires=past).enqueue()
    with pytest.raises(ConfigurationError, match="naive datetime"):
        exp3.using(expires=datetime.now())
    with pytest.raises(ConfigurationError, match="not -3"):
        exp3.using(expires=-3)
    assert _every_job(app) == []


# -- snooze ----------------------------------------------------------------------------------
def test_snooze_waits_without_spending_an_attempt(app: Conveyor) -> None:
    seen: list[int] = []

    @app.task(name="t.snoozy", retries=0)
    def snoozy() -> str:
        seen.append(1)
        if len(seen) < 3:
            raise Snooze(0.05)
        return "done"

    job = snoozy.enqueue()
    deadline = time.monotonic() + 30
    while app.get_job(job.id).state != "completed":  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        drain(app)
        time.sleep(0.05)
    done = app.get_job(job.id)
    assert done is not None and done.snoozes == 2 and done.attempts == 1 and done.return_value == "done"


def test_a_snoozed_job_is_scheduled(app: Conveyor) -> None:
    @app.task(name="t.later")
    def later() -> None:
        raise Snooze(60)

    job = later.enqueue()
    drain(app)
    waiting = app.get_job(job.id)
    assert waiting is not None and waiting.state == "scheduled" and waiting.snoozes == 1
    assert waiting.attempts == 0 and waiting.run_at is not None
    assert waiting.run_at > datetime.now(UTC) + timedelta(seconds=50)


def test_snooze_takes_seconds_from_zero() -> None:
    with pytest.raises(ValueError, match="not -1"):
        Snooze(-1)
    with pytest.raises(ValueError, match="not 'soon'"):
        Snooze("soon")  # type: ignore[arg-type]


# -- reschedule and update -------------------------------------------------------------------
def test_reschedule_moves_waiting_jobs_only(app: Conveyor) -> None:
    runs: list[int] = []

    @app.task(name="t.move")
    def move(n: int) -> None:
        runs.append(n)

    job = move.using(delay=3600).enqueue(1)
    assert app.reschedule(job.id, delay=0) is True
    assert app.get_job(job.id).state == "pending"  # type: ignore[union-attr]
    drain(app)
    assert runs == [1]
    assert app.reschedule(job.id, delay=10) is False  # completed
    assert app.reschedule("no-such-job", delay=10) is False
    now_job = move.enqueue(2)
    when = datetime.now(UTC) + timedelta(hours=2)
    assert app.reschedule(now_job.id, at=when) is True
    moved = app.get_job(now_job.id)
    assert moved is not None and moved.state == "scheduled"
    assert moved.run_at is not None and abs((moved.run_at - when).total_seconds()) < 0.01
    drain(app)
    assert runs == [1]
    with pytest.raises(ConfigurationError, match="aware datetime"):
        app.reschedule(now_job.id, at=datetime.now())
    with pytest.raises(ConfigurationError, match="not -5"):
        app.reschedule(now_job.id, delay=-5)


def test_reschedule_a_retrying_job(app: Conveyor) -> None:
    from conveyor.job import Failure

    app.backend.enqueue([record(app, max_attempts=3)])
    (claimed,) = app.backend.fetch(None, 1, "w1", 30.0, time.time())
    app.backend.fail([Failure(claimed.id, "boom", None, time.time() + 3600)], "w1", time.time())
    assert app.reschedule(claimed.id, delay=7200) is True
    later = app.get_job(claimed.id)
    assert later is not None and later.state == "retry"
    assert app.reschedule(claimed.id, delay=0) is True
    assert app.get_job(claimed.id).state == "pending"  # type: ignore[union-attr]


def test_update_priority_and_queue(store_url: str, make_app: AppFactory) -> None:
    app = make_app(secret_key="lifecycle-test-secret-key")
    runs: list[str] = []

    @app.task(name="t.upd")
    def upd(tag: str) -> None:
        runs.append(tag)

    low = upd.enqueue("low")
    high = upd.enqueue("high")
    assert app.update(high.id, priority=9) is True
    assert app.get_job(high.id).priority == 9  # type: ignore[union-attr]
    (first,) = app.backend.fetch(["default"], 1, "w1", 30.0, time.time())
    assert first.id == high.id
    assert app.update(high.id, priority=1) is False  # running
    if store_url.startswith("redis+cluster"):
        with pytest.raises(ConfigurationError, match="Cluster"):
            app.update(low.id, queue="other")
        return
    assert app.update(low.id, queue="other") is True
    moved = app.get_job(low.id)
    assert moved is not None and moved.queue == "other" and moved.state == "pending"
    assert app.jobs(queue="default", state="pending") == []
    worker = app.worker(queues=["other"], burst=True)
    worker.run()
    assert runs == ["low"] and app.get_job(low.id).state == "completed"  # type: ignore[union-attr]


def test_a_unique_job_keeps_its_queue(app: Conveyor) -> None:
    @app.task(name="t.uq", unique_for=60)
    def uq() -> None: ...

    job = uq.enqueue()
    with pytest.raises(ConfigurationError, match="unique key"):
        app.update(job.id, queue="elsewhere")
    assert app.update(job.id, priority=3) is True


# -- retention -------------------------------------------------------------------------------
def _ended(app: Conveyor, count: int) -> list[str]:
    @app.task(name="t.doomed", retries=0)
    def doomed(n: int) -> None:
        raise Fail(f"no {n}")

    made: list[str] = []
    for n in range(count):
        made.append(doomed.enqueue(n).id)
        drain(app)  # one at a time: each ends after the one before
        time.sleep(0.002)
    return made


def test_retention_keeps_the_newest_dead_max(app: Conveyor) -> None:
    dead = _ended(app, 4)

    @app.task(name="t.waiting")
    def waiting() -> None: ...

    victim = waiting.using(delay=600).enqueue()
    app.cancel(victim.id)  # cancelled jobs count with the dead ones, and are newest here
    now = time.time()
    assert app.backend.sweep(now, None, 3, 2) == 2  # bounded: two at a time
    assert app.backend.sweep(now, None, 3, 2) == 0
    left = {job.id for job in app.jobs(limit=100)}
    assert left == {*dead[2:], victim.id}


def test_retention_by_age(app: Conveyor) -> None:
    dead = _ended(app, 3)
    second = app.backend.get(dead[1])
    assert second is not None and second.finished_at is not None
    assert app.backend.sweep(time.time(), second.finished_at, None, 100) == 1
    assert {job.id for job in app.jobs(limit=100)} == set(dead[1:])
    assert app.backend.sweep(time.time() + 10, time.time() + 5, None, 100) == 2
    assert app.jobs(limit=100) == []


def test_a_worker_prunes_as_it_starts(make_app: AppFactory) -> None:
    app = make_app(dead_max=1)
    dead = _ended(app, 3)  # each drain's start pruned what was there before that job died
    drain(app)
    assert [job.id for job in app.jobs(limit=100)] == dead[-1:]


def test_retention_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"dead_ttl .* not -1"):
        Conveyor("sqlite:///unused.db", dead_ttl=-1)
    with pytest.raises(ConfigurationError, match=r"dead_max .* not 1.5"):
        Conveyor("sqlite:///unused.db", dead_max=1.5)  # type: ignore[arg-type]
    app = Conveyor("sqlite:///unused.db")
    assert (app.dead_ttl, app.dead_max) == (180 * 86400, 10_000)
