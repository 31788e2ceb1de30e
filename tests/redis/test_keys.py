"""Each Lua script's KEYS header against the keys the Python side passes it.

A script reads its keys by position (``KEYS[3]``); a list built in another order would not
fail loudly, it would write the wrong key. So the header comment of every script is the
specification, checked twice: against the method of ``Keys`` named after the script, and
against every EVALSHA the store actually sends while it does every kind of work.
"""

from __future__ import annotations

import inspect
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend
from conveyor.backends.redis.batches import _intake
from conveyor.backends.redis.keys import Keys
from conveyor.backends.redis.wire import SCRIPTS, Call, script_source
from conveyor.job import Failure, Tick, WorkerInfo, new_id
from tests.servers import RedisServer

#: "-- KEYS[n]  name", or for the last, "-- KEYS[n…]  name": one such key for each of a list.
_HEADER = re.compile(r"^-- KEYS\[(\d+)(…)?\]\s+(\S+)", re.MULTILINE)
#: Stand-ins for the parts of a key name the header writes in angle brackets.
_SAMPLE = {
    "queue": "q",
    "worker": "w-1",
    "job_id": "j-1",
    "job_ids": ["j-1"],
    "priority": 7,
    "cluster": False,
    "outbox": "bmoves",
}
_PLACEHOLDER = {"<worker>": "w-1", "<id>": "j-1", "<p>": "7"}


def _header(script: str) -> list[str]:
    """The key names a script's header lists, in KEYS order."""
    found = [(int(n), more, name) for n, more, name in _HEADER.findall(script_source(script))]
    assert [n for n, _, _ in found] == list(range(1, len(found) + 1)), f"{script}.lua numbers its KEYS 1..n"
    assert all(not more for _, more, _ in found[:-1]), f"{script}.lua: only its last KEYS may repeat"
    return [name for _, _, name in found]


def _repeats(script: str) -> bool:
    """Whether the script's last key is one of a list ("KEYS[n…]")."""
    return any(more for _, more, _ in _HEADER.findall(script_source(script)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_keys_builds_each_scripts_keys_in_the_order_of_its_header(script: str) -> None:
    keys = Keys("ns")  # with queue "q", every queue key starts "{ns:q}:", as the headers write it
    method = getattr(keys, script)
    built = method(**{name: _SAMPLE[name] for name in inspect.signature(method).parameters})
    expected = []
    for name in _header(script):
        for placeholder, sample in _PLACEHOLDER.items():
            name = name.replace(placeholder, sample)
        expected.append(name)
    if script == "enqueue":  # a queue's; a bucket's adds KEYS[7] and KEYS[8]
        expected = expected[:6]
    assert list(built) == expected


def _pattern(name: str) -> re.Pattern[str]:
    """A header's key name as a pattern for the keys of any namespace and queue."""
    text = re.escape(name)
    text = text.replace(re.escape("{ns:b}"), r"\{[^{}:]+:b\}")  # every batch's slot
    text = text.replace(re.escape("{ns:q}"), r"\{[^{}:]+:[^{}]+\}").replace(re.escape("{ns}"), r"\{[^{}:]+\}")
    for placeholder in _PLACEHOLDER:
        text = text.replace(re.escape(placeholder), ".+")
    return re.compile(text + r"\Z")


def test_every_script_call_the_store_sends_matches_its_header(
    redis_server: RedisServer, sent: list[tuple[Any, ...]]
) -> None:
    app = Conveyor(redis_server.url, namespace=f"keys{os.getpid()}", lease=5.0)

    @app.task(name="t.keys", queue="mail")
    def task(x: int) -> int:
        return x

    @app.task(name="t.lim", queue="lim", concurrency=2, limit_key=lambda x: str(x))
    def limited(x: int) -> int:
        return x

    try:
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        task.enqueue(0)  # registers the queue: the next single job takes enqueue_one
        task.enqueue(1)
        task.using(delay=600).enqueue(2)
        app.enqueue_many([task.job(i) for i in range(3, 1100)])  # streamed
        now = time.time()
        got = backend.fetch(["mail"], 5, "w1", 30, now)
        assert backend.fetch(["mail", "empty", "default"], 1, "w3", 30, now)  # one call, three queues
        backend.complete([(got[0].id, b"1")], "w1", now)
        backend.fail([Failure(got[1].id, "boom", "tb", now + 60)], "w1", now)
        backend.release([got[2].id], "w1")
        backend.heartbeat(WorkerInfo("w1", "h", 1, ("mail",), 1, now), 30, now)
        backend.wait_and_fetch(["mail"], 0.05, 2, "w2", 30)
        backend.recover(now + 1, 0)
        app.cancel(got[3].id)
        app.cancel(got[4].id)  # running: asked to stop
        backend.set_progress(got[4].id, "w1", b'{"done": 1}')
        assert {job_id for job_id, _ in backend.cancel_requests("w1", ["mail"])} == {got[3].id, got[4].id}
        backend.fail([Failure(got[4].id, "cancelled", cancelled=True)], "w1", now)
        app.retry_all("dead", queue="mail")
        unique = task.using(unique_for=60, expires=600).enqueue(7)  # enqueue_each
        assert task.using(unique_for=60).enqueue(7).duplicate
        app.reschedule(unique.id, delay=30)  # change
        backend.fail([Failure(got[2].id, "snoozed", None, now + 5, snoozed=True)], "w1", now)
        backend.sweep(now + 3600, now, 0, 10)
        app.jobs(state="scheduled")
        app.stats()
        app.pause("mail")
        app.resume("mail")
        app.queue("other", partitions=2)
        backend.heartbeat(WorkerInfo("w1", "h", 1, ("mail",), 1, now, alive=False), 30, now)
        limited.enqueue(0)
        app.enqueue_many([limited.job(i) for i in range(2)])
        backend.fetch(["lim"], 5, "w1", 30, time.time())
        backend.wait_ended(got[0].id, "mail", 1)  # completed: watch.lua only looks
        app.periodic(task, every=60, args=(1,), name="keys-tick")
        tick = app._build(app.schedules["keys-tick"].spec(now), now, datetime.now(UTC), new_id())[0]
        assert backend.enqueue_ticks([Tick("keys-tick", now, now + 60, tick)], now) == [True]
        assert backend.forget_schedules([], now + 3600) == 1
        flow = app.chain(
            task.using(queue="wf").job(1), task.using(queue="wf2").job(2), task.using(queue="wf").job(3)
        )
        [first] = backend.fetch(["wf"], 1, "w1", 30, time.time())
        backend.complete([(first.id, None)], "w1", time.time())  # deps_release, deps_done
        app.cancel(flow[1].id)  # deps_cancel
        task.using(queue="wf2", after=[flow[0]]).enqueue(4)  # deps_link: a dependency outside the call
        batch = app.batch([task.job(i) for i in range(2)], on_complete=task.job(9))  # batch_create
        batch.add(task.job(3))  # batch_add
        # An add whose client died with its jobs listed, none stored: its deadline passed.
        records, _, _ = app._batch_records(batch.id, [task.job(4)])
        member = _intake(batch.id, "a", records)
        backend._wire.run([Call("batch_add", backend.keys.batch_add(batch.id), [member, "0"])])
        backend._wire.run(backend._ids_calls(batch.id, member, records))
        backend.recover(time.time(), time.time())  # batch_fix, batch_seal, batch_prune
        app.cancel(*[job.id for job in batch.jobs])  # batch_read, batch_apply, batch_sent

        by_sha = {backend._wire.sha(name): name for name in SCRIPTS}
        seen: set[str] = set()
        for command in sent:
            if command[0] != "EVALSHA":
                continue
            script = by_sha[command[1]]
            seen.add(script)
            count = int(command[2])
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in command[3 : 3 + count]]
            header = _header(script)
            # enqueue.lua's and ticks.lua's last two keys are only passed off Cluster; a
            # bucket's enqueue adds KEYS[7] and KEYS[8].
            if script == "enqueue" and len(keys) < len(header):
                header = header[: len(keys)]
            if _repeats(script):  # its last key once for each of a list
                header = header[:-1] + [header[-1]] * (len(keys) - len(header) + 1)
            # A bucket's keys are its queue's, in the same slot: {ns:q}:b:<name>\x1f<key>:...
            keys = [re.sub(r"\}:b:[^:]*:", "}:", k) for k in keys]
            assert len(keys) == len(header), f"{script}: {keys} for the header {header}"
            for key, name in zip(keys, header, strict=True):
                assert _pattern(name).match(key), f"{script}: {key!r} passed where the header says {name}"
        # due.lua runs on Cluster only (a fetch of many queues; tests/redis/test_many_queues.py),
        # and so do batch_read.lua and batch_sent.lua (off Cluster batch_apply.lua does their
        # work: tests/redis/test_cluster_conformance.py runs them).
        cluster_only = {"due", "hint_drop", "hints_read", "batch_read", "batch_sent"}
        assert seen == set(SCRIPTS) - cluster_only, (
            f"scripts never sent: {set(SCRIPTS) - cluster_only - seen}"
        )
    finally:
        app.close()
