"""Admin listings: pages resumed from a cursor (a keyset, never an offset) on every state,
each state in its listing order, and a search that reads a bounded number of jobs and says
how many."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from conveyor.backends.listing import EVERY_STATE
from conveyor.job import Failure

from .helpers import ids, record

PER_STATE = 5


def _every_state(app: Conveyor, task: str = "t.noop", queues: str = "ab") -> dict[str, list[str]]:
    """``PER_STATE`` jobs of ``task`` in each state, over two ``queues`` (a and b), finished
    at distinct times in the order they were made; their ids by state."""
    now = time.time()
    made: dict[str, list[str]] = {state: [] for state in EVERY_STATE}
    backend = app.backend
    for i in range(PER_STATE):
        queue = queues[i % 2]
        later = record(app, task, queue=queue, run_at=now + 3600 + i)
        backend.enqueue([later])
        made["scheduled"].append(later.id)
        # Waiting for the scheduled job (using(after=...)).
        held = record(app, task, queue=queue, state="waiting")
        app.backend.enqueue_after([held], {held.id: (later.id,)}, time.time(), 0.0)  # type: ignore[attr-defined]
        made["waiting"].append(held.id)
        for state in ("active", "retry", "dead", "completed", "cancelled"):
            job = record(app, task, queue=queue, max_attempts=3)
            backend.enqueue([job])
            assert [r.id for r in backend.fetch([queue], 1, "w", 30, time.time())] == [job.id]
            at = now + 0.01 * len(made[state]) + 0.001 * i
            if state == "retry":
                backend.fail([Failure(job.id, "boom", retry_at=now + 3600 + i)], "w", at)
            elif state == "dead":
                backend.fail([Failure(job.id, "boom")], "w", at)
            elif state == "completed":
                backend.complete([(job.id, None)], "w", at)
            elif state == "cancelled":
                backend.fail([Failure(job.id, "stop", cancelled=True)], "w", at)
            made[state].append(job.id)
    for i in range(PER_STATE):
        waiting = record(app, task, queue=queues[i % 2], priority=i % 3, run_at=now - 10 + i)
        backend.enqueue([waiting])
        made["pending"].append(waiting.id)
    return made


def _all_pages(app: Conveyor, size: int, **filters: object) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = app.backend.list_jobs(limit=size, after=after, **filters)  # type: ignore[arg-type]
        assert len(page.records) <= size
        seen += ids(page.records)
        if page.next is None:
            return seen
        assert page.records, "a page with a next cursor is never empty"
        after = page.next
    raise AssertionError("the listing never ended")


def test_pages_from_a_cursor_cover_every_state_once(app: Conveyor) -> None:
    made = _every_state(app)
    every: list[str] = []
    for state in EVERY_STATE:
        whole = ids(app.backend.list_jobs(state, limit=1000).records)
        assert sorted(whole) == sorted(made[state]), state
        for size in (1, 2, 3):
            assert _all_pages(app, size, state=state) == whole, (state, size)
        in_a = ids(app.backend.list_jobs(state, queue="a", limit=1000).records)
        assert in_a == [i for i in whole if app.get_job(i).queue == "a"]  # type: ignore[union-attr]
        assert _all_pages(app, 2, state=state, queue="a") == in_a
        every += whole
    assert _all_pages(app, 4) == every  # every state in turn
    assert _all_pages(app, 3, queue="b") == [i for i in every if app.get_job(i).queue == "b"]  # type: ignore[union-attr]


def test_pending_lists_in_claim_order(app: Conveyor) -> None:
    now = time.time()
    records = [record(app, priority=i % 3, run_at=now - 100 + (i * 7) % 11) for i in range(12)]
    # Came due while waiting as scheduled: pending too, in its place.
    records.append(record(app, priority=1, run_at=now - 50, state="scheduled"))
    app.backend.enqueue(records)
    listed = ids(app.backend.list_jobs("pending", limit=100).records)
    assert len(listed) == 13
    assert _all_pages(app, 4, state="pending") == listed
    claimed = ids(app.backend.fetch(["default"], 100, "w", 30, time.time()))
    assert listed == claimed


def test_finished_jobs_list_newest_first(app: Conveyor) -> None:
    made = _every_state(app)
    for state in ("completed", "dead", "cancelled"):
        assert ids(app.backend.list_jobs(state, limit=100).records) == made[state][::-1], state


def test_a_cursor_is_a_place_not_a_count(app: Conveyor) -> None:
    made = _every_state(app)
    first = app.backend.list_jobs("dead", limit=2)
    second = app.backend.list_jobs("dead", limit=2, after=first.next)
    # New dead jobs (newer than every listed one) and a deleted one do not move the rest.
    job = record(app, max_attempts=1)
    app.backend.enqueue([job])
    app.backend.fetch(["default"], 1, "w", 30, time.time())
    app.backend.fail([Failure(job.id, "boom")], "w", time.time() + 10)
    app.delete(first.records[0].id)
    again = app.backend.list_jobs("dead", limit=2, after=first.next)
    assert ids(again.records) == ids(second.records) == made["dead"][::-1][2:4]


def test_search_reads_a_bounded_number_of_jobs_and_says_so(app: Conveyor) -> None:
    @app.task(name="mail.send")
    def send(to: str) -> None: ...

    for i in range(12):
        send.enqueue(f"user{i}@example.com")
    found = app.jobs_page("pending", search="user3@")
    assert [j.args for j in found.jobs] == [["user3@example.com"]]
    assert found.scanned == 12 and not found.stopped and found.next is None
    both = app.jobs_page("pending", search=['"t":"mail.send"', "user1"])
    assert sorted(j.args[0] for j in both.jobs) == [
        "user10@example.com",
        "user11@example.com",
        "user1@example.com",
    ]
    nothing = app.jobs_page("pending", search="nobody", scan=5)
    assert nothing.jobs == [] and nothing.scanned == 5 and nothing.stopped and nothing.next is not None
    rest = app.jobs_page("pending", search="nobody", scan=5, after=nothing.next)
    assert rest.scanned == 5 and rest.stopped
    last = app.jobs_page("pending", search="nobody", scan=5, after=rest.next)
    assert last.scanned == 2 and not last.stopped and last.next is None
    first_two = app.jobs_page("pending", search="mail.send", limit=2)
    assert len(first_two.jobs) == 2 and first_two.next is not None and first_two.scanned == 2


def test_a_task_search_lists_that_task_s_jobs_in_every_state(app: Conveyor) -> None:
    ours = _every_state(app, "t.ours", "ab")
    theirs = _every_state(app, "t.theirs", "cd")
    queue_of = {job_id: "ab"[n % 2] for state in EVERY_STATE for n, job_id in enumerate(ours[state])}
    for state in EVERY_STATE:
        page = app.backend.list_jobs(state, limit=100, task="t.ours")
        assert sorted(ids(page.records)) == sorted(ours[state]), state
        assert page.scanned is not None and page.scanned >= PER_STATE and not page.stopped, state
        assert page.next is None, state
        assert sorted(_all_pages(app, 2, state=state, task="t.ours")) == sorted(ours[state]), state
        in_a = ids(app.backend.list_jobs(state, "a", limit=100, task="t.ours").records)
        assert sorted(in_a) == sorted(i for i in ours[state] if queue_of[i] == "a"), state
        assert app.backend.list_jobs(state, "c", limit=100, task="t.ours").records == [], state
        assert app.backend.list_jobs(state, limit=100, task="t.none").records == [], state
    dead = app.jobs_page("dead", task="t.theirs")
    assert sorted(j.id for j in dead.jobs) == sorted(theirs["dead"])
    assert {j.task for j in dead.jobs} == {"t.theirs"}
    assert sorted(_all_pages(app, 3, task="t.ours")) == sorted(i for made in ours.values() for i in made)
    # With a text too: both must hold. A bound stops it, and it goes on from there.
    assert app.jobs_page("completed", task="t.ours", search="nobody").jobs == []
    assert len(app.jobs_page("completed", task="t.ours", search="t.ours").jobs) == PER_STATE
    found: list[str] = []
    after = None
    for _ in range(100):
        step = app.jobs_page("completed", task="t.ours", limit=1, scan=1, after=after)
        assert step.scanned is not None and step.scanned <= 1 and len(step.jobs) <= 1
        found += [j.id for j in step.jobs]
        if step.next is None:
            break
        after = step.next
    assert sorted(found) == sorted(ours["completed"])


def test_a_batch_s_jobs_are_found_by_task(app: Conveyor) -> None:
    @app.task(name="t.in_batch")
    def in_batch(i: int) -> None: ...

    app.batch([in_batch.job(i) for i in range(3)])  # stored by the store's batch path
    in_batch.enqueue(9)
    found = app.jobs_page("pending", task="t.in_batch")
    assert sorted(j.args[0] for j in found.jobs) == [0, 1, 2, 9]


def test_offsets_still_work(app: Conveyor) -> None:
    now = time.time()
    app.backend.enqueue([record(app, run_at=now - 10 + i) for i in range(6)])
    whole = ids(app.jobs(state="pending"))  # type: ignore[arg-type]
    assert ids(app.jobs(state="pending", limit=2, offset=2)) == whole[2:4]  # type: ignore[arg-type]


def test_a_bad_cursor_is_a_clear_error(app: Conveyor) -> None:
    app.backend.enqueue([record(app)])
    page = app.backend.list_jobs("pending", limit=1)
    for bad in ("nonsense", "pending~x~1~id", "dead~", "pending~1~nan~id"):
        with pytest.raises(ValueError, match="cursor"):
            app.backend.list_jobs("pending", after=bad)
    with pytest.raises(ValueError, match="cursor"):
        app.backend.list_jobs("dead", after=page.next or "pending~0~1.5~x")


def test_a_limited_queue_lists_the_jobs_waiting_in_its_buckets(app: Conveyor) -> None:
    @app.task(name="bill", concurrency=1, limit_key=lambda customer: f"customer:{customer}")
    def bill(customer: str) -> None: ...

    jobs = [bill.enqueue(c) for c in ("a", "b", "c")]
    expected = sorted(j.id for j in jobs)
    for queue in ("default", None):
        listed = app.jobs_page(state="pending", queue=queue, limit=10)
        assert sorted(j.id for j in listed.jobs) == expected, queue
        assert {j.queue for j in listed.jobs} == {"default"}
        assert sorted(_all_pages(app, 1, state="pending", queue=queue)) == expected
    assert app.retry_all("pending") == 0  # pending jobs are not retried; found all the same
    assert app.delete_all("pending", queue="default") == 3
    assert app.jobs(state="pending") == []
