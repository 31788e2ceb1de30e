"""Where a fetched job is decoded: pool threads for sync-only apps, the fetching thread when
async tasks exist (so an async job never waits for a thread busy with a sync one)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from conveyor import Conveyor
from conveyor.job import JobRecord, new_id


def test_async_jobs_run_while_every_thread_is_busy_with_a_sync_job(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")
    release = threading.Event()
    finished: list[str] = []

    @app.task(name="t.block")
    def block() -> None:
        release.wait(20)
        finished.append("sync")

    @app.task(name="t.tick")
    async def tick(i: int) -> None:
        await asyncio.sleep(0.01)
        finished.append(f"async {i}")

    block.enqueue()
    app.enqueue_many([tick.job(i) for i in range(5)])
    worker = app.worker(concurrency=1, prefetch=10)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while len(finished) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(finished) == [f"async {i}" for i in range(5)]  # the one thread still blocks
    finally:
        release.set()
        worker.stop()
        runner.join(10)
        app.close()
    assert finished[-1] == "sync"


def test_a_sync_only_app_runs_bad_and_good_jobs_decoded_by_its_threads(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")

    @app.task(name="t.double")
    def double(x: int) -> int:
        return 2 * x

    jobs = app.enqueue_many([double.job(i) for i in range(50)])
    now = time.time()
    app.backend.enqueue(
        [JobRecord(new_id(), "default", b'{"t":"t.gone","a":[],"k":{}}', run_at=now, created_at=now)]
    )
    worker = app.worker(concurrency=3, burst=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert [j.result(timeout=1) for j in jobs] == [2 * i for i in range(50)]
    (dead,) = app.jobs(state="dead")
    assert dead.last_error is not None and "unknown task 't.gone'" in dead.last_error
    app.close()
