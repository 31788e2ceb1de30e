"""PostgreSQL's limited claim takes the jobs of a bucket without a rate before it takes the
queue's lock (migration 15, ``claim_limited``): a claim that waited for the lock while another
one took the bucket's slots gives back what it took past the limit, each job as it was. Its
jobs ahead come before the lock too, a run's chain of them in one claim (migration 18)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from conveyor.backends.postgres import PostgresBackend
from conveyor.job import Failure

from .conftest import AppFactory

ROW = "state, attempts, progress, locked_by, lease_until, started_at, finished_at, last_error"


def _rows(conn: psycopg.Connection[Any], schema: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    found = conn.execute(f"SELECT id, {ROW} FROM {schema}.jobs WHERE id = ANY(%s)", [ids]).fetchall()
    return {row[0]: tuple(row[1:]) for row in found}


def _wait_for_lock(conn: psycopg.Connection[Any], what: str, timeout: float = 30.0) -> None:
    """Until some backend waits for an advisory lock (the second claim, at the queue's lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchone()
        if row is not None and row[0] > 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"no claim waited for the queue's lock: {what}")


def test_a_claim_gives_back_what_it_took_past_the_limit_before_the_lock(
    make_app: AppFactory, db_url: str
) -> None:
    app = make_app(namespace="lim")

    @app.task(name="t.pair", concurrency=2)
    def pair(n: int) -> None: ...

    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    jobs = [pair.enqueue(n) for n in range(4)]
    # The first job ran once and waits for its retry: attempts, times and error set, now
    # the last in claim order (its run_at is the retry's).
    assert [r.id for r in backend.fetch(None, 1, "w0", 30, now)] == [jobs[0].id]
    backend.fail([Failure(jobs[0].id, "boom", retry_at=now + 1)], "w0", now)
    now += 1
    ids = [j.id for j in jobs]
    with psycopg.connect(db_url, autocommit=True) as look, psycopg.connect(db_url) as first:
        before = _rows(look, backend.schema, ids)
        # One claim takes both slots and keeps the queue's lock (its transaction stays open).
        limits = backend._limits_now()["default"]
        params = {"limit": 5, "worker": "w1", "until": now + 30, "now": now}
        taken = backend._claim_limited(first, "default", limits, params)
        assert sorted(row[0] for row in taken) == sorted(ids[1:3])
        # Another claim counts no running job yet (the first is not committed), takes the
        # other two before the lock, then waits for it.
        second: list[list[str]] = []
        thread = threading.Thread(
            target=lambda: second.append([r.id for r in backend.fetch(None, 5, "w2", 30, now)])
        )
        thread.start()
        try:
            _wait_for_lock(look, "the second claim")
            first.commit()
        finally:
            thread.join(30)
        # Under the lock it counts the first claim's two and its own: both of its go back.
        assert second == [[]]
        after = _rows(look, backend.schema, ids)
    assert [after[i][0] for i in ids] == ["pending", "active", "active", "pending"]
    # (The first job was promoted from retry to pending by the first claim.)
    assert after[ids[0]][1:] == before[ids[0]][1:] and after[ids[3]] == before[ids[3]]
    assert before[ids[0]][1] == 1 and before[ids[0]][6] is not None  # (the retried job's own fields)
    # The slots free again: the next claim takes the given-back jobs in claim order.
    backend.complete([(ids[1], None)], "w1", now)
    assert [r.id for r in backend.fetch(None, 5, "w2", 30, now)] == [ids[3]]


def test_no_jobs_are_taken_ahead_in_a_queue_with_a_rate(make_app: AppFactory) -> None:
    # Threads busy with chains of jobs ahead claim less often, and a rated bucket of the same
    # queue would lose starts (PostgresBackend.takes_jobs_ahead): in a queue with a rate
    # anywhere, a claim takes none; in the same layout without the rate, it does.
    app = make_app(namespace="ahead")

    @app.task(name="t.one", queue="mixed", concurrency=1)
    def one(n: int) -> None: ...

    @app.task(name="t.rated", queue="mixed", rate="20/s")
    def rated(n: int) -> None: ...

    @app.task(name="t.alone", queue="alone", concurrency=1)
    def alone(n: int) -> None: ...

    backend = app.backend
    assert isinstance(backend, PostgresBackend) and backend.takes_jobs_ahead
    now = time.time() + 2  # after every enqueue below (a loaded machine): all due by then
    mixed = [one.enqueue(n) for n in range(3)]
    rated.enqueue(0)
    plain = [alone.enqueue(n) for n in range(3)]
    for queue, jobs, taken in (("mixed", mixed, []), ("alone", plain, [plain[1].id])):
        [first] = backend.fetch([queue], 1, "w", 30, now)
        assert first.id == jobs[0].id
        got, after = backend.fetch_ahead([queue], 0, "w", 30, now, [(first.queue, first.id, first.attempts)])
        assert [r.id for r in got] == taken and list(after) == taken


def test_a_run_listed_twice_takes_a_chain_of_jobs_ahead(make_app: AppFactory) -> None:
    # chains_jobs_ahead (migration 18): the second job taken for the same run follows the
    # first, and holds no slot until that one ends (the worker fills a run's chain in one
    # claim). A chain's jobs take the slot one after the other, and each that ran gets the end
    # of the one before it as its start.
    app = make_app(namespace="chain")

    @app.task(name="t.chain", concurrency=1)
    def chain(n: int) -> None: ...

    jobs = [chain.enqueue(n) for n in range(5)]
    now = time.time() + 2  # after every enqueue (a loaded machine): all due by then
    backend = app.backend
    assert isinstance(backend, PostgresBackend) and backend.chains_jobs_ahead
    [first] = backend.fetch(None, 1, "w1", 30, now)
    run = (first.queue, first.id, first.attempts)
    got, after = backend.fetch_ahead(None, 0, "w1", 30, now, [run, run])
    assert [r.id for r in got] == [jobs[1].id, jobs[2].id]
    assert after == {jobs[1].id: first.id, jobs[2].id: jobs[1].id}
    assert backend.fetch(None, 5, "w2", 30, now) == []  # one slot, the run's
    for done, at in ((first, 0.1), (jobs[1], 0.2)):
        backend.complete([(done.id, None)], "w1", now + at)
        assert backend.fetch(None, 5, "w2", 30, now + at) == []  # handed on, never free
    backend.complete([(jobs[2].id, None)], "w1", now + 0.3)
    assert [r.id for r in backend.fetch(None, 5, "w2", 30, now + 0.3)] == [jobs[3].id]
    for job, start in ((jobs[1], now + 0.1), (jobs[2], now + 0.2)):
        started = app.get_job(job.id).started_at  # type: ignore[union-attr]
        assert started is not None and abs(started.timestamp() - start) < 0.01


def test_a_claim_of_jobs_ahead_alone_does_not_wait_for_the_lock(make_app: AppFactory, db_url: str) -> None:
    # Jobs ahead hold no slot, so no count decides them: they are taken before the queue's
    # lock, and a claim that takes nothing to start now takes no lock at all (migration 18;
    # before it, every limited claim waited for the lock, and took its jobs ahead under it).
    app = make_app(namespace="nolock")

    @app.task(name="t.pair", concurrency=2)
    def pair(n: int) -> None: ...

    jobs = [pair.enqueue(n) for n in range(4)]
    now = time.time() + 2  # after every enqueue (a loaded machine): all due by then
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    [first] = backend.fetch(None, 1, "w1", 30, now)
    run = (first.queue, first.id, first.attempts)
    with psycopg.connect(db_url) as holder:
        # Another transaction holds the queue's lock (as a claim counting under it does).
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [backend._limits_lock("default")])
        got: list[list[str]] = []
        thread = threading.Thread(
            target=lambda: got.append([r.id for r in backend.fetch_ahead(None, 0, "w1", 30, now, [run])[0]])
        )
        thread.start()
        thread.join(10)
        waited = thread.is_alive()
        holder.rollback()
        thread.join(30)
    assert not waited, "a claim of jobs ahead alone waited for the queue's lock"
    assert got == [[jobs[1].id]]
