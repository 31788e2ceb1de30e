"""LISTEN/NOTIFY wake-up, and surviving a server restart mid-run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.worker.worker import Worker
from tests.harness import start_server
from tests.postgres.conftest import AppFactory
from tests.servers import PostgresServer


def _start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_wait_returns_early_on_enqueue(make_app: AppFactory) -> None:
    app = make_app(namespace="wake")
    producer = make_app(namespace="wake")

    @producer.task(name="t.noop")
    def noop() -> None: ...

    app.backend.wait(None, 0.05)  # opens the LISTEN connection
    timer = threading.Timer(0.2, noop.enqueue)
    timer.start()
    start = time.monotonic()
    app.backend.wait(None, 10.0)
    waited = time.monotonic() - start
    timer.join()
    assert 0.1 < waited < 1.0


def test_idle_worker_starts_a_job_well_before_its_poll_timeout(make_app: AppFactory) -> None:
    app = make_app(namespace="idle")

    @app.task(name="t.stamp")
    def stamp() -> float:
        return time.time()

    # A 10 s poll: only the NOTIFY can make the job start within a second.
    worker = Worker(app, concurrency=2, idle_wait=10.0)
    thread = _start(worker)
    try:
        time.sleep(0.5)  # let it go idle in wait()
        for _ in range(3):
            enqueued = time.time()
            job = stamp.enqueue()
            started = job.result(timeout=5)
            assert started - enqueued < 1.0
    finally:
        worker.stop()
        stamp.enqueue()  # its NOTIFY ends the worker's 10 s wait, so it sees the stop now
        thread.join(15)


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A private server this test may restart without disturbing the shared one."""
    server = start_server(PostgresServer)
    try:
        yield server
    finally:
        server.stop()


def test_restart_mid_run_loses_nothing_and_the_worker_reconnects(own_server: PostgresServer) -> None:
    app = Conveyor(own_server.url, namespace="restart", lease=5.0)
    runs: dict[int, int] = {}
    lock = threading.Lock()

    @app.task(name="t.slow")
    def slow(i: int) -> int:
        time.sleep(0.005)
        with lock:
            runs[i] = runs.get(i, 0) + 1
        return i

    before = app.enqueue_many([slow.job(i) for i in range(300)])
    worker = Worker(app, concurrency=4)
    thread = _start(worker)
    try:
        deadline = time.monotonic() + 20
        while len(runs) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 0 < len(runs) < 300, "the restart should come mid-run"
        own_server.restart()
        after = app.enqueue_many([slow.job(i) for i in range(300, 400)])  # reconnects by itself
        jobs = before + after
        for job in jobs:
            assert job.result(timeout=60) == int(job.args[0])
        assert set(runs) == set(range(400))  # every committed job ran (at least once)
        assert thread.is_alive(), "the worker must survive the restart"
    finally:
        worker.stop()
        thread.join(30)
        app.close()
