"""Enqueue and fetch: what is stored, in which order it comes out, and who gets it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Conveyor, QueueFull

from .conftest import AppFactory
from .helpers import ids, record


def test_enqueue_returns_a_stored_pending_job(app: Conveyor) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    job = add.enqueue(1, 2)
    stored = app.get_job(job.id)
    assert stored is not None
    assert (stored.task, stored.args, stored.kwargs) == ("t.add", [1, 2], {})
    assert stored.state == "pending" and stored.attempts == 0 and stored.max_attempts == 4
    assert stored.queue == "default"
    assert app.get_job("no-such-id") is None


def test_non_json_arguments_raise_in_the_caller_and_store_nothing(app: Conveyor) -> None:
    @app.task(name="t.echo")
    def echo(value: object) -> None: ...

    for bad in (datetime.now(UTC), {1: "int key"}, {1, 2}, float("nan"), b"raw", 2**70):
        with pytest.raises(TypeError, match=r"t\.echo"):
            echo.enqueue(bad)
    with pytest.raises(TypeError, match="argument"):
        app.enqueue_many([echo.job(1), echo.job(datetime.now(UTC))])
    with pytest.raises(TypeError, match="missing a required argument"):
        echo.enqueue()  # type: ignore[call-arg]
    assert app.stats().total("pending") == 0


def test_enqueue_many_keeps_order_and_is_one_call(app: Conveyor) -> None:
    @app.task(name="t.n")
    def n(i: int) -> None: ...

    jobs = app.enqueue_many([n.job(i) for i in range(500)])
    assert [j.args[0] for j in jobs] == list(range(500))
    assert ids(jobs) == sorted(ids(jobs))  # type: ignore[arg-type]
    fetched = app.backend.fetch(["default"], 500, "w1", 30, time.time())
    assert ids(fetched) == ids(jobs)  # type: ignore[arg-type]


def test_delay_and_at_schedule_jobs(app: Conveyor) -> None:
    @app.task(name="t.later")
    def later() -> None: ...

    delayed = later.using(delay=60).enqueue()
    at = later.using(at=datetime.now(UTC) + timedelta(seconds=120)).enqueue()
    now = time.time()
    assert app.get_job(delayed.id).state == "scheduled"  # type: ignore[union-attr]
    assert app.backend.fetch(None, 10, "w1", 30, now) == []
    due = app.backend.fetch(None, 10, "w1", 30, now + 61)
    assert ids(due) == [delayed.id]
    assert ids(app.backend.fetch(None, 10, "w1", 30, now + 121)) == [at.id]


def test_naive_datetime_is_refused(app: Conveyor) -> None:
    @app.task(name="t.x")
    def x() -> None: ...

    with pytest.raises(ValueError, match="aware"):
        x.using(at=datetime.now()).enqueue()


def test_fifo_within_priority_and_priority_first(app: Conveyor) -> None:
    now = time.time()
    low = [record(app, priority=0, run_at=now - 10 + i) for i in range(3)]
    high = [record(app, priority=5, run_at=now - 5 + i) for i in range(2)]
    app.backend.enqueue(low + high)
    got = app.backend.fetch(["default"], 10, "w", 30, now)
    assert ids(got) == ids(high) + ids(low)


def test_strict_queue_order_and_all_queues(app: Conveyor) -> None:
    now = time.time()
    a = record(app, queue="low", run_at=now - 3)
    b = record(app, queue="critical", run_at=now - 2)
    c = record(app, queue="default", run_at=now - 1)
    app.backend.enqueue([a, b, c])
    assert ids(app.backend.fetch(["critical", "low"], 1, "w", 30, now)) == [b.id]
    assert ids(app.backend.fetch(["critical", "low"], 5, "w", 30, now)) == [a.id]
    app.backend.enqueue([a2 := record(app, queue="low"), d := record(app, queue="default")])
    # No queue list: every queue, "default" first.
    assert ids(app.backend.fetch(None, 1, "w", 30, time.time())) == [c.id]
    assert set(ids(app.backend.fetch(None, 5, "w", 30, time.time()))) == {a2.id, d.id}


def test_one_fetch_over_many_queues_takes_them_in_order_and_stops_when_full(app: Conveyor) -> None:
    """A worker of 60 queues: the drained, empty and paused ones are passed over, the batch
    fills from the next queues in order (priority first within each), and a queue past the
    full batch is not touched."""
    now = time.time()
    names = [f"q{n:02d}" for n in range(60)]
    q07 = [record(app, queue="q07", run_at=now - 5 + i) for i in range(3)]
    q20 = [record(app, queue="q20", run_at=now - 9), record(app, queue="q20", priority=3, run_at=now - 1)]
    q21 = [record(app, queue="q21", run_at=now - 9)]
    q40 = [record(app, queue="q40", run_at=now - 9 + i) for i in range(4)]
    later = record(app, queue="q03", state="scheduled", run_at=now + 600)
    app.backend.enqueue([*q40, *q21, *q20, *q07, later, *(record(app, queue=q) for q in ("q01", "q02"))])
    app.backend.fetch(["q01", "q02"], 10, "w0", 30, now)  # drained: they were used, now empty
    app.pause("q21")
    got = app.backend.fetch(names, 7, "w", 30, now)
    assert ids(got) == [*ids(q07), q20[1].id, q20[0].id, *ids(q40[:2])]
    assert {r.queue for r in got} == {"q07", "q20", "q40"} and all(r.state == "active" for r in got)
    reversed_order = app.backend.fetch(names[::-1], 2, "w", 30, now)
    assert ids(reversed_order) == ids(q40[2:])
    assert app.backend.fetch(names, 10, "w", 30, now) == []  # q21 paused, q03 not due
    app.resume("q21")
    assert ids(app.backend.fetch(None, 10, "w", 30, now)) == ids(q21)


def test_fetch_claims_with_a_lease_and_counts_the_attempt(app: Conveyor) -> None:
    r = record(app, max_attempts=3)
    app.backend.enqueue([r])
    now = time.time()
    (got,) = app.backend.fetch(None, 10, "w1", 30, now)
    assert got.state == "active" and got.attempts == 1 and got.locked_by == "w1"
    assert got.lease_until == pytest.approx(now + 30, abs=1)
    assert got.payload == r.payload and got.max_attempts == 3
    assert app.backend.fetch(None, 10, "w2", 30, now) == []
    assert app.get_job(r.id).state == "active"  # type: ignore[union-attr]


def test_paused_queue_is_skipped_until_resumed(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app, queue="mail")])
    app.pause("mail")
    assert app.backend.fetch(None, 10, "w", 30, time.time()) == []
    assert app.backend.fetch(["mail"], 10, "w", 30, time.time()) == []
    assert "mail" in app.stats().paused
    app.resume("mail")
    assert ids(app.backend.fetch(["mail"], 10, "w", 30, time.time())) == [r.id]


def test_concurrent_claimers_never_share_a_job(make_app: AppFactory) -> None:
    apps = [make_app() for _ in range(4)]  # separate connections, same namespace
    total = 1200
    apps[0].backend.enqueue([record(apps[0]) for _ in range(total)])
    claimed: list[list[str]] = [[] for _ in apps]

    def claim(n: int) -> None:
        backend = apps[n].backend
        while True:
            got = backend.fetch(None, 7, f"w{n}", 30, time.time())
            if not got:
                return
            claimed[n].extend(ids(got))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(apps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    everything = [i for part in claimed for i in part]
    assert len(everything) == total
    assert len(set(everything)) == total


def test_queue_length_limit_rejects_the_whole_batch(make_app: AppFactory) -> None:
    app = make_app(max_queue_length=3)

    @app.task(name="t.x")
    def x() -> None: ...

    x.enqueue()
    x.enqueue()
    with pytest.raises(QueueFull, match="default"):
        app.enqueue_many([x.job(), x.job()])
    assert app.stats().total("pending") == 2
    x.using(queue="other").enqueue()  # the limit is per queue
    x.enqueue()
    with pytest.raises(QueueFull):
        x.enqueue()
    assert app.stats().queues["default"]["pending"] == 3


def test_a_batch_spanning_queues_is_all_or_none_when_one_queue_is_full(make_app: AppFactory) -> None:
    app = make_app(max_queue_length=3)

    @app.task(name="t.x")
    def x(n: int) -> None: ...

    app.enqueue_many([x.job(1), x.job(2)])
    with pytest.raises(QueueFull, match="default"):
        # "other" has room; its job must not stay stored when "default" refuses.
        app.enqueue_many([x.job(3), x.using(queue="other").job(4), x.job(5)])
    assert app.stats().total("pending") == 2
