"""A caller waiting for a job's result must never keep an idle worker from starting it.

The waiter marks the job's row (``waited``), which locks it for an instant; a claim passing it
then (``SKIP LOCKED``) leaves it, and the worker, woken for nothing, would sleep its whole poll
interval. Here that passing claim is made certain: another transaction holds the row while the
worker is woken, so the worker goes back to sleep with the job pending. The waiter's mark must
wake it again."""

from __future__ import annotations

import threading
import time

import psycopg

from conveyor.testing import drain
from conveyor.worker.worker import Worker
from tests.postgres.conftest import AppFactory


def test_a_waiter_wakes_workers_that_passed_the_job_while_it_marked_it(make_app: AppFactory) -> None:
    app = make_app(namespace="waitrace")

    @app.task(name="t.stamp")
    def stamp() -> float:
        return time.time()

    job = stamp.enqueue()
    # Held by another transaction: the worker's claims pass it (SKIP LOCKED).
    holder = psycopg.connect(app.backend.conninfo)  # type: ignore[attr-defined]
    holder.execute(f"SELECT 1 FROM {app.namespace}.jobs WHERE id = %s FOR UPDATE", (job.id,))
    worker = Worker(app, concurrency=1, idle_wait=30.0)  # a 30 s poll: only a NOTIFY wakes it
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # it claimed nothing and went idle
        holder.commit()  # the job is free again; nothing tells the worker
        time.sleep(0.3)
        assert app.get_job(job.id).state == "pending"  # type: ignore[union-attr]
        started = time.monotonic()
        assert isinstance(job.result(timeout=10), float)
        assert time.monotonic() - started < 5.0
    finally:
        holder.close()
        worker.stop()
        stamp.enqueue()  # its NOTIFY ends the worker's wait, so it sees the stop now
        thread.join(15)


def test_drain_runs_a_job_another_connection_holds_for_an_instant(make_app: AppFactory) -> None:
    """``drain`` claims with SKIP LOCKED like a worker; a job held for an instant (a waiter
    marking it, an admin call) when the drain looks must still run in that drain, limited or
    not (a drain racing ``aresult`` in another thread left one pending about 1 run in 100)."""
    app = make_app(namespace="drainheld")

    @app.task(name="t.plain")
    def plain(n: int) -> int:
        return n

    @app.task(name="t.limited", concurrency=1)
    def limited(n: int) -> int:
        return n

    for task in (plain, limited):
        job = task.enqueue(7)
        holder = psycopg.connect(app.backend.conninfo)  # type: ignore[attr-defined]
        holder.execute(f"SELECT 1 FROM {app.namespace}.jobs WHERE id = %s FOR UPDATE", (job.id,))
        release = threading.Timer(0.2, holder.commit)
        release.start()
        try:
            drained = drain(app)
        finally:
            release.join()
            holder.close()
        assert drained.completed == [job.id]
        assert job.result(timeout=0) == 7
