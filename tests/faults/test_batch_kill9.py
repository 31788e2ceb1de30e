"""kill -9 while a batch finishes: every job runs, each callback is enqueued exactly once
(``conveyor.batch``), on every store and on Redis Cluster.

Two worker processes drain the batch; they are killed (and replaced) as it passes 50%, 80%,
95% and 99% ended, and once more as its last jobs end, so that kills land between a job's end
and its batch's counters (the Redis forward, finished by housekeeping) and between a callback's
decision and its enqueue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from . import figures
from .conftest import FULL, LEASE, Workers, size

KILL_AT = (0.5, 0.8, 0.95, 0.99, 1.0)
LEASE_S = 2.0 if FULL else LEASE


def _args() -> list[str]:
    return ["--concurrency", "8", "--prefetch", "8", "--grace", "5"]


def _kill_while_a_batch_finishes(kind: str, url: str, make_workers: Callable[..., Workers]) -> None:
    n = size(300, 10_000)
    w = make_workers(url, lease=LEASE_S)
    work, note = w.app.tasks["work"], w.app.tasks["note"]
    started = time.monotonic()
    batch = w.app.batch(
        [work.using(retries=20).job(k) for k in range(n)],
        on_success=note.job("success"),
        on_complete=note.job("complete"),
        on_death=note.job("death"),
    )
    procs = [w.start(*_args()), w.start(*_args())]
    kills = 0
    victim = 0
    for share in KILL_AT:

        def reached(share: float = share) -> bool:
            status = batch.status()
            return status["total"] - status["unfinished"] >= min(n, int(share * n))

        w.wait_for(reached, timeout=size(90, 900), what=f"the batch to reach {share:.0%}")
        w.kill(procs[victim])
        kills += 1
        procs[victim] = w.start(*_args())
        victim = 1 - victim

    def callbacks_ran() -> bool:
        counts = w.counts()
        return counts["success"] >= 1 and counts["complete"] >= 1

    w.wait_for(callbacks_ran, timeout=size(60, 300), what="both callbacks to run")
    # Housekeeping passes after the callbacks: a second enqueue would show up by now.
    time.sleep(3 * LEASE_S)
    elapsed = time.monotonic() - started
    status = batch.wait(timeout=30)
    counts = w.counts()
    lost = {str(k) for k in range(n)} - set(counts)
    callbacks = batch.refresh().callbacks
    runs = {kind: counts[kind] for kind in ("success", "complete", "death")}
    figures.record(
        kind,
        "kill -9 batch",
        jobs=n,
        kills=kills,
        lost=len(lost),
        duplicates=sum(max(0, runs[k] - 1) for k in runs),
        success_runs=runs["success"],
        complete_runs=runs["complete"],
        death_runs=runs["death"],
        seconds=round(elapsed, 1),
    )
    assert not lost, f"{len(lost)} jobs lost: {sorted(lost)[:20]}"
    assert status == {"total": n, "completed": n, "dead": 0, "cancelled": 0, "unfinished": 0}
    assert runs["death"] == 0
    for kind in ("success", "complete"):
        snap = w.app.get_job(callbacks[kind])
        assert snap is not None and snap.state == "completed", (kind, snap)
        # Enqueued once: one run, or more only if a kill caught that very run (then its
        # attempts say so: delivery is at least once, the enqueue exactly once).
        assert runs[kind] == 1 or snap.attempts >= runs[kind], (kind, runs[kind], snap)
    notes = [j for j in w.app.jobs(state="completed", queue="default", limit=n + 100) if j.task == "note"]
    assert sorted(j.id for j in notes) == sorted([callbacks["success"], callbacks["complete"]])


def test_kill_9_while_a_batch_finishes(
    store: str, store_url: str, make_workers: Callable[..., Workers]
) -> None:
    _kill_while_a_batch_finishes(store, store_url, make_workers)


def test_kill_9_while_a_batch_finishes_on_redis_cluster(
    request: pytest.FixtureRequest, make_workers: Callable[..., Workers]
) -> None:
    host, port = request.getfixturevalue("redis_cluster").nodes[0]
    _kill_while_a_batch_finishes("redis-cluster", f"redis+cluster://{host}:{port}", make_workers)
