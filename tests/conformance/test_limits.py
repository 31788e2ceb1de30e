"""Concurrency and rate limits, decided by the store: what a claim takes from a limited task,
key or queue, with times passed in (``now``) so that nothing here waits on a clock."""

from __future__ import annotations

import threading
import time

from conveyor import Conveyor
from conveyor.job import Failure, WorkerInfo

from .helpers import ids


def _limited(app: Conveyor, **limits: object) -> object:
    @app.task(name="t.limited", **limits)  # type: ignore[call-overload, untyped-decorator]
    def limited(n: int, key: str = "a") -> None: ...

    return limited


def _plain(app: Conveyor) -> object:
    @app.task(name="t.plain")
    def plain(n: int) -> None: ...

    return plain


def test_concurrency_caps_a_claim_and_leaves_other_tasks_free(app: Conveyor) -> None:
    limited = _limited(app, concurrency=2)
    plain = _plain(app)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    held = [limited.enqueue(n) for n in range(5)]  # type: ignore[attr-defined]
    free = [plain.enqueue(n) for n in range(3)]  # type: ignore[attr-defined]
    got = app.backend.fetch(None, 20, "w1", 30, now)
    assert {r.id for r in got} == {j.id for j in held[:2]} | {j.id for j in free}
    # Held jobs wait in the store, costing no attempt: a second worker gets nothing.
    assert app.backend.fetch(None, 20, "w2", 30, now) == []
    assert [app.get_job(j.id).attempts for j in held[2:]] == [0, 0, 0]  # type: ignore[union-attr]
    assert [app.get_job(j.id).state for j in held[2:]] == ["pending"] * 3  # type: ignore[union-attr]
    # A completed run frees its slot at once, a failed one too: FIFO among the held ones.
    app.backend.complete([(held[0].id, None)], "w1", now)
    assert ids(app.backend.fetch(None, 20, "w2", 30, now)) == [held[2].id]
    app.backend.fail([Failure(held[1].id, "boom", retry_at=now + 60)], "w1", now)
    assert ids(app.backend.fetch(None, 20, "w2", 30, now)) == [held[3].id]
    assert app.backend.fetch(None, 20, "w2", 30, now) == []


def test_each_key_has_its_own_slots(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": f"k:{key}")
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    a = [limited.enqueue(n, "a") for n in range(3)]  # type: ignore[attr-defined]
    b = [limited.enqueue(n, "b") for n in range(3)]  # type: ignore[attr-defined]
    c = limited.using(limit_key="k:c").enqueue(9)  # type: ignore[attr-defined]
    assert {r.id for r in app.backend.fetch(None, 20, "w", 30, now)} == {a[0].id, b[0].id, c.id}
    assert app.backend.fetch(None, 20, "w", 30, now) == []
    job = app.get_job(b[1].id)
    assert job is not None and job.queue == "default" and job.limit_key == "k:b" and job.state == "pending"


def test_rate_meters_starts_with_the_stated_burst(app: Conveyor) -> None:
    limited = _limited(app, rate="10/m")  # burst 1 (a tenth of the period's): one start per 6 s
    jobs = [limited.enqueue(n) for n in range(5)]  # type: ignore[attr-defined]
    now = time.time() + 1
    assert ids(app.backend.fetch(None, 20, "w", 30, now)) == [jobs[0].id]
    assert app.backend.fetch(None, 20, "w", 30, now + 3) == []
    assert ids(app.backend.fetch(None, 20, "w", 30, now + 6.1)) == [jobs[1].id]
    # A quiet spell fills the bucket up to its burst, no more.
    assert ids(app.backend.fetch(None, 20, "w", 30, now + 3600)) == [jobs[2].id]


def test_a_per_second_rate_bursts_one_seconds_allowance(app: Conveyor) -> None:
    limited = _limited(app, rate="4/s")  # burst 4 (a second's), then one start per 0.25 s
    jobs = [limited.enqueue(n) for n in range(12)]  # type: ignore[attr-defined]
    now = time.time() + 1
    assert ids(app.backend.fetch(None, 20, "w", 30, now)) == [j.id for j in jobs[:4]]
    assert app.backend.fetch(None, 20, "w", 30, now + 0.2) == []
    assert ids(app.backend.fetch(None, 20, "w", 30, now + 0.26)) == [jobs[4].id]
    # A gap between claims shorter than the burst loses no tokens: 0.75 s made 3.
    assert ids(app.backend.fetch(None, 20, "w", 30, now + 1.01)) == [j.id for j in jobs[5:8]]
    # A quiet spell fills the bucket up to its burst, no more.
    assert ids(app.backend.fetch(None, 20, "w", 30, now + 60)) == [j.id for j in jobs[8:12]]


def test_claims_a_loaded_machine_spaces_out_still_start_the_whole_rate(app: Conveyor) -> None:
    # Claims 0.3 s apart (workers busy or slow to be scheduled): the burst holds each gap's
    # tokens, so every claim takes six and the rate is kept. With a burst of a tenth of a
    # second, as before, each took two: a third of the rate, with jobs waiting.
    limited = _limited(app, rate="20/s")
    jobs = [limited.enqueue(n) for n in range(100)]  # type: ignore[attr-defined]
    now = time.time() + 1
    started = [len(app.backend.fetch(None, 50, "w", 30, now + 0.3 * n)) for n in range(11)]
    # (Six a claim, give or take the float: a token's fraction carries over to the next.)
    assert started[0] == 20 and all(5 <= n <= 7 for n in started[1:]) and sum(started) in (79, 80), started
    assert len(jobs) - app.stats().queues["default"]["pending"] == sum(started)


def test_a_held_job_does_not_block_the_jobs_behind_it(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    plain = _plain(app)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    running = limited.using(priority=9).enqueue(0)  # type: ignore[attr-defined]
    assert ids(app.backend.fetch(None, 1, "w", 30, now)) == [running.id]
    limited.using(priority=9).enqueue(1)  # type: ignore[attr-defined]
    low = plain.using(priority=-5).enqueue(2)  # type: ignore[attr-defined]
    assert ids(app.backend.fetch(None, 1, "w", 30, now)) == [low.id]


def test_priority_holds_among_the_jobs_a_limit_lets_through(app: Conveyor) -> None:
    limited = _limited(app, concurrency=5)
    plain = _plain(app)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    p0 = plain.enqueue(0)  # type: ignore[attr-defined]
    l1 = limited.using(priority=1).enqueue(1)  # type: ignore[attr-defined]
    p2 = plain.using(priority=2).enqueue(2)  # type: ignore[attr-defined]
    l3 = limited.using(priority=3).enqueue(3)  # type: ignore[attr-defined]
    assert ids(app.backend.fetch(["default"], 4, "w", 30, now)) == [l3.id, p2.id, l1.id, p0.id]


def test_a_lost_worker_gives_its_slot_back_with_its_lease(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    first, second = limited.enqueue(1), limited.enqueue(2)  # type: ignore[attr-defined]
    assert ids(app.backend.fetch(None, 5, "w1", 1, now)) == [first.id]
    assert app.backend.fetch(None, 5, "w2", 30, now + 0.5) == []
    assert app.backend.recover(now + 2, now - 3600) == 1
    assert ids(app.backend.fetch(None, 5, "w2", 30, now + 2)) == [second.id]


def test_a_cancelled_run_frees_its_slot(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    first, second = limited.enqueue(1), limited.enqueue(2)  # type: ignore[attr-defined]
    app.backend.fetch(None, 5, "w", 30, now)
    assert app.cancel(first.id) == 1
    app.backend.fail([Failure(first.id, "cancelled", cancelled=True)], "w", now)
    assert ids(app.backend.fetch(None, 5, "w", 30, now)) == [second.id]


def test_queue_limit_counts_every_job_of_the_queue(app: Conveyor) -> None:
    limited = _limited(app, concurrency=5)
    plain = _plain(app)
    app.limit_queue("default", concurrency=3)
    app.define_limits()
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    for n in range(4):
        plain.enqueue(n)  # type: ignore[attr-defined]
        limited.enqueue(n)  # type: ignore[attr-defined]
    assert len(app.backend.fetch(None, 20, "w", 30, now)) == 3
    assert app.backend.fetch(None, 20, "w", 30, now) == []
    app.limit_queue("default")  # lifted: only the task's own limit is left
    app.define_limits()
    assert len(app.backend.fetch(None, 20, "w", 30, now)) == 5  # the rest: 4 limited jobs fit in 5


def test_limits_are_visible_in_stats(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": key)
    for key in ("a", "a", "b"):
        limited.enqueue(0, key)  # type: ignore[attr-defined]
    app.backend.fetch(None, 20, "w", 30, time.time())
    app.backend.heartbeat(WorkerInfo("w", "h", 1, ("default",), 1, time.time()), 30, time.time())
    stats = app.stats()
    assert stats.queues["default"] == {"active": 2, "pending": 1}
    (usage,) = stats.limits
    assert (usage.queue, usage.name, usage.active, usage.waiting, usage.keys) == (
        "default",
        "t.limited",
        2,
        1,
        2,
    )
    assert usage.limit.concurrency == 1


def test_a_queue_listing_and_purge_include_its_limited_jobs(app: Conveyor) -> None:
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": key)
    plain = _plain(app)
    jobs = [limited.enqueue(0, "a"), limited.enqueue(1, "b"), plain.enqueue(2)]  # type: ignore[attr-defined]
    listed = app.jobs(state="pending", queue="default")
    assert {j.id for j in listed} == {j.id for j in jobs}
    assert {j.queue for j in listed} == {"default"}
    assert app.delete_all("pending", queue="default") == 3
    assert app.stats().queues.get("default", {}).get("pending", 0) == 0


def test_a_burst_worker_waits_for_the_jobs_its_limits_meter_out(app: Conveyor) -> None:
    runs: list[float] = []

    @app.task(name="t.metered", rate="5/s")  # burst 5, then one start every 0.2 s
    def metered(n: int) -> None:
        runs.append(time.time())

    for n in range(7):
        metered.enqueue(n)
    worker = app.worker(concurrency=4, burst=True, grace=5)
    thread = threading.Thread(target=worker.run)
    started = time.time()
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and len(runs) == 7
    # Two refills of 0.2 s each after the first claim, which is after ``started``. (Counted
    # from the first run's start, a loaded machine could start the burst's first job late
    # and the last on time: 0.21 s was seen at load 9-16.)
    assert runs[6] - started >= 0.38


def test_limited_jobs_due_later_start_when_due_in_a_claim_of_their_queue(app: Conveyor) -> None:
    # Buckets are not in the list of queues: the claim of the queue promotes their due jobs
    # (and its own), whether it names the queue or serves every queue.
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": f"k:{key}")
    plain = _plain(app)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    later = [limited.using(delay=60).enqueue(n, key) for n, key in ((1, "a"), (2, "b"))]  # type: ignore[attr-defined]
    soon = plain.using(delay=60).enqueue(3)  # type: ignore[attr-defined]
    assert app.backend.fetch(["default"], 10, "w", 30, now) == []
    got = app.backend.fetch(["default"], 10, "w", 30, now + 61)
    assert {r.id for r in got} == {j.id for j in later} | {soon.id}
    again = limited.using(delay=200).enqueue(4, "c")  # type: ignore[attr-defined]
    assert ids(app.backend.fetch(None, 10, "w", 30, now + 61)) == []
    assert ids(app.backend.fetch(None, 10, "w", 30, now + 300)) == [again.id]


def test_a_paused_limited_queue_gives_nothing(app: Conveyor) -> None:
    limited = _limited(app, concurrency=2)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    job = limited.enqueue(1)  # type: ignore[attr-defined]
    app.pause("default")
    assert app.backend.fetch(["default"], 5, "w", 30, now) == []
    assert app.backend.fetch(None, 5, "w", 30, now) == []
    app.resume("default")
    assert ids(app.backend.fetch(["default"], 5, "w", 30, now)) == [job.id]


def test_more_keys_than_a_claim_looks_at_all_get_their_turn(app: Conveyor) -> None:
    # A claim of one job looks at 10 keys at most (LOOK_AT_BUCKETS + 2): thirty claims still
    # reach every one of thirty keys, each once (each key's one slot is then taken).
    limited = _limited(app, concurrency=1, limit_key=lambda n, key="a": f"k:{key}")
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    jobs = [limited.enqueue(n, f"{n:02d}") for n in range(30) for _ in range(2)]  # type: ignore[attr-defined]
    firsts = {j.id for j in jobs[::2]}
    got = [r for _ in range(30) for r in app.backend.fetch(["default"], 1, "w", 30, now)]
    assert len(got) == 30 and {r.id for r in got} == firsts
    assert app.backend.fetch(["default"], 5, "w", 30, now) == []
