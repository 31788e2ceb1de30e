"""Redis as it is deployed: Cluster idle workers, TLS with a self-made CA (standalone here;
Cluster and Sentinel in tests/faults/test_topologies_redis.py, under their faults), a full
store (maxmemory + noeviction), durable acknowledgement, and errors that name their cause.
Every test runs against real redis-server processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from conveyor import Conveyor, StoreFull, StoreUnavailable
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.wire import NotReplicated
from tests.faults import figures
from tests.harness import start_server
from tests.servers import RedisCluster, RedisServer, TlsFiles

_names = itertools.count()


def _namespace() -> str:
    return f"t{os.getpid()}_{next(_names)}"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles.make(tmp_path_factory.mktemp("tls"))


def _round_trip(url: str, jobs: int = 20) -> None:
    """Enqueue jobs and let a burst worker run them all."""
    app = Conveyor(url, namespace=_namespace())

    @app.task(name="t.double")
    def double(x: int) -> int:
        return 2 * x

    try:
        handles = app.enqueue_many([double.job(i) for i in range(jobs)])
        app.worker(concurrency=4, burst=True).run()
        assert [h.result(timeout=10) for h in handles] == [2 * i for i in range(jobs)]
    finally:
        app.close()


# -- Cluster: an idle worker blocks on its queue's node ----------------------------------
def test_cluster_idle_worker_blocks_and_wakes_on_enqueue(redis_cluster: RedisCluster) -> None:
    host, port = redis_cluster.nodes[0]
    backend = RedisBackend(f"redis+cluster://{host}:{port}", _namespace())
    try:
        started = time.monotonic()
        backend.wait(["mail"], 0.6)  # nothing arrives: blocks the whole time, no error
        assert time.monotonic() - started >= 0.5
        woke: list[float] = []

        def waiter() -> None:
            began = time.monotonic()
            backend.wait(["mail"], 5.0)
            woke.append(time.monotonic() - began)

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)
        app = Conveyor(f"redis+cluster://{host}:{port}", namespace=backend.ns)

        @app.task(name="t.mail", queue="mail")
        def mail() -> None: ...

        mail.enqueue()
        thread.join(10)
        app.close()
        assert woke and woke[0] < 1.5, woke  # woken by the enqueue, not by the 5 s timeout
    finally:
        backend.close()


# -- TLS with a self-made CA -------------------------------------------------------------
def test_tls_standalone_with_the_ca_in_the_url(tls: TlsFiles) -> None:
    server = start_server(lambda: RedisServer(appendonly=False, tls=tls))
    try:
        _round_trip(server.url)  # rediss://host:port/0?ssl_ca_certs=<the CA>
        with pytest.raises(StoreUnavailable, match=r"not trusted.*ssl_ca_certs"):
            Conveyor(f"rediss://127.0.0.1:{server.port}/0", namespace=_namespace()).stats()
        with pytest.raises(StoreUnavailable, match="cannot be read"):
            Conveyor(
                f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs=/no/such/ca.pem", namespace=_namespace()
            ).stats()
    finally:
        server.stop()


# -- a full store ------------------------------------------------------------------------
@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    server = start_server(
        lambda: RedisServer(
            appendonly=False, extra_args=["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
        )
    )
    yield server
    server.stop()


def _fill(app: Conveyor, task: object, payload: str) -> int:
    """Enqueue until the store refuses; returns how many were stored."""
    stored = 0
    with pytest.raises(StoreFull) as info:
        for _ in range(100_000):
            task.enqueue(payload)  # type: ignore[attr-defined]
            stored += 1
    assert isinstance(info.value, StoreUnavailable)
    assert "maxmemory" in str(info.value) and "drain" in str(info.value)
    # The async client says the same (it sends its own calls, not the sync store's).
    with pytest.raises(StoreFull, match="maxmemory"):
        asyncio.run(task.aenqueue(payload))  # type: ignore[attr-defined]
    return stored


def test_a_full_store_refuses_enqueue_and_a_worker_still_starts_and_drains_it(
    full_redis: RedisServer,
) -> None:
    app = Conveyor(full_redis.url, namespace=_namespace(), result_ttl=0.0)
    ran: list[int] = []

    @app.task(name="t.big")
    def big(blob: str) -> None:
        ran.append(len(blob))

    try:
        stored = _fill(app, big, "x" * 4000)
        assert stored > 50
        # The worker starts on the full store (its heartbeat and recovery must not kill
        # it) and records every completion: each one frees the payload's memory.
        started = time.monotonic()
        app.worker(concurrency=4, burst=True).run()
        drained = round(time.monotonic() - started, 2)
        lost, extra = max(0, stored - len(ran)), max(0, len(ran) - stored)
        scenario = "full store (maxmemory + noeviction): enqueue refused, worker drains"
        figures.record(
            "redis", scenario, jobs=stored, kills=0, lost=lost, duplicates=extra, recover_s=drained
        )
        assert len(ran) == stored
        stats = app.stats()
        assert stats.total("pending") == 0 and stats.total("active") == 0
        # The heartbeat's housekeeping prunes completed jobs (result_ttl=0): room again.
        app.backend.recover(time.time(), time.time())
        big.enqueue("x")
    finally:
        app.close()


def test_a_streamed_batch_on_a_full_store_says_which_jobs_were_stored(full_redis: RedisServer) -> None:
    app = Conveyor(full_redis.url, namespace=_namespace())

    @app.task(name="t.big")
    def big(blob: str) -> None: ...

    try:
        with pytest.raises(StoreFull) as info:
            app.enqueue_many([big.job("y" * 1000) for _ in range(6000)])
        stored = info.value.stored
        assert 0 < len(stored) < 6000 and len(stored) % 1000 == 0  # whole chunks of 1,000
        assert f"{len(stored)} of 6000 jobs" in str(info.value)
        assert app.stats().total("pending") == len(stored)
        assert all(app.get_job(i) is not None for i in (stored[0], stored[-1]))
    finally:
        app.close()


def test_fetching_stops_while_completions_cannot_be_recorded(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # An ACL user that may read everything but not write the queue's "done" set: fetch
    # works, complete is refused (NOPERM, checked before the script runs). The worker must
    # stop taking jobs it cannot record, and carry on once it can.
    ns = _namespace()
    user = f"u{ns}"
    admin = Conveyor(redis_server.url, namespace=ns)

    @admin.task(name="t.noop")
    def noop() -> None: ...

    redis_server.command(
        "ACL",
        "SETUSER",
        user,
        "reset",
        "on",
        ">pw",
        "+@all",
        "&*",
        "%R~*",
        f"%RW~{{{ns}:default}}:[^d]*",
        f"%RW~{{{ns}}}:*",
    )
    app = Conveyor(f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0", namespace=ns, lease=30.0)
    app.tasks.update(admin.tasks)
    try:
        admin.enqueue_many([noop.job() for _ in range(60)])
        worker = app.worker(concurrency=4, prefetch=0)
        running = threading.Thread(target=worker.run, daemon=True)
        running.start()
        time.sleep(1.0)
        active = admin.stats().total("active")
        # The batches taken before the first failed ack, then no more while acks fail
        # (without the rule the worker kept fetching: all 60 active in a second).
        assert 0 < active < 60, active
        time.sleep(1.0)
        assert admin.stats().total("active") == active
        assert "permission denied" in caplog.text  # the acker's log names the cause
        redis_server.command("ACL", "SETUSER", user, "%RW~*")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and admin.stats().total("completed") < 60:
            time.sleep(0.1)
        assert admin.stats().total("completed") == 60
        worker.stop()
        running.join(20)
    finally:
        redis_server.command("ACL", "DELUSER", user)
        app.close()
        admin.close()


# -- durable acknowledgement -------------------------------------------------------------
def test_replicas_wait_for_a_replica_and_say_when_none_confirmed(redis_server: RedisServer) -> None:
    master = start_server(lambda: RedisServer(appendonly=False))
    replica = start_server(lambda: RedisServer(appendonly=False, replica_of=master.port))
    try:
        deadline = time.monotonic() + 20
        while b"master_link_status:up" not in bytes(replica.command("INFO", "replication") or b""):  # type: ignore[arg-type]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _round_trip(master.url + "?replicas=1")
        # The shared server has no replica: a durable enqueue is stored but not confirmed.
        app = Conveyor(redis_server.url + "?replicas_timeout=0.2", namespace=_namespace(), replicas=1)

        @app.task(name="t.x")
        def x() -> None: ...

        with pytest.raises(NotReplicated, match="0 of 1 replicas"):
            x.enqueue()
        with pytest.raises(NotReplicated, match="0 of 1 replicas"):  # the async client waits too
            asyncio.run(x.aenqueue())
        app.close()
    finally:
        replica.stop()
        master.stop()


# -- errors that name their cause --------------------------------------------------------
def test_errors_name_the_real_cause(redis_server: RedisServer) -> None:
    with pytest.raises(StoreUnavailable, match="authentication failed") as info:
        Conveyor(f"redis://nobody:wrong@127.0.0.1:{redis_server.port}/0", namespace=_namespace()).stats()
    assert "is the server running" not in str(info.value) and "wrong" not in str(info.value)
    replica = start_server(lambda: RedisServer(appendonly=False, replica_of=redis_server.port))
    try:
        app = Conveyor(f"redis://127.0.0.1:{replica.port}/0", namespace=_namespace())

        @app.task(name="t.x")
        def x() -> None: ...

        with pytest.raises(StoreUnavailable, match="read-only replica") as info:
            x.enqueue()
        assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
        app.close()
        # A master that refuses writes for want of replicas (min-replicas-to-write).
        master_app = Conveyor(redis_server.url, namespace=_namespace())

        @master_app.task(name="t.y")
        def y() -> None: ...

        redis_server.command("CONFIG", "SET", "min-replicas-to-write", "5")  # it has one replica
        try:
            with pytest.raises(StoreUnavailable, match="min-replicas-to-write"):
                y.enqueue()
        finally:
            redis_server.command("CONFIG", "SET", "min-replicas-to-write", "0")
            master_app.close()
    finally:
        replica.stop()
