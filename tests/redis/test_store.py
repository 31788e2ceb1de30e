"""The Redis store beyond the conformance suite: key layout, NOSCRIPT, outages, URLs."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend, RedisUnavailable, connect
from conveyor.errors import ConfigurationError
from conveyor.job import Failure, WorkerInfo
from tests.servers import (
    RedisCluster,
    RedisServer,
    RespError,
    find_redis_binaries,
    free_port,
    resp_command,
)

_names = itertools.count()


def _namespace() -> str:
    return f"r{os.getpid()}_{next(_names)}"


@pytest.fixture
def app(redis_server: RedisServer) -> Iterator[Conveyor]:
    app = Conveyor(redis_server.url, namespace=_namespace(), lease=5.0)
    yield app
    app.close()


def _exercise(app: Conveyor, queue: str) -> None:
    """Touch every kind of key a queue has: each state, a worker, a pause, the counters."""

    @app.task(name=f"t.{queue}", queue=queue)
    def task(x: int) -> int:
        return x

    jobs = app.enqueue_many([task.job(i) for i in range(6)])
    task.using(delay=600).enqueue(99)
    backend = app.backend
    now = time.time()
    got = backend.fetch([queue], 4, "w1", 30, now)
    backend.complete([(got[0].id, b"1")], "w1", now)
    backend.fail([Failure(got[1].id, "boom", "tb", now + 60)], "w1", now)
    backend.fail([Failure(got[2].id, "boom", None, None)], "w1", now)
    backend.heartbeat(WorkerInfo("w1", "h", 1, (queue,), 1, now), 30, now)
    app.cancel(jobs[5].id)
    app.pause(queue)
    backend.recover(now + 1, 0)
    app.stats()
    app.jobs(queue=queue, search="1")
    app.resume(queue)
    app.pause(queue)


def test_every_key_of_a_queue_shares_one_slot(app: Conveyor) -> None:
    # The oddest name a queue may have (no "{", "}", ":" or "," since names are checked).
    for queue in ("default", "mail", "we.ird/näme-x_1"):
        _exercise(app, queue)
    client = redis.Redis.from_url(app.url)
    keys = [k.decode() for k in client.scan_iter(match=f"{{{app.namespace}*")]
    assert len(keys) > 20
    by_queue: dict[str, set[int]] = {}
    for key in keys:
        tag = key[1 : key.index("}")]  # Redis hashes the text between the first { and }
        assert tag == app.namespace or tag.startswith(app.namespace + ":"), key
        by_queue.setdefault(tag, set()).add(key_slot(key.encode()))
    assert {f"{app.namespace}:default", f"{app.namespace}:mail"} <= set(by_queue)
    assert all(len(slots) == 1 for slots in by_queue.values()), by_queue
    # The queue's own keys: the job hashes, its waiting, active and final states, counters.
    default = {
        k.split("}:", 1)[1].split(":")[0] for k in keys if k.startswith(f"{{{app.namespace}:default}}")
    }
    assert {"j", "prios", "leases", "done", "dead", "cancelled", "counts", "paused"} <= default


def test_scripts_come_back_after_script_flush(app: Conveyor, redis_server: RedisServer) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    first = add.enqueue(1, 2)
    redis_server.command("SCRIPT", "FLUSH")
    second = add.enqueue(3, 4)  # a pipeline: NOSCRIPT, load, run again
    redis_server.command("SCRIPT", "FLUSH")
    app.worker(concurrency=2, burst=True).run()  # fetch, complete: each reloads its script
    assert first.result(timeout=5) == 3 and second.result(timeout=5) == 7
    redis_server.command("SCRIPT", "FLUSH")
    assert app.stats().processed == 2


def test_scripts_come_back_on_every_cluster_node(redis_cluster: RedisCluster) -> None:
    host, port = redis_cluster.nodes[0]
    app = Conveyor(f"redis+cluster://{host}:{port}", namespace=_namespace())

    @app.task(name="t.echo")
    def echo(x: str) -> str:
        return x

    try:
        queues = [f"q{i}" for i in range(6)]  # spread over the nodes
        jobs = [echo.using(queue=q).enqueue(q) for q in queues]
        for server in redis_cluster.servers:
            server.command("SCRIPT", "FLUSH")
        app.worker(queues=queues, concurrency=2, burst=True).run()
        assert [j.result(timeout=5) for j in jobs] == queues
    finally:
        app.close()


def test_unreachable_redis_raises_a_connection_error_quickly() -> None:
    app = Conveyor(f"redis://127.0.0.1:{free_port()}/0", namespace=_namespace())

    @app.task(name="t.x")
    def x() -> None: ...

    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at redis://127\.0\.0\.1") as info:
        x.enqueue()
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value, redis.exceptions.ConnectionError)
    app.close()


def test_restart_loses_no_acknowledged_job_and_the_worker_carries_on() -> None:
    with RedisServer(appendonly=True) as server:
        app = Conveyor(server.url, namespace=_namespace(), lease=3.0)

        @app.task(name="t.square")
        def square(x: int) -> int:
            return x * x

        acknowledged: list[str] = []
        worker = app.worker(concurrency=4)
        running = threading.Thread(target=worker.run, daemon=True)
        running.start()

        def enqueue_all() -> None:
            for i in range(400):
                # A call that raises was not acknowledged: the caller knows it was not stored.
                with contextlib.suppress(RedisUnavailable):
                    acknowledged.append(square.enqueue(i).id)
                time.sleep(0.002)

        producer = threading.Thread(target=enqueue_all)
        producer.start()
        time.sleep(0.3)
        server.restart(hard=True)  # SIGKILL: only what AOF fsynced survives
        producer.join(60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and app.stats().total("completed") < len(acknowledged):
            time.sleep(0.1)
        worker.stop()
        running.join(30)
        assert len(acknowledged) > 300
        states = {job_id: app.get_job(job_id) for job_id in acknowledged}
        assert all(job is not None and job.state == "completed" for job in states.values())
        assert not running.is_alive()
        app.close()


def test_urls() -> None:
    connected = connect("redis://user:p%40ss@127.0.0.1:1/3?protocol=3")
    kwargs = connected.client.connection_pool.connection_kwargs
    assert not connected.cluster and kwargs["db"] == 3 and kwargs["protocol"] == 3
    assert kwargs["username"] == "user" and kwargs["password"] == "p@ss"
    client = connect("rediss://127.0.0.1:1/0").client
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    # The query string is re-encoded when rebuilt: a CA path with a space and an & stays
    # one value; conveyor's own parameters never reach redis-py.
    connected = connect("rediss://127.0.0.1:1/0?ssl_ca_certs=/tmp/my%20ca%26x.pem&replicas=2")
    kwargs = connected.client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/tmp/my ca&x.pem" and "replicas" not in kwargs
    assert connected.replicas == 2 and connect("redis://127.0.0.1:1/0", replicas=1).replicas == 1
    with pytest.raises(ConfigurationError, match="replicas"):
        connect("redis://127.0.0.1:1/0?replicas=x")
    with pytest.raises(ConfigurationError, match="replicas"):
        Conveyor("sqlite:///x.db", replicas=1).stats()
    with pytest.raises(ConfigurationError, match="protocol"):
        connect("redis://127.0.0.1:1/0?protocol=4")
    with pytest.raises(ConfigurationError, match="service name"):
        connect("redis+sentinel://127.0.0.1:26379")
    with pytest.raises(ConfigurationError, match="hash tags"):
        RedisBackend("redis://127.0.0.1:1/0", "bad{ns}")


def test_unix_socket_url_works(tmp_path: Path) -> None:
    # unix:///path?db=0 used to be rebuilt as unix:/path (refused by redis-py), and given a
    # TCP keepalive option the unix connection refuses.
    socket_path = tmp_path / "redis.sock"
    with RedisServer(appendonly=False, extra_args=["--unixsocket", str(socket_path)]):
        app = Conveyor(f"unix://{socket_path}?db=2&protocol=3", namespace=_namespace())

        @app.task(name="t.inc")
        def inc(x: int) -> int:
            return x + 1

        try:
            job = inc.enqueue(41)
            app.worker(concurrency=1, burst=True).run()
            assert job.result(timeout=5) == 42
        finally:
            app.close()


def test_resp3_works(redis_server: RedisServer) -> None:
    app = Conveyor(redis_server.url + "?protocol=3", namespace=_namespace())

    @app.task(name="t.inc")
    def inc(x: int) -> int:
        return x + 1

    try:
        jobs = app.enqueue_many([inc.job(i) for i in range(5)])
        app.worker(concurrency=2, burst=True).run()
        assert [j.result(timeout=5) for j in jobs] == [1, 2, 3, 4, 5]
        assert app.stats().queues["default"] == {"completed": 5}
    finally:
        app.close()


def test_sentinel_url_finds_the_master(redis_server: RedisServer, tmp_path: Path) -> None:
    server_bin, _ = find_redis_binaries()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {tmp_path}\n"
        f"sentinel monitor main 127.0.0.1 {redis_server.port} 1\n"
    )
    sentinel = subprocess.Popen(
        [server_bin, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if resp_command(port, "SENTINEL", "get-master-addr-by-name", "main"):
                    break
            except (OSError, RespError):
                pass
            assert time.monotonic() < deadline, "sentinel did not start"
            time.sleep(0.05)
        app = Conveyor(f"redis+sentinel://127.0.0.1:{port}/main/0", namespace=_namespace())

        @app.task(name="t.double")
        def double(x: int) -> int:
            return 2 * x

        try:
            job = double.enqueue(21)
            app.worker(concurrency=1, burst=True).run()
            assert job.result(timeout=5) == 42
        finally:
            app.close()
    finally:
        sentinel.terminate()
        sentinel.wait(10)


def test_a_run_listed_twice_takes_a_chain_of_jobs_ahead(app: Conveyor) -> None:
    # chains_jobs_ahead: the second job taken for the same run follows the first, and holds
    # no slot until that one ends (the worker fills a run's chain in one claim).
    @app.task(name="t.chain", concurrency=1)
    def chain(n: int) -> None: ...

    jobs = [chain.enqueue(n) for n in range(5)]
    now = time.time() + 2  # after every enqueue (a loaded machine): all due by then
    store: Any = app.backend
    assert store.chains_jobs_ahead
    [first] = store.fetch(None, 1, "w1", 30, now)
    run = (first.queue, first.id, first.attempts)
    got, after = store.fetch_ahead(None, 0, "w1", 30, now, [run, run])
    assert [r.id for r in got] == [jobs[1].id, jobs[2].id]
    assert after == {jobs[1].id: first.id, jobs[2].id: jobs[1].id}
    assert store.fetch(None, 5, "w2", 30, now) == []  # one slot, the run's
    store.complete([(first.id, None)], "w1", now)
    assert store.fetch(None, 5, "w2", 30, now) == []  # the first job ahead has it now
    store.complete([(jobs[1].id, None)], "w1", now)
    assert store.fetch(None, 5, "w2", 30, now) == []  # and then the second
    store.complete([(jobs[2].id, None)], "w1", now)
    assert [r.id for r in store.fetch(None, 5, "w2", 30, now)] == [jobs[3].id]
