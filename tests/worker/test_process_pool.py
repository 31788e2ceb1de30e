"""``--pool process`` with real worker processes on a real SQLite file: hard timeouts,
children that die, recycling, and outcomes that match the thread pool's."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.worker.process_pool import find_target
from tests.harness import WorkerProcesses

from . import pool_app
from .pool_app import (
    again,
    boom,
    give_up,
    hog,
    later,
    nap,
    not_json,
    parent_pid,
    pid,
    segfault,
    sleeper,
    steps,
)

TARGET = "tests.worker.pool_app:app"


class PoolWorkers(WorkerProcesses):
    def __init__(self, tmp: Path, url: str) -> None:
        pool_app.app.close()
        pool_app.app.url = url
        super().__init__(TARGET, pool_app.app, tmp, url, CONVEYOR_LEASE="2")

    def finished(self, job_id: str, timeout: float = 30.0) -> None:
        done = ("completed", "dead")
        self.wait_for(lambda: self.app.get_job(job_id).state in done, timeout, f"for job {job_id}")  # type: ignore[union-attr]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[PoolWorkers]:
    w = PoolWorkers(tmp_path, f"sqlite:///{tmp_path}/jobs.db")
    yield w
    w.close()


def test_a_timeout_kills_the_child_however_it_is_blocked(workers: PoolWorkers) -> None:
    proc = workers.start("--pool", "process", "--concurrency", "1")
    warm = pid.enqueue()
    first_child = warm.result(timeout=30)  # the child has loaded the app: no start-up below
    job = sleeper.enqueue(30)  # time.sleep(30) with timeout=1: one C call
    workers.finished(job.id)
    snap = workers.app.get_job(job.id)
    assert snap is not None and snap.state == "dead" and snap.attempts == 1
    assert snap.last_error == "timed out after 1 s (child process killed)"
    assert snap.started_at is not None and snap.finished_at is not None
    took = (snap.finished_at - snap.started_at).total_seconds()
    assert 1.0 <= took < 2.0, took
    # A new child takes the next job; the worker itself carried on.
    after = pid.enqueue().result(timeout=30)
    assert after != first_child and proc.poll() is None


def test_a_segfault_fails_only_its_job_and_the_next_job_runs(workers: PoolWorkers) -> None:
    proc = workers.start("--pool", "process", "--concurrency", "1")
    crash = segfault.enqueue()
    workers.finished(crash.id)
    child = pid.enqueue().result(timeout=30)
    snap = workers.app.get_job(crash.id)
    assert snap is not None and snap.state == "dead" and snap.attempts == 1
    assert snap.last_error == "the child process running it was killed by SIGSEGV (signal 11)"
    assert child not in (proc.pid, 0) and proc.poll() is None


def test_a_child_killed_like_the_oom_killer_does_fails_only_its_job(workers: PoolWorkers) -> None:
    proc = workers.start("--pool", "process", "--concurrency", "1")
    job = nap.enqueue(30)
    workers.wait_for(lambda: workers.tags() == ["nap"])
    os.kill(workers.runs()[0][1], signal.SIGKILL)
    workers.finished(job.id)
    snap = workers.app.get_job(job.id)
    assert snap is not None and snap.state == "dead"
    assert (
        snap.last_error
        == "the child process running it was killed by SIGKILL (signal 9: the OOM killer, or kill -9)"
    )
    assert pid.enqueue().result(timeout=30) not in (proc.pid, workers.runs()[0][1])


def test_children_are_replaced_after_max_tasks_per_child(workers: PoolWorkers) -> None:
    jobs = workers.app.enqueue_many([pid.job() for _ in range(6)])
    proc = workers.start("--pool", "process", "--concurrency", "1", "--max-tasks-per-child", "2", "--burst")
    assert proc.wait(60) == 0
    pids = [job.result(timeout=1) for job in jobs]
    assert sorted(Counter(pids).values()) == [2, 2, 2], pids
    assert proc.pid not in pids


def test_a_child_over_max_memory_is_replaced_after_its_job(workers: PoolWorkers) -> None:
    small = workers.app.enqueue_many([pid.job(), pid.job()])
    big = hog.enqueue(120)
    last = pid.enqueue()
    proc = workers.start("--pool", "process", "-c", "1", "--max-memory-per-child", "100", "--burst")
    assert proc.wait(60) == 0
    before = {job.result(timeout=1) for job in small}
    # The child under the limit ran every job until the one that grew it past 100 MB.
    assert before == {big.result(timeout=1)}
    assert last.result(timeout=1) not in before


def test_async_tasks_run_on_the_parents_event_loop(workers: PoolWorkers) -> None:
    job = parent_pid.enqueue()
    proc = workers.start("--pool", "process", "--concurrency", "1", "--burst")
    assert proc.wait(60) == 0
    assert job.result(timeout=1) == proc.pid


def test_failures_in_a_child_are_recorded_as_in_a_thread(workers: PoolWorkers) -> None:
    def outcomes(pool: str) -> dict[str, tuple[str, int, str | None, bool, bool, int]]:
        jobs = {
            "give_up": give_up.enqueue(),
            "again": again.enqueue(),
            "boom": boom.enqueue("bad"),
            "not_json": not_json.enqueue(),
            "later": later.enqueue(),
        }
        proc = workers.start("--pool", pool, "--concurrency", "2", "--burst")
        assert proc.wait(60) == 0
        seen = {}
        for name, job in jobs.items():
            snap = workers.app.get_job(job.id)
            assert snap is not None
            has_traceback = "raise ValueError(word)" in (snap.traceback or "")
            # Retry(delay=0.2): the next attempt is due 0.2 s after the failure.
            delayed = snap.state == "retry" and snap.finished_at is not None
            delayed = delayed and abs((snap.run_at - snap.finished_at).total_seconds() - 0.2) < 0.15  # type: ignore[operator]
            seen[name] = (snap.state, snap.attempts, snap.last_error, has_traceback, delayed, snap.snoozes)
        return seen

    in_threads = outcomes("thread")
    # A burst worker exits before the retry is due: it stays a retry, with its own delay.
    assert in_threads["give_up"] == ("dead", 1, "Fail: no point trying again", False, False, 0)
    assert in_threads["again"] == ("retry", 1, "Retry: not yet", False, True, 0)
    assert in_threads["boom"] == ("dead", 1, "ValueError: bad", True, False, 0)
    assert in_threads["not_json"][:2] == ("dead", 1)
    assert in_threads["later"] == ("scheduled", 0, None, False, False, 1)  # Snooze: no attempt spent
    assert outcomes("process") == in_threads


def test_sigterm_past_the_grace_period_kills_the_busy_child(workers: PoolWorkers) -> None:
    job = nap.enqueue(30)
    proc = workers.start("--pool", "process", "--concurrency", "1", "--grace", "0.5")
    workers.wait_for(lambda: workers.tags() == ["nap"])
    child = workers.runs()[0][1]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    snap = workers.app.get_job(job.id)
    assert snap is not None and snap.state == "pending" and snap.attempts == 0
    workers.wait_for(lambda: not _alive(child), 5, "for the killed child to be gone")


def test_children_do_not_outlive_a_worker_killed_with_9(workers: PoolWorkers) -> None:
    proc = workers.start("--pool", "process", "--concurrency", "1")
    nap.enqueue(30)
    workers.wait_for(lambda: workers.tags() == ["nap"])
    os.kill(proc.pid, signal.SIGKILL)  # the worker alone, not its process group
    proc.wait()
    child = workers.runs()[0][1]
    workers.wait_for(lambda: not _alive(child), 5, "for the orphaned child to exit")


def test_the_pool_options_are_checked() -> None:
    with pytest.raises(ValueError, match="need pool='process'"):
        pool_app.app.worker(max_tasks_per_child=5)
    with pytest.raises(ValueError, match="pool must be"):
        pool_app.app.worker(pool="prefork")


def test_the_children_find_the_app_by_its_module() -> None:
    assert find_target(pool_app.app) == TARGET


def _alive(process_id: int) -> bool:
    """True while the process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{process_id}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_app_worker_with_the_process_pool_finds_the_app_for_its_children(tmp_path: Path) -> None:
    app = pool_app.app
    app.close()
    app.url = f"sqlite:///{tmp_path}/jobs.db"
    try:
        in_child, on_loop = pid.enqueue(), parent_pid.enqueue()
        assert app.worker(pool="process", concurrency=1, burst=True, grace=5).run() == 0
        assert in_child.result(timeout=1) != os.getpid()
        assert on_loop.result(timeout=1) == os.getpid()
    finally:
        app.close()


def test_current_job_and_progress_in_a_child(workers: PoolWorkers) -> None:
    workers.start("--pool", "process", "--concurrency", "1")
    job = steps.using(meta={"tenant": "acme"}).enqueue(200)
    seen = job.result(timeout=30)
    assert seen["id"] == job.id and seen["meta"] == {"tenant": "acme"} and seen["attempts"] == 1
    assert seen["pid"] != os.getpid()
    done = workers.app.get_job(job.id)
    assert done is not None and done.progress is not None
    assert (done.progress["done"], done.progress["total"], done.progress["message"]) == (200, 200, "child")


def test_cancel_kills_the_child_running_the_job(workers: PoolWorkers) -> None:
    proc = workers.start("--pool", "process", "--concurrency", "1")
    first_child = pid.enqueue().result(timeout=30)
    job = nap.enqueue(30)  # one C call: only a killed child stops it
    workers.wait_for(lambda: workers.tags() == ["nap"], 30, "the nap to start")
    assert workers.app.cancel(job.id, by="the test") == 1
    took = workers.wait_for(lambda: workers.app.get_job(job.id).state == "cancelled", 10)  # type: ignore[union-attr]
    assert took < 3.0
    snap = workers.app.get_job(job.id)
    assert snap is not None and snap.last_error == "cancelled by the test" and snap.attempts == 1
    # A new child takes the next job; the worker carried on.
    assert pid.enqueue().result(timeout=30) != first_child and proc.poll() is None
