"""The worker over each store: results, retries, the dead set, bad input, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conveyor import ConfigurationError, Conveyor, Fail, JobFailed, Retry
from conveyor.job import JobRecord, new_id

from .conftest import AppFactory
from .helpers import record


def drain(app: Conveyor, concurrency: int = 4, timeout: float = 60) -> None:
    """Run a burst worker until no job is ready (in a thread: pytest owns the signals)."""
    worker = app.worker(concurrency=concurrency, burst=True, grace=5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "burst worker did not finish"


def test_sync_and_async_results(app: Conveyor) -> None:
    @app.task(name="t.add")
    def add(x: int, y: int) -> dict[str, int]:
        return {"sum": x + y}

    @app.task(name="t.aadd")
    async def aadd(x: int, y: int) -> int:
        await asyncio.sleep(0.01)
        return x + y

    jobs = [add.enqueue(i, i) for i in range(20)] + [aadd.enqueue(i, 1) for i in range(20)]
    drain(app)
    assert [j.result(timeout=5) for j in jobs[:20]] == [{"sum": 2 * i} for i in range(20)]
    assert [j.result(timeout=5) for j in jobs[20:]] == [i + 1 for i in range(20)]
    assert app.stats().queues["default"] == {"completed": 40}


def test_retries_then_dead_with_redacted_error_and_traceback(app: Conveyor) -> None:
    calls: list[int] = []

    @app.task(name="t.flaky", retries=2, backoff=0)
    def flaky() -> None:
        calls.append(1)
        raise ConnectionError("password=hunter2 refused")

    job = flaky.enqueue()
    drain(app)
    dead = app.get_job(job.id)
    assert dead is not None and dead.state == "dead" and dead.attempts == 3 and len(calls) == 3
    assert dead.last_error == "ConnectionError: password=[REDACTED] refused"
    assert dead.traceback is not None and "flaky" in dead.traceback and "hunter2" not in dead.traceback
    with pytest.raises(JobFailed, match="dead"):
        job.result(timeout=1)


def test_retry_and_fail_exceptions(app: Conveyor) -> None:
    seen: list[int] = []

    @app.task(name="t.again", retries=1)
    def again() -> str:
        seen.append(1)
        if len(seen) == 1:
            raise Retry(delay=0)
        return "second time"

    @app.task(name="t.give_up", retries=5)
    def give_up() -> None:
        raise Fail("card declined")

    a, b = again.enqueue(), give_up.enqueue()
    drain(app)
    assert a.result(timeout=1) == "second time"
    gone = app.get_job(b.id)
    assert gone is not None and gone.state == "dead" and gone.attempts == 1
    assert gone.last_error == "Fail: card declined"


def test_timeout_stops_sync_and_async_tasks(app: Conveyor) -> None:
    @app.task(name="t.spin", timeout=0.3, retries=0)
    def spin() -> None:
        while True:
            sum(range(100))

    @app.task(name="t.nap", timeout=0.3, retries=0)
    async def nap() -> None:
        await asyncio.sleep(30)

    jobs = [spin.enqueue(), nap.enqueue()]
    drain(app)
    for job in jobs:
        snap = app.get_job(job.id)
        assert snap is not None and snap.state == "dead"
        assert snap.last_error == "timed out after 0.3 s"
        # From the fetch to the failure, as the worker recorded them: stopped near its
        # timeout, not when the task would have ended (never, or after 30 s).
        assert snap.started_at is not None and snap.finished_at is not None
        assert (snap.finished_at - snap.started_at).total_seconds() < 5.0, snap


def test_bad_input_is_dead_with_a_reason_and_others_run(app: Conveyor) -> None:
    @app.task(name="t.ok")
    def ok(x: int) -> int:
        return x

    @app.task(name="t.returns_set")
    def returns_set() -> object:
        return {1, 2}

    good = [ok.enqueue(i) for i in range(5)]
    now = time.time()

    def raw(payload: bytes) -> JobRecord:
        return JobRecord(id=new_id(), queue="default", payload=payload, run_at=now, created_at=now)

    garbage = raw(b"\x00\xff not json")
    not_object = raw(b"[1, 2]")
    no_task = raw(b'{"a": []}')
    bad_args = raw(b'{"t": "t.ok", "a": {"x": 1}}')
    unknown = record(app, task="os.system", args=["rm -rf /"])
    wrong_count = record(app, task="t.ok", args=[1, 2, 3])
    app.backend.enqueue([garbage, not_object, no_task, bad_args, unknown, wrong_count])
    bad_result = returns_set.enqueue()
    drain(app)
    assert [j.result(timeout=1) for j in good] == list(range(5))
    reasons = {}
    for r in (garbage, not_object, no_task, bad_args, unknown, wrong_count):
        snap = app.get_job(r.id)
        assert snap is not None and snap.state == "dead", r
        reasons[r.id] = snap.last_error or ""
    assert "not valid JSON" in reasons[garbage.id]
    assert "expected an object" in reasons[not_object.id]
    assert "names no task" in reasons[no_task.id]
    assert "expected a list" in reasons[bad_args.id]
    assert "unknown task 'os.system'" in reasons[unknown.id]
    assert "wrong arguments" in reasons[wrong_count.id]
    snap = app.get_job(bad_result.id)
    assert snap is not None and snap.state == "dead" and "not JSON" in (snap.last_error or "")


def test_tampered_signature_is_never_run(make_app: AppFactory) -> None:
    app = make_app(secret_key="k" * 32)
    ran: list[str] = []

    @app.task(name="t.pay")
    def pay(amount: int) -> None:
        ran.append(str(amount))

    honest = pay.enqueue(10)
    forged = record(app, task="t.pay", args=[10])
    tampered = JobRecord(
        id=forged.id,
        queue="default",
        payload=forged.payload.replace(b"10", b"99"),
        run_at=forged.run_at,
        created_at=forged.created_at,
    )
    unsigned = make_app(namespace="a")  # same namespace, no key: writes unsigned payloads

    @unsigned.task(name="t.pay")
    def pay2(amount: int) -> None: ...

    sneaky = pay2.enqueue(5)
    app.backend.enqueue([tampered])
    drain(app)
    assert ran == ["10"]
    assert honest.result(timeout=1) is None
    for job_id, why in ((tampered.id, "signature does not verify"), (sneaky.id, "not signed")):
        snap = app.get_job(job_id)
        assert snap is not None and snap.state == "dead" and why in (snap.last_error or "")


def test_key_rotation_accepts_old_signatures(make_app: AppFactory) -> None:
    old = make_app(secret_key="old-key-0123456789abcdef")
    new = make_app(secret_key=["new-key-0123456789abcdef", "old-key-0123456789abcdef"])

    @old.task(name="t.f")
    def f() -> str:
        return "ok"

    new.task(name="t.f")(lambda: "ok")
    job = f.enqueue()
    drain(new)
    assert job.result(timeout=1) == "ok"


def test_cancelled_job_never_runs(app: Conveyor) -> None:
    ran: list[int] = []

    @app.task(name="t.x")
    def x() -> None:
        ran.append(1)

    job = x.enqueue()
    assert app.cancel(job.id)
    drain(app)
    assert ran == []
    with pytest.raises(JobFailed, match="cancelled"):
        job.result(timeout=1)


def test_result_times_out_while_waiting(app: Conveyor) -> None:
    @app.task(name="t.x")
    def x() -> None: ...

    job = x.using(delay=60).enqueue()
    with pytest.raises(TimeoutError):
        job.result(timeout=0.2)


def test_kept_priority_order_through_one_thread(app: Conveyor) -> None:
    order: list[str] = []

    @app.task(name="t.rec")
    def rec(tag: str) -> None:
        order.append(tag)

    app.pause("default")
    rec.using(priority=0).enqueue("low")
    rec.using(priority=9).enqueue("high")
    rec.using(priority=5).enqueue("mid")
    app.resume("default")
    worker = app.worker(concurrency=1, burst=True, prefetch=0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(30)
    assert order == ["high", "mid", "low"]


def test_encrypted_arguments_and_results_at_rest(make_app: AppFactory) -> None:
    pytest.importorskip("cryptography")
    import base64
    import os

    key, old = base64.urlsafe_b64encode(os.urandom(32)).decode(), os.urandom(32)
    writer = make_app(encryption_key=[key, old])
    del old
    reader = make_app(encryption_key=[os.urandom(32), key])  # rotated: the old key decrypts
    blind = make_app()  # same store, no key

    @writer.task(name="t.secret")
    def secret(card: str) -> dict[str, str]:
        return {"last4": card[-4:]}

    reader.task(name="t.secret")(secret.fn)
    job = secret.enqueue("4111111111111111")
    stored = writer.backend.get(job.id)
    assert stored is not None and b"4111" not in stored.payload
    drain(reader)
    assert reader.wait_for(job.id, timeout=1) == {"last4": "1111"}
    with pytest.raises(ConfigurationError, match="key this app does not hold"):
        job.result(timeout=1)  # the writer never held the reader's new key
    assert b"1111" not in (reader.backend.get(job.id).result or b"")  # type: ignore[union-attr]
    seen = blind.get_job(job.id)
    assert seen is not None and seen.encrypted and seen.args == [] and seen.return_value is None
    assert reader.get_job(job.id).args == ["4111111111111111"]  # type: ignore[union-attr]


def test_payload_size_limit(make_app: AppFactory) -> None:
    from conveyor import PayloadTooLarge

    app = make_app(max_payload=1000)

    @app.task(name="t.big")
    def big(blob: str) -> None: ...

    big.enqueue("x" * 500)
    with pytest.raises(PayloadTooLarge, match="over the limit of 1000"):
        big.enqueue("x" * 2000)
    assert app.stats().total("pending") == 1
