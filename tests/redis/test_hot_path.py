"""The Redis store's hot-path shortcuts: each must keep the semantics of the general path."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend
from conveyor.job import ACTIVE, PENDING, Failure, JobRecord
from tests.servers import RedisServer, RespError

_names = itertools.count()


@pytest.fixture
def backend(redis_server: RedisServer) -> Iterator[RedisBackend]:
    store = RedisBackend(redis_server.url, f"hot{os.getpid()}_{next(_names)}")
    yield store
    store.close()


def _record(job_id: str, now: float, *, run_at: float | None = None, queue: str = "default") -> JobRecord:
    return JobRecord(
        job_id, queue, b'{"t":"x"}', 0, PENDING, now if run_at is None else run_at, 0, 3, None, now
    )


def test_a_job_enqueued_alone_and_sent_again_is_not_reset(backend: RedisBackend) -> None:
    """A call re-sent after a lost reply must not put a claimed job back in the queue."""
    now = time.time()
    backend.enqueue([_record("a0", now), _record("a1", now)])  # registers the queue
    one = _record("b0", now)
    backend.enqueue([one])  # the single-job script
    claimed = backend.fetch(None, 10, "w1", 30, now)
    assert [r.id for r in claimed] == ["a0", "a1", "b0"]
    backend.enqueue([one])  # as redis-py would re-send it
    backend.enqueue([_record("a0", now), _record("a1", now)])  # and a batch
    assert backend.fetch(None, 10, "w1", 30, now) == []
    got = backend.get("b0")
    assert got is not None and got.state == ACTIVE and got.attempts == 1


def test_a_batch_of_mixed_settings_keeps_each_jobs_own(backend: RedisBackend) -> None:
    """Jobs of one call are sent in runs of equal settings; each job keeps its own."""
    now = time.time()
    records = [
        JobRecord(
            f"m{i}", "default", b"{}", i % 3, PENDING, now - i, 0, 1 + i % 2, None if i % 4 else 7.5, now
        )
        for i in range(12)
    ]
    backend.enqueue(records)
    for r in records:
        got = backend.get(r.id)
        assert got is not None
        assert (got.priority, got.max_attempts, got.timeout) == (r.priority, r.max_attempts, r.timeout)
        assert got.run_at == pytest.approx(r.run_at)
    claimed = backend.fetch(["default"], 20, "w1", 30, now)
    expected = sorted(records, key=lambda r: (-r.priority, r.run_at, r.id))
    assert [r.id for r in claimed] == [r.id for r in expected]


def test_wait_and_fetch_claims_the_job_that_woke_it(backend: RedisBackend) -> None:
    backend.enqueue([_record("seed", time.time())])  # registers the queue
    assert len(backend.fetch(None, 10, "w1", 30, time.time())) == 1
    got: list[JobRecord] = []
    woken_at: list[float] = []

    def wait() -> None:
        # Tokens left by earlier enqueues cause spare wake-ups; a worker just loops.
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got.extend(backend.wait_and_fetch(None, 5.0, 10, "w1", 30))
        woken_at.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    enqueued_at = time.time()
    sent = time.monotonic()
    backend.enqueue([_record("late", enqueued_at)])
    waiter.join(10)
    assert woken_at and woken_at[0] - sent < 1.0, "the enqueue did not wake the waiting worker"
    assert [r.id for r in got] == ["late"]
    (record,) = got
    # The server's clock, read in the worker's: no earlier than the enqueue.
    assert record.started_at is not None and record.lease_until is not None
    assert enqueued_at - 0.05 <= record.started_at <= time.time() + 0.05
    assert record.lease_until == pytest.approx(record.started_at + 30, abs=0.01)
    stored = backend.get("late")
    assert stored is not None and stored.state == ACTIVE and stored.locked_by == "w1"


def test_wait_and_fetch_does_not_claim_a_job_before_its_time(backend: RedisBackend) -> None:
    now = time.time()
    backend.enqueue([_record("soon", now, run_at=now + 1.0), _record("due", now)])
    first = backend.wait_and_fetch(["default"], 0.3, 10, "w1", 30)
    assert [r.id for r in first] == ["due"]
    assert backend.wait_and_fetch(["default"], 0.3, 10, "w1", 30) == []
    time.sleep(max(0.0, now + 1.05 - time.time()))
    assert [r.id for r in backend.wait_and_fetch(["default"], 0.3, 10, "w1", 30)] == ["soon"]


def test_wait_and_fetch_serves_queues_in_order(backend: RedisBackend) -> None:
    now = time.time()
    backend.enqueue(
        [_record("b1", now, queue="b"), _record("a1", now, queue="a"), _record("b2", now, queue="b")]
    )
    got = backend.wait_and_fetch(["a", "b"], 0.3, 2, "w1", 30)
    assert [r.id for r in got] == ["a1", "b1"]


def test_a_worker_thread_gives_its_connection_back_when_it_ends(backend: RedisBackend) -> None:
    pool = backend.client.connection_pool

    def use() -> None:
        backend.fetch(None, 1, "w1", 30, time.time())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pool._in_use_connections) <= 1  # only this thread's, if it used one
    backend.fetch(None, 1, "w1", 30, time.time())


def test_a_worker_on_redis_runs_jobs_enqueued_while_it_idles(redis_server: RedisServer) -> None:
    app = Conveyor(redis_server.url, namespace=f"hot{os.getpid()}_{next(_names)}")
    ran: list[int] = []

    @app.task(name="note")
    def note(i: int) -> None:
        ran.append(i)

    worker = app.worker(concurrency=2)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        for i in range(20):
            note.enqueue(i)
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while len(ran) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
        runner.join(10)
        app.close()
    assert sorted(ran) == list(range(20))


def test_a_fetched_record_carries_every_stored_field(backend: RedisBackend) -> None:
    """fetch.lua reads priority and run_at from the waiting set, not the hash: same values."""
    now = time.time()
    stored = JobRecord("f0", "default", b'{"t":"x"}', 2, PENDING, now - 5.123456789, 0, 3, 7.5, now - 10.25)
    backend.enqueue([stored])
    (claimed,) = backend.fetch(None, 10, "w1", 30, now)
    assert (claimed.priority, claimed.run_at, claimed.created_at) == (2, stored.run_at, stored.created_at)
    assert (claimed.attempts, claimed.max_attempts, claimed.timeout) == (1, 3, 7.5)
    assert (claimed.payload, claimed.last_error, claimed.traceback) == (stored.payload, None, None)
    backend.fail([Failure("f0", "ValueError: x", "Traceback…", now)], "w1", now)
    (again,) = backend.fetch(None, 10, "w1", 30, now + 1)
    assert (again.attempts, again.last_error, again.traceback) == (2, "ValueError: x", "Traceback…")
    assert again.run_at == now


def test_a_completed_job_shows_no_lease_or_earlier_error(backend: RedisBackend) -> None:
    """complete.lua leaves the last lease and error in the hash; reads must not show them."""
    now = time.time()
    backend.enqueue([_record("c0", now)])
    backend.fetch(None, 10, "w1", 30, now)
    backend.fail([Failure("c0", "ValueError: x", "Traceback…", now)], "w1", now)
    backend.fetch(None, 10, "w1", 30, now + 1)
    backend.complete([("c0", b"42")], "w1", now + 2)
    (done,) = backend.jobs(state="completed", now=now + 3)
    got = backend.get("c0")
    for record in (done, got):
        assert record is not None and record.state == "completed" and record.result == b"42"
        assert (record.locked_by, record.lease_until) == (None, None)
        assert (record.last_error, record.traceback) == (None, None)
        assert record.attempts == 2 and record.finished_at == pytest.approx(now + 2)


def test_complete_works_on_a_server_without_smismember() -> None:
    """Before Redis 6.2 there is no SMISMEMBER: complete.lua checks the holds one by one."""
    server = RedisServer(appendonly=False, extra_args=["--rename-command", "SMISMEMBER", '""']).start()
    store = RedisBackend(server.url, "old")
    try:
        with pytest.raises(RespError, match="unknown command"):
            server.command("SMISMEMBER", "k", "m")
        now = time.time()
        store.enqueue([_record(f"o{i}", now + i * 1e-3) for i in range(3)])
        assert [r.id for r in store.fetch(None, 2, "w1", 30, now + 1)] == ["o0", "o1"]
        assert [r.id for r in store.fetch(None, 2, "w2", 30, now + 1)] == ["o2"]
        store.complete([("o0", None), ("o1", b"1"), ("o2", None)], "w1", now + 2)
        states = [r.state if (r := store.get(f"o{i}")) else None for i in range(3)]
        assert states == ["completed", "completed", "active"]
    finally:
        store.close()
        server.stop()


def test_the_id_index_leaves_out_the_default_queue_and_lookups_still_find_every_job(
    backend: RedisBackend, redis_server: RedisServer
) -> None:
    now = time.time()
    backend.enqueue([_record("d0", now), _record("d1", now), _record("m0", now, queue="mail")])
    backend.enqueue([_record("d2", now)])  # the single-job script
    backend.enqueue([_record("m1", now, queue="mail")])
    index = backend.keys.where
    indexed = {k.decode() for k in backend.client.hkeys(index)}
    assert indexed == {"m0", "m1"}
    for job_id, queue in [("d0", "default"), ("d2", "default"), ("m0", "mail"), ("m1", "mail")]:
        got = backend.get(job_id)
        assert got is not None and got.queue == queue
    assert backend.get("nope") is None
    backend.client.hdel(index, "m0")  # an entry lost: found by a look in every queue, repaired
    got = backend.get("m0")
    assert got is not None and got.queue == "mail" and backend.client.hexists(index, "m0")
    assert not backend.client.hexists(index, "d0")
    # Another process (no memory of this one's fetches) finishes jobs of both kinds by id.
    claimed = {r.id for r in backend.fetch(None, 10, "w1", 30, now)}
    assert claimed == {"d0", "d1", "d2", "m0", "m1"}
    other = RedisBackend(redis_server.url, backend.ns)
    try:
        other.complete([("d1", None), ("m1", None)], "w1", now + 1)
        other.fail([Failure("d0", "ValueError: x", None, None)], "w1", now + 1)
    finally:
        other.close()
    states = {i: r.state for i in ("d0", "d1", "m1") if (r := backend.get(i))}
    assert states == {"d0": "dead", "d1": "completed", "m1": "completed"}


def _big_batch(backend: RedisBackend, n: int, now: float) -> list[JobRecord]:
    queues = ("default", "mail")
    return [_record(f"s{i:05d}", now + i * 1e-6, queue=queues[i % 2]) for i in range(n)]


def test_a_streamed_batch_stores_every_job_once_in_order(backend: RedisBackend) -> None:
    now = time.time()
    records = _big_batch(backend, 2500, now)
    backend.enqueue_stream(records[i : i + 1000] for i in range(0, 2500, 1000))
    claimed = backend.fetch(["default", "mail"], 5000, "w1", 30, now + 1)
    expected = [r.id for r in records if r.queue == "default"] + [r.id for r in records if r.queue == "mail"]
    assert [r.id for r in claimed] == expected


def test_a_streamed_batch_survives_a_dropped_connection_and_a_script_flush(
    backend: RedisBackend, redis_server: RedisServer
) -> None:
    """Chunks already written are sent again with the rest (each call is safe to repeat)."""
    now = time.time()
    records = _big_batch(backend, 3000, now)

    def chunks() -> Iterator[list[JobRecord]]:
        yield records[:1000]
        redis_server.command("CLIENT", "KILL", "TYPE", "normal")  # the stream's connection too
        yield records[1000:2000]
        redis_server.command("SCRIPT", "FLUSH")
        yield records[2000:]

    backend.enqueue_stream(chunks())
    claimed = backend.fetch(["default", "mail"], 5000, "w1", 30, now + 1)
    assert sorted(r.id for r in claimed) == sorted(r.id for r in records)


def test_a_large_batch_with_one_bad_job_stores_nothing(redis_server: RedisServer) -> None:
    """enqueue_many streams large batches, yet checks every job before the first chunk."""
    app = Conveyor(redis_server.url, namespace=f"hot{os.getpid()}_{next(_names)}")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    try:
        with pytest.raises(TypeError, match="argument 0"):
            app.enqueue_many([add.job(i, i) for i in range(4999)] + [add.job(object(), 1)])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes"):
            app.enqueue_many([add.job(i, i) for i in range(4999)] + [add.job(1)])  # type: ignore[call-arg]
        assert app.stats().total("pending") == 0
        jobs = app.enqueue_many([add.job(i, i) for i in range(4999)])
        assert [j.args for j in jobs[:2]] == [[0, 0], [1, 1]] and len({j.id for j in jobs}) == 4999
        assert app.stats().total("pending") == 4999
        assert app.get_job(jobs[-1].id) is not None
    finally:
        app.close()


def test_the_async_client_packs_a_long_command_in_slices_as_hiredis_packs_it_whole() -> None:
    """aio.py packs a command of thousands of arguments a slice per step of the event loop:
    the bytes must be those of the command packed at once."""
    import asyncio

    from conveyor.backends.redis.aio import _STEP, _packed
    from conveyor.backends.redis.wire import _pack

    assert _pack is not None
    args = [f"id{i}" if i % 2 else b"\x00payload\r\n" for i in range(2 * _STEP + 7)]
    commands = [
        ("SET", "a", "1"),
        ("EVALSHA", "f" * 40, 1, "k", *args),
        ("HSET", "h", *("x" for _ in range(_STEP - 3))),
        ("RPUSH", "l", *range(_STEP)),
        ("GET", "a"),
    ]
    assert asyncio.run(_packed(commands)) == [_pack(c) for c in commands]


def test_a_large_async_batch_planned_in_slices_keeps_each_jobs_settings(redis_server: RedisServer) -> None:
    """aenqueue_many plans a batch of thousands a slice at a time: runs of equal settings
    that cross a slice's edge keep every job's own."""
    import asyncio

    app = Conveyor(redis_server.url, namespace=f"hot{os.getpid()}_{next(_names)}")

    @app.task(name="t")
    def t(n: int) -> None: ...

    specs = [t.using(priority=(n // 700) % 3, queue="q" if n < 1800 else "r").job(n) for n in range(2600)]

    async def enqueue() -> list[str]:
        jobs = await app.aenqueue_many(specs)
        await app.aclose()
        return [j.id for j in jobs]

    ids = asyncio.run(enqueue())
    try:
        for n, job_id in enumerate(ids):
            job = app.get_job(job_id)
            assert job is not None and job.state == "pending", n
            assert (job.priority, job.queue) == ((n // 700) % 3, "q" if n < 1800 else "r"), n
    finally:
        app.close()
