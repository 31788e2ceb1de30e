"""A worker of many queues pays per fetch, not per queue (issue 19 §4): one fetch.lua call
over every queue on a single server; on Cluster, where each queue is a slot of its own, a few
pipelines (one round-trip to each node, in parallel) whatever the number of queues, one when
what the queues hold is known from the claims before; a heartbeat extends only the queues
whose jobs the worker held."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.wire import Wire
from conveyor.job import PENDING, JobRecord, WorkerInfo
from tests.servers import RedisCluster, RedisServer

_names = itertools.count()
QUEUES = [f"q{n:03d}" for n in range(200)]


def _record(job_id: str, queue: str, now: float, priority: int = 0) -> JobRecord:
    return JobRecord(job_id, queue, b'{"t":"x"}', priority, PENDING, now - 1, 0, 3, None, now)


def _fill(backend: RedisBackend, now: float) -> list[str]:
    """Every queue registered (one job each, run at once: they are drained), then jobs
    in q150 (3) and q199 (3): the ids in claim order."""
    backend.enqueue([_record(f"x{q}", q, now) for q in QUEUES])
    drained = backend.fetch(None, 1000, "w0", 30, now)
    assert len(drained) == len(QUEUES)
    backend.complete([(r.id, None) for r in drained], "w0", now)
    jobs = [_record(f"a{i}", "q150", now, priority=i) for i in range(3)]
    jobs += [_record(f"b{i}", "q199", now) for i in range(3)]
    backend.enqueue(jobs)
    return ["a2", "a1", "a0", "b0", "b1", "b2"]


@pytest.fixture
def backend(redis_server: RedisServer) -> Iterator[RedisBackend]:
    store = RedisBackend(redis_server.url, f"many{os.getpid()}_{next(_names)}")
    yield store
    store.close()


def _scripts(backend: RedisBackend, commands: list[tuple[Any, ...]], name: str) -> int:
    sha = backend._wire.sha(name)
    return sum(1 for c in commands if c[0] == "EVALSHA" and c[1] == sha)


def test_a_fetch_over_200_queues_is_one_script_call(
    backend: RedisBackend, sent: list[tuple[Any, ...]]
) -> None:
    now = time.time()
    expected = _fill(backend, now)
    sent.clear()
    got = backend.fetch(None, 5, "w1", 30, now)
    assert [r.id for r in got] == expected[:5]
    assert [r.queue for r in got] == ["q150"] * 3 + ["q199"] * 2
    assert _scripts(backend, sent, "fetch") == 1 and len(sent) == 2  # + SMEMBERS, one round-trip
    sent.clear()
    assert [r.id for r in backend.fetch(QUEUES, 5, "w1", 30, now)] == expected[5:]
    assert _scripts(backend, sent, "fetch") == 1 and len(sent) == 1


def test_a_fetch_resent_with_its_token_returns_the_same_jobs_from_every_queue(backend: RedisBackend) -> None:
    """redis-py re-sends a call whose reply was lost: the claims of every queue come back."""
    now = time.time()
    expected = _fill(backend, now)
    first = backend._fetch(QUEUES, 5, "w1", 30, now, "token-1")
    again = backend._fetch(QUEUES, 5, "w1", 30, now, "token-1")
    assert [r.id for r in first] == [r.id for r in again] == expected[:5]


def test_the_heartbeat_extends_only_the_queues_held(
    backend: RedisBackend, sent: list[tuple[Any, ...]]
) -> None:
    now = time.time()
    _fill(backend, now)
    backend.heartbeat(WorkerInfo("w0", "h", 1, (), 1, now), 30, now)  # held jobs of all 200 lately
    (job,) = backend.fetch(["q199"], 1, "w1", 30, now)
    sent.clear()
    backend.heartbeat(WorkerInfo("w1", "h", 1, (), 1, now, running=(job.id,)), 30, now + 1)
    assert _scripts(backend, sent, "extend") == 1
    assert backend.client.hget(backend.keys.job("q199", job.id), "lu") == repr(now + 31).encode()
    backend.complete([(job.id, None)], "w1", now)
    sent.clear()
    backend.heartbeat(WorkerInfo("w1", "h", 1, (), 1, now), 30, now + 2)  # leaves q199's lease index
    assert _scripts(backend, sent, "extend") == 1
    assert backend.client.zscore(backend.keys.prefix("q199") + "leases", "w1") is None
    sent.clear()
    backend.heartbeat(WorkerInfo("w1", "h", 1, (), 1, now), 30, now + 3)
    assert _scripts(backend, sent, "extend") == 0


def test_on_cluster_a_fetch_over_many_queues_takes_few_round_trips(
    redis_cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = redis_cluster.nodes[0]
    backend = RedisBackend(f"redis+cluster://{host}:{port}", f"many{os.getpid()}_{next(_names)}")
    pipelines: list[int] = []
    pipeline = Wire.pipeline

    def counted(self: Wire, calls: Any, durable: bool = False) -> list[Any]:
        pipelines.append(len(calls))
        return pipeline(self, calls, durable)

    try:
        now = time.time()
        expected = _fill(backend, now)
        backend.client.script_load(backend._wire.source("hint_drop"))  # (not a round-trip of the fetch)
        monkeypatch.setattr(Wire, "pipeline", counted)
        got = backend.fetch(None, 5, "w1", 30, now)
        assert [r.id for r in got] == expected[:5]
        # The claim from q150 and the count of q199 (whose hints this process wrote: known
        # at once), then the claim from q199: never a round-trip per queue.
        assert len(pipelines) == 2, pipelines
        pipelines.clear()
        backend._hints_fresh = time.monotonic() + 60  # (as within HINTS_FRESH of that read)
        again = backend._fetch(QUEUES, 5, "w1", 30, now, "t-2")
        assert [r.id for r in again] == expected[5:]
        # What q199 had left came with its claim: claimed by it, in one round-trip.
        assert len(pipelines) == 1, pipelines  # (its claim, beside drops and the hints)
        assert [r.id for r in backend._fetch(QUEUES, 5, "w1", 30, now, "t-2")] == expected[5:]
        assert backend.fetch(QUEUES, 5, "w1", 30, now) == []
        # The drained queues lost their hints: a fetch now looks at none of them, and a job
        # enqueued into one is claimed by the next fetch, in one round-trip.
        # (each found empty is counted with the next fetch's calls, and dropped with the next)
        backend.fetch(QUEUES, 5, "w1", 30, now)
        backend.fetch(QUEUES, 5, "w1", 30, now)
        assert backend.client.hkeys(backend.keys.hints) == []
        pipelines.clear()
        assert backend.fetch(QUEUES, 5, "w1", 30, now) == []
        assert pipelines == [1], pipelines  # the hints only
        other = RedisBackend(backend.url, backend.ns)  # another process
        try:
            other.enqueue([_record("c0", "q077", now)])
        finally:
            other.close()
        pipelines.clear()
        assert [r.id for r in backend.fetch(QUEUES, 5, "w1", 30, now)] == ["c0"]
        assert len(pipelines) == 2, pipelines  # the hints (stale: none), then the claim
        backend.enqueue([_record("c1", "q078", now)])  # this process knows its own writes
        pipelines.clear()
        assert [r.id for r in backend.fetch(QUEUES, 5, "w1", 30, now)] == ["c1"]
        assert len(pipelines) == 1, pipelines
    finally:
        backend.close()


def test_on_cluster_a_lost_hint_costs_a_job_at_most_a_while(redis_cluster: RedisCluster) -> None:
    """The hints are a shortcut, the queues the truth: a job whose hint is gone (a crash
    between its write and its hint) is found by the next fetch that looks at every queue,
    within LOOK_AT_ALL seconds."""
    host, port = redis_cluster.nodes[0]
    backend = RedisBackend(f"redis+cluster://{host}:{port}", f"many{os.getpid()}_{next(_names)}")
    try:
        now = time.time()
        backend.enqueue([_record("first", "q001", now)])
        assert [r.id for r in backend.fetch(None, 5, "w1", 30, now)] == ["first"]
        backend.enqueue([_record("lost", "q002", now)])
        backend.client.delete(backend.keys.hints)
        backend.fetch(None, 5, "w1", 30, now)  # reads the hints: none
        assert backend.fetch(None, 5, "w1", 30, now) == []
        backend._look_at_all = time.monotonic()  # as LOOK_AT_ALL seconds later
        assert [r.id for r in backend.fetch(None, 5, "w1", 30, now)] == ["lost"]
    finally:
        backend.close()


def test_on_cluster_a_fetch_is_sent_the_hints_and_registry_only_when_they_grew(
    redis_cluster: RedisCluster,
) -> None:
    """With hundreds of busy queues the hints and the registry are hundreds of fields each:
    hints_read.lua sends them only when a write raised the count beside the hints (every
    hint written is followed by it) or the registry's size changed."""
    host, port = redis_cluster.nodes[0]
    backend = RedisBackend(f"redis+cluster://{host}:{port}", f"many{os.getpid()}_{next(_names)}")
    try:
        now = time.time()
        backend.enqueue([_record(f"j{q}", q, now) for q in QUEUES[:50]])
        assert len(backend.fetch(None, 10, "w1", 30, now)) == 10  # reads both, whole
        count, size = backend._hints_count, backend._registry_size
        assert count is not None and size == 50

        def read(*args: Any) -> Any:
            return backend._wire.script("hints_read", backend.keys.hints_read(), list(args))

        assert read(count, size) == [count, None, size, None]
        assert read(count, "-") == [count, None, None, None]
        backend.enqueue([_record("new", "q120", now)])
        got, hints, grown, members = read(count, size)
        assert got != count and grown == 51 and len(members) == 51
        assert dict(zip(hints[::2], hints[1::2], strict=True))[b"q120"]
        # A fetch sees the job at once (not only at its next look at every queue).
        rest = backend.fetch(None, 100, "w1", 30, now)
        assert "new" in {r.id for r in rest} and len(rest) == 41
    finally:
        backend.close()


@pytest.mark.parametrize("topology", ["server", "cluster"])
def test_a_queue_done_set_starts_as_a_skiplist(topology: str, request: pytest.FixtureRequest) -> None:
    """Redis keeps a sorted set of up to 128 members as a flat list, each insertion a scan of
    it; a queue's completed jobs go to a skiplist from the first (see complete.lua), and the
    filler that makes it one is gone within the same call."""
    if topology == "server":
        url = request.getfixturevalue("redis_server").url
    else:
        host, port = request.getfixturevalue("redis_cluster").nodes[0]
        url = f"redis+cluster://{host}:{port}"
    backend = RedisBackend(url, f"many{os.getpid()}_{next(_names)}")
    try:
        now = time.time()
        backend.enqueue([_record(f"d{i}", "q007", now) for i in range(3)])
        got = backend.fetch(["q007"], 3, "w1", 30, now)
        backend.complete([(got[0].id, None), (got[1].id, b"1")], "w1", now)
        backend.complete([(got[2].id, None)], "w1", now + 1)
        done = backend.keys.prefix("q007") + "done"
        assert backend.client.object("encoding", done) == b"skiplist"
        assert backend.client.zrange(done, 0, -1) == [b"d0", b"d1", b"d2"]
    finally:
        backend.close()
