"""A store that cannot be reached: every public call raises ``StoreUnavailable`` within a
bound, and no text it produces (the exception, its ``__cause__`` chain, any log record)
shows a password from the URL.

Each URL form a user may write is tried against a port nothing listens on (or a SQLite path
that cannot be opened), and Redis and PostgreSQL also with a real server that is stopped
after the app connected, with a worker running on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, StoreUnavailable
from conveyor.app import STREAM_CHUNK
from conveyor.backends import Migrates, StreamsEnqueue, WaitsAndFetches
from conveyor.job import Failure, WorkerInfo
from conveyor.worker.worker import Worker
from tests.servers import PostgresServer, RedisServer, free_port

#: Seconds a call may take to give up. Redis's fetch retries for 5 s (FETCH_OUTAGE) with the
#: same claim token before it does; everything else gives up within about 3 s.
BOUND = 8.0

#: (id, URL template, its secrets). {port} and {port2} are ports nothing listens on, {tmp} a
#: fresh directory.
UNREACHABLE = [
    ("sqlite-unopenable", "sqlite:///{tmp}/a-file/jobs.db", ()),
    (
        "postgres-userinfo",
        "postgresql://conveyor:Pg-Userinfo-S3cret@127.0.0.1:{port}/jobs",
        ("Pg-Userinfo-S3cret",),
    ),
    (
        "postgres-query",
        "postgresql://conveyor@127.0.0.1:{port}/jobs?sslmode=disable&password=Pg-Query-S3cret",
        ("Pg-Query-S3cret",),
    ),
    ("redis-password", "redis://:Redis-S3cret@127.0.0.1:{port}/0", ("Redis-S3cret",)),
    ("redis-user-password", "redis://app:Redis-User-S3cret@127.0.0.1:{port}/0", ("Redis-User-S3cret",)),
    ("rediss", "rediss://:Rediss-S3cret@127.0.0.1:{port}/0", ("Rediss-S3cret",)),
    ("redis-unix", "unix://{tmp}/none.sock?db=0&password=Unix-S3cret", ("Unix-S3cret",)),
    (
        "redis-cluster",
        "redis+cluster://:Cluster-S3cret@127.0.0.1:{port},127.0.0.1:{port2}",
        ("Cluster-S3cret",),
    ),
    (
        "redis-sentinel",
        "redis+sentinel://:Master-S3cret@127.0.0.1:{port}/main/0?sentinel_password=Sentinel-S3cret",
        ("Master-S3cret", "Sentinel-S3cret"),
    ),
]


class _Records(logging.Handler):
    """Every log record of the process, formatted with its exception, as an operator sees it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._guard:
            self.texts.append(text)


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _app(url: str) -> Conveyor:
    app = Conveyor(url, namespace="unreachable", lease=2.0)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _calls(app: Conveyor, worker_calls: bool = True) -> dict[str, Callable[[], Any]]:
    """Every public call that reaches the store: the app's, then the worker's store calls
    (each capability the store declares included)."""
    add = app.tasks["t.add"]
    calls: dict[str, Callable[[], Any]] = {
        "enqueue": lambda: add.enqueue(1, 2),
        "enqueue delayed": lambda: add.using(delay=60).enqueue(1, 2),
        "enqueue_many": lambda: app.enqueue_many([add.job(i, i) for i in range(3)]),
        "enqueue_many streamed": lambda: app.enqueue_many([add.job(i, i) for i in range(STREAM_CHUNK + 1)]),
        "get_job": lambda: app.get_job("0191d2d8-0000-7000-8000-000000000000"),
        "wait_for": lambda: app.wait_for("0191d2d8-0000-7000-8000-000000000000", timeout=1.0),
        "jobs": lambda: app.jobs(),
        "jobs by state": lambda: app.jobs(state="dead", queue="default", search="add"),
        "stats": lambda: app.stats(),
        "workers": lambda: app.workers(),
        "retry": lambda: app.retry("x"),
        "retry_all": lambda: app.retry_all(),
        "delete": lambda: app.delete("x"),
        "delete_all": lambda: app.delete_all("dead"),
        "cancel": lambda: app.cancel("x"),
        "pause": lambda: app.pause("default"),
        "resume": lambda: app.resume("default"),
        # The async client, each call on a loop of its own (so each opens its connections).
        "aenqueue": lambda: asyncio.run(add.aenqueue(1, 2)),
        "aenqueue_many": lambda: asyncio.run(app.aenqueue_many([add.job(i, i) for i in range(300)])),
        "aget_job": lambda: asyncio.run(app.aget_job("0191d2d8-0000-7000-8000-000000000000")),
        "aresult": lambda: asyncio.run(app.await_result("0191d2d8-0000-7000-8000-000000000000", 1.0)),
    }
    if worker_calls:
        now = time.time()
        info = WorkerInfo("w", "h", 1, ("default",), 1, now)
        calls |= {
            "worker": lambda: app.worker(burst=True).run(),
            "fetch": lambda: app.backend.fetch(None, 10, "w", 2.0, now),
            "complete": lambda: app.backend.complete([("x", None)], "w", now),
            "fail": lambda: app.backend.fail([Failure("x", "boom", None, None)], "w", now),
            "release": lambda: app.backend.release(["x"], "w"),
            "heartbeat": lambda: app.backend.heartbeat(info, 2.0, now),
            "recover": lambda: app.backend.recover(now, now - 3600),
        }
    # The capabilities the store declares, once it opens at all (a store that cannot even be
    # opened raised above already, from its constructor). enqueue_in goes through the
    # caller's own connection, not the store's.
    try:
        backend = app.backend
    except StoreUnavailable:
        return calls
    if worker_calls and isinstance(backend, WaitsAndFetches):
        calls["wait_and_fetch"] = lambda: backend.wait_and_fetch(None, 0.5, 10, "w", 2.0)
    if isinstance(backend, StreamsEnqueue):
        calls["enqueue_stream"] = lambda: backend.enqueue_stream([[]])
    if isinstance(backend, Migrates):
        calls["migrate"] = backend.migrate
    return calls


def _texts(exc: BaseException) -> str:
    """Everything an exception may show: str, repr, and the formatted traceback with its
    whole ``__cause__``/``__context__`` chain."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _check_every_call(
    calls: dict[str, Callable[[], Any]], secrets: tuple[str, ...], bound: float = BOUND
) -> None:
    """Run every call at once (each in a thread: one that hangs fails the test in ``bound``
    seconds rather than holding it up, and the whole check takes as long as the slowest
    call) and check what each raised."""
    outcome: dict[str, tuple[BaseException | None, float]] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:
            outcome[name] = (exc, time.monotonic() - started)
        else:
            outcome[name] = (None, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + bound + 2.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    problems: list[str] = []
    for name in calls:
        if name not in outcome:
            problems.append(f"{name}: still running after {bound + 2:g} s")
            continue
        exc, took = outcome[name]
        if not isinstance(exc, StoreUnavailable):
            problems.append(f"{name}: {type(exc).__name__}: {exc}" if exc else f"{name}: no error")
            continue
        if took > bound:
            problems.append(f"{name}: took {took:.1f} s")
        text = _texts(exc)
        problems += [f"{name}: shows the secret {s!r}: {text}" for s in secrets if s in text]
    assert not problems, "\n".join(problems)


def _check_logs(records: _Records, secrets: tuple[str, ...]) -> None:
    leaks = [text for text in records.texts for s in secrets if s in text]
    assert not leaks, f"log records with a secret: {leaks[:3]}"


def test_every_call_on_an_unreachable_store_raises_store_unavailable(
    tmp_path: Path, records: _Records
) -> None:
    """Every URL form at once, so the whole check takes as long as its slowest call."""
    (tmp_path / "a-file").write_text("a file where the database's directory should be")
    apps: list[Conveyor] = []
    calls: dict[str, Callable[[], Any]] = {}
    secrets: list[str] = []
    try:
        for name, template, hidden in UNREACHABLE:
            port = free_port()
            app = _app(template.format(tmp=tmp_path, port=port, port2=free_port()))
            apps.append(app)
            assert all(s not in repr(app) for s in hidden), repr(app)
            calls |= {f"{name}: {call}": fn for call, fn in _calls(app).items()}
            secrets += hidden
        assert {name.split(":")[0] for name in calls} == {name for name, _, _ in UNREACHABLE}
        _check_every_call(calls, tuple(secrets))
    finally:
        for app in apps:
            app.close()
    _check_logs(records, tuple(secrets))


def _stopped_under_workers(apps: list[Conveyor], halt: Callable[[], None], records: _Records) -> list[Worker]:
    """Start a worker on each connected app, stop the server under them, and let the workers
    meet the outage (their log lines are what an operator reads)."""
    workers: list[Worker] = []
    for app in apps:
        app.tasks["t.add"].enqueue(1, 2)  # connected, schema made
        worker = app.worker(concurrency=2)
        threading.Thread(target=worker.run, daemon=True).start()
        workers.append(worker)
    time.sleep(0.3)
    halt()
    time.sleep(1.5)
    assert any("retrying" in text or "unreachable" in text for text in records.texts), records.texts[-5:]
    return workers


def test_redis_stopped_after_connecting(records: _Records) -> None:
    secret = "Redis-Requirepass-S3cret"
    with RedisServer(appendonly=False) as server:
        # Set after the start (the fixture's readiness probe sends no password); a restart
        # comes back without it.
        server.command("CONFIG", "SET", "requirepass", secret)
        app = _app(f"redis://:{secret}@127.0.0.1:{server.port}/0")
        try:
            (worker,) = _stopped_under_workers([app], server.halt, records)
            _check_every_call(_calls(app), (secret,))
            _check_logs(records, (secret,))
            server.start()
            worker.stop()
        finally:
            app.close()
    _check_logs(records, (secret,))


def test_postgres_stopped_after_connecting(records: _Records) -> None:
    # The test server trusts loopback, so a password is accepted and ignored: what matters
    # is where it would show.
    secrets = ("Pg-Userinfo-S3cret", "Pg-Query-S3cret")
    with PostgresServer() as server:
        where = f"127.0.0.1:{server.port}/postgres"
        apps = [
            _app(f"postgresql://postgres:{secrets[0]}@{where}"),
            _app(f"postgresql://postgres@{where}?sslmode=disable&password={secrets[1]}"),
        ]
        try:
            workers = _stopped_under_workers(apps, server.halt, records)
            # The worker's own calls ride out a restart for RETRY_FOR (30 s) by design; the
            # calls an application or a person waits for give up within seconds.
            calls: dict[str, Callable[[], Any]] = {}
            for n, app in enumerate(apps):
                calls |= {f"{n}: {name}": fn for name, fn in _calls(app, worker_calls=False).items()}
            _check_every_call(calls, secrets)
            _check_logs(records, secrets)
            server.start()
            for worker in workers:
                worker.stop()
        finally:
            for app in apps:
                app.close()
    _check_logs(records, secrets)
