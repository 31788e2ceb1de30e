"""Worker-side faults on every store: SIGTERM during long jobs, poison jobs that kill their
process, jobs that outlive their timeout, and an enqueue flood against a queue limit."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import pytest

from conveyor import QueueFull

from . import figures
from .conftest import Workers, size


def _state(w: Workers, job_id: str) -> str:
    snap = w.app.get_job(job_id)
    return "missing" if snap is None else snap.state


def test_sigterm_finishes_short_jobs_and_hands_back_long_ones(
    store: str, store_url: str, make_workers: Callable[..., Workers]
) -> None:
    w = make_workers(store_url)
    long = w.app.tasks["long"]
    short = [long.enqueue(i, 0.4) for i in range(2)]
    slow = [long.enqueue(10 + i, 1.8) for i in range(2)]
    proc = w.start("--concurrency", "4", "--grace", "0.8")
    w.wait_for(lambda: all(_state(w, j.id) == "active" for j in short + slow), what="for 4 active jobs")
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    took = time.monotonic() - signalled
    assert took < 0.8 + 3.0, took  # the grace period, then out
    for job in short:
        assert job.result(timeout=1) == job.args[0]
    for job in slow:
        snap = w.app.get_job(job.id)
        assert snap is not None and snap.state == "pending" and snap.attempts == 0, snap
    assert w.app.workers() == []
    # Handed back, not lost: the next worker runs them.
    started = time.monotonic()
    w.start("--concurrency", "4", "--burst")
    for job in slow:
        assert job.result(timeout=30) == job.args[0]
    counts = w.counts()
    assert all(counts[f"long-{j.args[0]}"] == 1 for j in short + slow), counts
    figures.record(
        store,
        "SIGTERM",
        jobs=4,
        kills=0,
        lost=0,
        duplicates=sum(c - 1 for c in counts.values()),
        recover_s=round(time.monotonic() - started, 2),
        exit_s=round(took, 2),
        handed_back=len(slow),
    )


def test_poison_jobs_end_dead_and_the_others_run(
    store: str, store_url: str, make_workers: Callable[..., Workers]
) -> None:
    w = make_workers(store_url)
    exit_job = w.app.tasks["exit"].enqueue()
    segv_job = w.app.tasks["segfault"].enqueue()
    work = w.app.tasks["work"]
    good = w.app.enqueue_many([work.job(i, 0.01) for i in range(size(40, 400))])
    started = time.monotonic()
    # Supervised: a child that dies with the poison is replaced. One job per child at a
    # time, so that each death is the run of the job that caused it.
    supervisor = w.start("--processes", "2", "--concurrency", "1", "--prefetch", "0", "--grace", "2")
    for job in (exit_job, segv_job):
        job_id = job.id
        w.wait_for(lambda: _state(w, job_id) == "dead", timeout=60, what=f"for {job.task} to be dead")  # noqa: B023
    for job in good:
        assert job.result(timeout=60) == job.args[0]
    took = time.monotonic() - started
    for job in (exit_job, segv_job):
        snap = w.app.get_job(job.id)
        assert snap is not None and snap.attempts == 2, snap  # retries=1: two runs, both lost
        assert (snap.last_error or "").startswith("worker lost"), snap.last_error
    counts = w.counts()
    assert counts["exit"] == 2 and counts["segfault"] == 2, counts
    assert supervisor.poll() is None, "the supervisor died with its children"
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0
    figures.record(
        store,
        "poison (os._exit, segfault)",
        jobs=len(good) + 2,
        kills=4,
        lost=sum(1 for j in good if counts[str(j.args[0])] == 0),
        duplicates=sum(counts[str(j.args[0])] - 1 for j in good if counts[str(j.args[0])] > 1),
        recover_s=round(took, 2),
    )


@pytest.mark.parametrize("task", ["overtime", "overtime_async"])
def test_a_job_past_its_timeout_is_stopped(
    store: str, store_url: str, make_workers: Callable[..., Workers], task: str
) -> None:
    w = make_workers(store_url)
    late = w.app.tasks[task].enqueue(1.5)
    work = w.app.tasks["work"]
    good = w.app.enqueue_many([work.job(i) for i in range(20)])
    w.start("--concurrency", "2")
    w.wait_for(lambda: _state(w, late.id) == "dead", timeout=20, what="for the timeout")
    snap = w.app.get_job(late.id)
    assert snap is not None and "timed out after 0.5 s" in (snap.last_error or ""), snap
    # Measured by the worker's own records, from the fetch that started the run to the
    # failure written for it: the interpreter's start-up is no part of the bound.
    assert snap.started_at is not None and snap.finished_at is not None, snap
    took = (snap.finished_at - snap.started_at).total_seconds()
    assert 0.49 < took < 2.0, f"not stopped at its 0.5 s timeout: dead {took:.2f} s after it started"
    for job in good:
        assert job.result(timeout=20) == job.args[0]
    # Past the time the task would have finished, had it run on.
    time.sleep(max(0.0, snap.started_at.timestamp() + 1.5 + 0.3 - time.time()))
    assert not any(tag.startswith("overtime") for tag in w.counts()), "the timed-out task ran on"
    figures.record(
        store, f"timeout ({task})", jobs=21, kills=0, lost=0, duplicates=0, recover_s=round(took, 2)
    )


def test_enqueue_flood_against_a_queue_limit(
    store: str, store_url: str, make_workers: Callable[..., Workers]
) -> None:
    limit = 50
    w = make_workers(store_url, max_queue_length=limit)
    work = w.app.tasks["work"]
    # A batch over the limit is refused whole: nothing stored.
    with pytest.raises(QueueFull):
        w.app.enqueue_many([work.job(-i - 1) for i in range(limit + 1)])
    assert w.app.stats().total("pending") == 0
    w.start("--concurrency", "4")
    accepted: list[str] = []
    refused = 0
    worst = 0
    stop = threading.Event()
    lock = threading.Lock()

    def flood(base: int) -> None:
        nonlocal refused
        for i in range(size(400, 5000)):
            try:
                job = work.enqueue(base + i, 0.005)
            except QueueFull:
                with lock:
                    refused += 1
                time.sleep(0.002)
            else:
                with lock:
                    accepted.append(job.id)

    def watch() -> None:
        nonlocal worst
        while not stop.is_set():
            stats = w.app.stats()
            waiting = sum(stats.total(s) for s in ("pending", "scheduled", "retry"))
            worst = max(worst, waiting)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=flood, args=(k * 100_000,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert refused > 0, "the flood never hit the limit"
    assert worst <= limit, f"the store held {worst} waiting jobs, over its limit of {limit}"
    w.wait_for(lambda: w.app.stats().total("completed") == len(accepted), timeout=60, what="to drain")
    took = time.monotonic() - started
    counts = w.counts()
    assert len(counts) == len(accepted), "an accepted job did not run (or a refused one did)"
    figures.record(
        store,
        "enqueue flood (QueueFull)",
        jobs=len(accepted),
        kills=0,
        lost=0,
        duplicates=sum(c - 1 for c in counts.values()),
        recover_s=round(took, 2),
        refused=refused,
        most_waiting=worst,
        limit=limit,
    )
