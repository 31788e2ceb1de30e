"""The store goes away: restarted mid-run (Redis with AOF, PostgreSQL), or unreachable when
a job is enqueued. Each store here is a private server; the shared ones are never touched.
SQLite is an embedded file with no server to lose, so these run on Redis and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from conveyor import Conveyor, ConveyorError, Middleware
from conveyor.job import JobRecord
from conveyor.worker.worker import SHUTDOWN_MARGIN
from tests.harness import open_or_skip
from tests.servers import PostgresServer, RedisServer, _descendants

from . import figures
from .conftest import Private, Workers, fresh_namespace, size
from .faults_app import make_app

#: Errors a caller may get from an enqueue when the store is down: conveyor's own, or the
#: connection-error family (``RedisUnavailable`` is both).
CLEAR_ERRORS: tuple[type[BaseException], ...] = (ConveyorError, ConnectionError)
QUICK = 5.0  # seconds within which the caller must hear of it


def test_store_restarted_mid_run(private_store: Private, make_workers: Callable[..., Workers]) -> None:
    server = private_store.server
    store = private_store.kind
    w = make_workers(private_store.url, lease=2.0)
    work = w.app.tasks["work"]
    n = size(300, 5000)
    first = w.app.enqueue_many([work.job(i, 0.01) for i in range(n)])
    acknowledged = [j.id for j in first]
    failed = 0
    stop = threading.Event()

    def enqueue_on() -> None:
        nonlocal failed
        i = n
        while not stop.is_set():
            try:
                acknowledged.append(work.enqueue(i, 0.01).id)
            except Exception:  # the store is down: not acknowledged, so not promised
                failed += 1
                time.sleep(0.05)
            i += 1
            time.sleep(0.01)

    enqueuer = threading.Thread(target=enqueue_on)
    w.start("--concurrency", "4")
    w.start("--concurrency", "4")
    enqueuer.start()
    try:
        w.wait_for(lambda: w.app.stats().total("completed") >= n // 3, timeout=60, what="before the restart")
        server.restart(hard=True)  # a crash: SIGKILL, then the same data directory
        back = time.monotonic()
        done_then = len(w.counts())
        w.wait_for(lambda: len(w.counts()) > done_then + 20, timeout=60, what="for workers to reconnect")
        recover = time.monotonic() - back
        time.sleep(0.5)
    finally:
        stop.set()
        enqueuer.join()
    total = len(acknowledged)
    w.wait_for(lambda: w.app.stats().total("completed") >= total, timeout=120, what="for every job")
    lost = [
        job_id for job_id in acknowledged if (s := w.app.get_job(job_id)) is None or s.state != "completed"
    ]
    counts = w.counts()
    assert not lost, f"{len(lost)} acknowledged jobs lost or unfinished: {lost[:10]}"
    figures.record(
        store,
        "store restarted (kill -9 of the server)",
        jobs=total,
        kills=1,
        lost=len(lost),
        duplicates=sum(c - 1 for c in counts.values() if c > 1),
        recover_s=round(recover, 2),
        enqueue_errors=failed,
        lease_s=2.0,
    )


class _Seen(Middleware):
    def __init__(self) -> None:
        self.ids: list[str] = []

    def before_enqueue(self, records: list[JobRecord]) -> None:
        self.ids += [r.id for r in records]


def _try_enqueue(app: Conveyor) -> BaseException | None:
    try:
        app.enqueue_many([app.tasks["work"].job(i) for i in range(1, 11)])
    except BaseException as exc:
        return exc
    return None


def _enqueue_fails_quickly(
    url: str, store: str, connected_first: bool, private: Private
) -> tuple[str, list[str], float]:
    """Enqueue a batch of 10 while the server is down; the namespace, the ids tried, and
    how long the caller waited for its error."""
    seen = _Seen()
    namespace = fresh_namespace()
    app = make_app(url, namespace, 2.0)
    app.add_middleware(seen)
    work = app.tasks["work"]
    try:
        if connected_first:
            open_or_skip(app)
            work.enqueue(0)
            seen.ids.clear()
        private.server.halt(hard=True)
        # In a thread, so that a call that blocks far too long fails the test in QUICK
        # seconds instead of holding it up (the server comes back afterwards).
        outcome: list[BaseException | None] = []
        started = time.monotonic()
        caller = threading.Thread(target=lambda: outcome.append(_try_enqueue(app)), daemon=True)
        caller.start()
        caller.join(QUICK)
        took = time.monotonic() - started
        error = outcome[0] if outcome else None
        figures.record(
            store,
            f"store unreachable at enqueue ({'connected' if connected_first else 'fresh'} app)",
            jobs=10,
            kills=0,
            lost=0,
            duplicates=0,
            recover_s=round(took, 2),
            error=f"{type(error).__name__}: {error}" if outcome else f"still waiting after {took:.1f} s",
        )
        assert outcome, f"the caller is still waiting after {took:.1f} s with the store down"
        assert error is not None, "enqueue succeeded with the store down"
        assert isinstance(error, CLEAR_ERRORS), f"{type(error).__module__}.{type(error).__name__}: {error}"
        assert str(error), "an error without a message"
    finally:
        app.close()
    return namespace, seen.ids, took


@pytest.mark.parametrize("connected_first", [False, True], ids=["fresh-app", "connected-app"])
def test_store_unreachable_at_enqueue(
    private_store: Private, connected_first: bool, request: pytest.FixtureRequest
) -> None:
    store = private_store.kind
    try:
        namespace, tried, took = _enqueue_fails_quickly(
            private_store.url, store, connected_first, private_store
        )
    finally:
        private_store.server.start()
    # Nothing half-written: none of the batch is in the store once it is back.
    app = make_app(private_store.url, namespace, 2.0)
    try:
        stored = [job_id for job_id in tried if app.get_job(job_id) is not None]
    finally:
        app.close()
    assert stored == [] or stored == tried, f"half a batch stored: {len(stored)} of {len(tried)}"
    assert took < QUICK


def _signal_server(server: RedisServer | PostgresServer, number: int) -> None:
    """Send ``number`` to the server and every process it started (PostgreSQL's backends
    leave its process group, so the group alone would miss them)."""
    assert server.proc is not None
    for pid in [server.proc.pid, *_descendants(server.proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)


def test_a_worker_exits_on_sigterm_when_its_store_freezes(
    private_store: Private, make_workers: Callable[..., Workers]
) -> None:
    """The store stops answering (SIGSTOP: no RST, no error, just silence) while a worker
    holds a job; SIGTERM must still end the worker soon after its grace period, however long
    the client's timeouts would have kept it writing its last outcomes and handing back."""
    w = make_workers(private_store.url, lease=2.0)
    job = w.app.tasks["long"].enqueue(1, 60.0)
    proc = w.start("--concurrency", "2", "--grace", "1")
    w.wait_for(
        lambda: (s := w.app.get_job(job.id)) is not None and s.state == "active", what="the job to start"
    )
    _signal_server(private_store.server, signal.SIGSTOP)
    try:
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(1 + SHUTDOWN_MARGIN + 30)
        took = time.monotonic() - signalled
    finally:
        _signal_server(private_store.server, signal.SIGCONT)
    assert code == 1, code
    assert took < 1 + SHUTDOWN_MARGIN + 5, took
    log = w.logs()
    assert "still shutting down" in log and "Thread 0x" in log, log[-3000:]
