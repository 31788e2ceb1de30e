"""Batches on Redis beyond the conformance suite: a forward or a callback's enqueue cut short
by a crash is finished by housekeeping, once (backends/redis/batches.py), on one server and on
Cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conveyor import Conveyor, StoreFull
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.batches import INTAKE_DEADLINE
from conveyor.job import Failure
from tests.conformance.test_worker_runs import drain
from tests.servers import RedisServer


@pytest.mark.parametrize("topology", ["single", "cluster"])
def test_a_forward_cut_short_is_finished_by_housekeeping(
    topology: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if topology == "single":
        url = str(request.getfixturevalue("redis_server").url)
    else:
        host, port = request.getfixturevalue("redis_cluster").nodes[0]
        url = f"redis+cluster://{host}:{port}"
    app = Conveyor(url, namespace=f"bf{os.getpid()}{topology}")
    try:
        task = app.task(name="t.noop")(lambda n: None)
        batch = app.batch([task.job(i) for i in range(5)], on_complete=task.job(-1))
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        # The worker dies right after its acknowledgement: nothing forwarded.
        with monkeypatch.context() as m:
            m.setattr(RedisBackend, "batch_calls", lambda self, queues: ([], []))
            m.setattr(RedisBackend, "batches_acknowledged", lambda self, *args: None)
            got = backend.fetch(None, 10, "w", 30, time.time())
            backend.complete([(r.id, None) for r in got], "w", time.time())
        assert batch.status()["completed"] == 0
        # Housekeeping forwards; this time the process dies between the decision and the
        # callback's enqueue.
        with monkeypatch.context() as m:
            m.setattr(RedisBackend, "fire_callbacks", lambda self, entries=None: None)
            backend.recover(time.time(), 0)
        assert batch.status()["completed"] == 5 and batch.refresh().fired["complete"]
        assert app.get_job(batch.callbacks["complete"]) is None  # decided, not yet enqueued
        # The next housekeeping pass enqueues it; the ones after add nothing.
        for _ in range(3):
            backend.recover(time.time(), 0)
            backend.forward_batches(["default"])
        callback = app.get_job(batch.callbacks["complete"])
        assert callback is not None and callback.state == "pending"
        assert [j.id for j in app.jobs(state="pending")] == [callback.id]
        assert batch.status()["completed"] == 5
    finally:
        app.close()


@pytest.mark.parametrize("topology", ["single", "cluster"])
def test_an_acknowledgement_outboxes_one_move_per_batch_and_end(
    topology: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """complete.lua and fail.lua write one outbox entry per (batch, from, to) of a call, with
    its number of jobs, not one per job; batch_apply.lua moves the counters by that number,
    and still takes in entries of one job each without a number (an outbox written before)."""
    app = Conveyor(_url(topology, request), namespace=f"bo{os.getpid()}{topology}")
    try:
        task = app.task(name="t.noop")(lambda n: None)
        a = app.batch([task.job(i) for i in range(6)], on_complete=task.job(-1))
        b = app.batch([task.job(i) for i in range(3)], on_complete=task.job(-2))
        app.enqueue_many([task.job(i) for i in range(4)])  # plain jobs beside them
        c = app.batch([task.using(queue="other").job(i) for i in range(2)], on_complete=task.job(-3))
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        outbox = backend.keys.prefix("default") + "bmoves"
        legacy = backend.keys.prefix("default") + "bout"  # one job a move: older versions
        with monkeypatch.context() as m:  # nothing forwarded: the outbox keeps the moves
            m.setattr(RedisBackend, "batch_calls", lambda self, queues: ([], []))
            m.setattr(RedisBackend, "batches_acknowledged", lambda self, *args: None)
            got = backend.fetch(["default"], 20, "w", 30, time.time())
            assert len(got) == 13
            in_a = {r.id for r in got if backend.batch_of("default", r.id) == a.id}
            failed = sorted(in_a)[:2]
            backend.fail([Failure(i, "boom") for i in failed], "w", time.time())
            backend.complete([(r.id, None) for r in got if r.id not in failed], "w", time.time())
        # A worker of an older version reads only the one-job outbox, and would pass over a
        # counted move while raising its mark: none is ever written there.
        assert backend.client.zcard(legacy) == 0
        moves = sorted(m.decode().split("|", 1)[1] for m in backend.client.zrange(outbox, 0, -1))
        assert moves == sorted(
            [f"{a.id}|active|dead|2", f"{a.id}|active|completed|4", f"{b.id}|active|completed|3"]
        )
        backend.recover(time.time(), 0)  # housekeeping forwards them
        assert backend.client.zcard(outbox) == 0
        assert (a.status()["completed"], a.status()["dead"]) == (4, 2)
        assert b.status()["completed"] == 3 and b.refresh().fired["complete"]
        assert a.refresh().fired["complete"]  # dead ones count as ended
        # An outbox of single moves without a number (as written before) counts one job each:
        # the moves of c's two jobs, written as before.
        prefix = backend.keys.prefix("default")
        seq = int(backend.client.get(prefix + "bseq"))
        # Their seqs are below the counted outbox's mark: each outbox has a mark of its own.
        backend.client.zadd(legacy, {f"{k}|{c.id}|pending|completed": k for k in (1, 2)})
        backend.client.set(prefix + "bseq", seq + 2)
        backend.recover(time.time(), 0)
        assert c.status()["completed"] == 2 and c.refresh().fired["complete"]
        assert backend.client.zcard(legacy) == 0
    finally:
        app.close()


# The creating process, killed (SIGKILL) by its own hand at the point the test names: "ids"
# once the jobs are listed and counted, "jobs" with half of them stored, "seal" with all
# stored but the intake not sealed (around the store's own step, so product code carries no
# fault switch).
_CREATOR = """
import os, signal, sys
from conveyor import Conveyor
from conveyor.backends.redis.batches import RedisBatches
store_jobs = RedisBatches._store_batch_jobs
def dying(self, batch_id, records, listed=False):
    fault = sys.argv[3]
    if fault == "jobs":
        store_jobs(self, batch_id, records[: len(records) // 2], listed)
    elif fault == "seal":
        store_jobs(self, batch_id, records, listed)
    os.kill(os.getpid(), signal.SIGKILL)
RedisBatches._store_batch_jobs = dying
app = Conveyor(sys.argv[1], namespace=sys.argv[2])
task = app.task(name="t.count")(lambda n: None)
jobs = [task.using(queue="qa" if i % 2 else "qb").job(i) for i in range({n})]
app.batch(jobs, on_complete=task.using(queue="qc").job(-1), on_success=task.using(queue="qc").job(-2))
print("created", flush=True)
"""


def _url(topology: str, request: pytest.FixtureRequest) -> str:
    if topology == "single":
        return str(request.getfixturevalue("redis_server").url)
    host, port = request.getfixturevalue("redis_cluster").nodes[0]
    return f"redis+cluster://{host}:{port}"


@pytest.mark.parametrize("fault", ["ids", "jobs", "seal"])
@pytest.mark.parametrize("topology", ["single", "cluster"])
def test_a_client_killed_while_it_makes_a_batch_leaves_it_whole_for_housekeeping(
    topology: str, fault: str, request: pytest.FixtureRequest
) -> None:
    """kill -9 of the process that makes a batch of 3,000 jobs in two queues: with the jobs
    listed and counted but none stored ("ids"), half of them stored ("jobs"), or all stored
    but the batch not sealed ("seal"). Nothing fires before housekeeping takes the creator
    for dead; then the batch counts exactly the jobs that were stored (none: no batch), and
    each callback runs once."""
    n = 3000
    url, ns = _url(topology, request), f"bk{os.getpid()}{topology}{fault}"
    child = subprocess.run(
        [sys.executable, "-c", _CREATOR.format(n=n), url, ns, fault],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "created" not in child.stdout
    app = Conveyor(url, namespace=ns)
    runs: list[int] = []
    app.task(name="t.count")(runs.append)
    try:
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        [member] = [m.decode() for m in backend.client.zrange(backend.keys.batch_prefix() + "intake", 0, -1)]
        batch_id = member.split("|")[0]
        batch = app.get_batch(batch_id)
        assert batch is not None and batch.status()["total"] == n  # listed and counted
        stored = {"ids": 0, "jobs": n // 2, "seal": n}[fault]
        drain(app)
        assert len(runs) == stored and batch.status()["completed"] == stored
        assert -1 not in runs and -2 not in runs  # not sealed: nothing decided
        backend.recover(time.time(), 0)  # before the deadline: left alone
        assert batch.status()["total"] == n
        later = time.time() + INTAKE_DEADLINE + 1
        for _ in range(3):  # the creator is taken for dead; the passes after change nothing
            backend.recover(later, 0)
        drain(app)
        if stored == 0:
            assert app.get_batch(batch_id) is None and runs == []
        else:
            assert batch.status() == {
                "total": stored, "completed": stored, "dead": 0, "cancelled": 0, "unfinished": 0
            }  # fmt: skip
            assert sorted(runs)[:2] == [-2, -1] and len(runs) == stored + 2
            assert batch.refresh().fired == {"complete": True, "success": True}
        assert backend.client.zcard(backend.keys.batch_prefix() + "intake") == 0
    finally:
        app.close()


def test_a_full_server_during_a_batch_keeps_what_was_stored_consistent() -> None:
    """maxmemory reached while a batch's jobs are stored: the error says how many were
    stored, the batch counts exactly those, and once memory is back its callbacks run once."""
    server = RedisServer(
        appendonly=False, extra_args=["--maxmemory", "5mb", "--maxmemory-policy", "noeviction"]
    )
    server.start()
    app = Conveyor(server.url, namespace=f"oom{os.getpid()}")
    runs: list[int] = []
    task = app.task(name="t.pad")(lambda n, pad: runs.append(n))
    try:
        with pytest.raises(StoreFull, match=r"of the 6000 jobs of this call were stored") as caught:
            app.batch([task.job(i, "x" * 600) for i in range(6000)], on_complete=task.job(-1, ""))
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        assert backend.client.zcard(backend.keys.batch_prefix() + "intake") == 0
        [key] = backend.client.keys(backend.keys.batch_prefix() + "h:*")
        batch = app.get_batch(key.decode().rsplit(":", 1)[1])
        assert batch is not None
        stored = batch.status()["total"]
        assert 0 < stored < 6000 and f"{stored} of the 6000" in str(caught.value)
        backend.client.config_set("maxmemory", 0)
        drain(app)
        drain(app)
        assert len(runs) == stored + 1 and runs.count(-1) == 1
        assert batch.status()["completed"] == stored
    finally:
        app.close()
        server.stop()
