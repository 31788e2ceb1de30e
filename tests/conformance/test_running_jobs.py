"""The running job on each store: current_job(), metadata, and middleware that wraps a run."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor import ConfigurationError, Conveyor, CurrentJob, Enqueuing, Middleware, current_job

from .test_worker_runs import drain


def test_current_job_inside_sync_and_async_tasks(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task(name="t.sync", retries=1, backoff=0)
    def sync(key: str) -> None:
        job = current_job()
        assert job is not None
        seen[key] = (job.id, job.task, job.queue, job.attempts, job.max_attempts, dict(job.meta))
        if job.attempts == 1:
            raise ConnectionError("first run fails")

    @app.task(name="t.async", queue="other")
    async def run_async(key: str) -> None:
        await asyncio.sleep(0.01)  # another job's run may interleave on the loop
        job = current_job()
        assert job is not None
        seen[key] = (job.id, job.task, job.queue, job.attempts, job.max_attempts, dict(job.meta))

    assert current_job() is None
    a = sync.using(meta={"tenant": "acme"}).enqueue("a")
    b = [run_async.enqueue(f"b{i}") for i in range(5)]
    drain(app)
    assert seen["a"] == (a.id, "t.sync", "default", 2, 2, {"tenant": "acme"})
    for i, job in enumerate(b):
        assert seen[f"b{i}"] == (job.id, "t.async", "other", 1, 4, {})  # retries=3 by default
    assert current_job() is None


def test_meta_is_kept_shown_and_filtered(app: Conveyor) -> None:
    @app.task(name="t.noop")
    def noop(*args: Any) -> None: ...

    acme = [noop.using(meta={"tenant": "acme", "n": i}).enqueue(i) for i in range(3)]
    other = noop.using(meta={"tenant": "globex"}).enqueue("acme")  # the text, in an argument
    plain = noop.enqueue()
    got = app.get_job(acme[0].id)
    assert got is not None and got.meta == {"tenant": "acme", "n": 0}
    assert app.get_job(plain.id).meta is None  # type: ignore[union-attr]
    found = app.jobs(meta={"tenant": "acme"})
    assert sorted(j.id for j in found) == sorted(j.id for j in acme)
    assert [j.id for j in app.jobs(meta={"tenant": "acme", "n": 2})] == [acme[2].id]
    assert [j.id for j in app.jobs(meta={"tenant": "globex"})] == [other.id]
    assert app.jobs(meta={"tenant": "nobody"}) == []
    with pytest.raises(TypeError, match=r"meta of task 't\.noop'"):  # like an argument that is not JSON
        noop.using(meta={"when": object()})
    with pytest.raises(ConfigurationError, match="string keys"):
        noop.using(meta={1: "x"})  # type: ignore[dict-item]


class Tagging(Middleware):
    """Adds to meta at enqueue, and wraps each run, recording the order of the calls."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def on_enqueue(self, job: Enqueuing) -> None:
        job.meta.setdefault("via", []).append(self.name)
        job.meta["queue"] = job.queue

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        self.calls.append(f"{self.name}>{job.meta['via']}")
        try:
            return call_next()
        finally:
            self.calls.append(f"<{self.name}")

    async def around_run_async(self, job: CurrentJob, call_next: Callable[[], Awaitable[Any]]) -> Any:
        self.calls.append(f"{self.name}>async")
        value = await call_next()
        return {"wrapped": value}


def test_middleware_writes_meta_at_enqueue_and_wraps_runs(make_app: Callable[..., Conveyor]) -> None:
    calls: list[str] = []
    app = make_app(middleware=[Tagging("outer", calls), Tagging("inner", calls)])

    @app.task(name="t.sync")
    def sync() -> int:
        calls.append("task")
        return 7

    @app.task(name="t.async")
    async def run_async() -> int:
        return 8

    job = sync.using(meta={"tenant": "acme"}).enqueue()
    assert app.get_job(job.id).meta == {"tenant": "acme", "via": ["outer", "inner"], "queue": "default"}  # type: ignore[union-attr]
    drain(app)
    assert job.result(timeout=5) == 7
    assert calls == ["outer>['outer', 'inner']", "inner>['outer', 'inner']", "task", "<inner", "<outer"]
    calls.clear()
    wrapped = run_async.enqueue()
    drain(app)
    assert wrapped.result(timeout=5) == {"wrapped": {"wrapped": 8}}
    assert calls == ["outer>async", "inner>async"]


class Broken(Middleware):
    def on_enqueue(self, job: Enqueuing) -> None:
        job.meta["half"] = "written"
        raise RuntimeError("enqueue hook broke")

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        if job.meta.get("break"):
            raise RuntimeError("around_run broke")
        return call_next()


def test_a_failing_middleware_fails_only_that_job(
    make_app: Callable[..., Conveyor], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(middleware=[Broken()])

    @app.task(name="t.work", retries=0)
    def work(n: int) -> int:
        return n

    with caplog.at_level(logging.ERROR, logger="conveyor"):
        bad = work.using(meta={"break": True}).enqueue(1)
    assert "enqueue hook broke" in caplog.text
    assert app.get_job(bad.id).meta == {"break": True}  # type: ignore[union-attr]  # its change dropped
    good = work.enqueue(2)
    drain(app)
    assert good.result(timeout=5) == 2
    dead = app.get_job(bad.id)
    assert dead is not None and dead.state == "dead" and "around_run broke" in (dead.last_error or "")


class Running:
    """A worker running in a thread (pytest owns the signals) until ``stop()``."""

    def __init__(self, app: Conveyor, concurrency: int = 4) -> None:
        self.worker = app.worker(concurrency=concurrency, grace=5)
        self.thread = threading.Thread(target=self.worker.run)
        self.thread.start()

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


def _state(app: Conveyor, job_id: str) -> str | None:
    job = app.get_job(job_id)
    return None if job is None else job.state


def test_cancel_a_running_sync_and_async_job(app: Conveyor) -> None:
    started: set[str] = set()
    seen: dict[str, bool] = {}

    @app.task(name="t.spin", retries=3)
    def spin(key: str) -> None:
        started.add(key)
        while True:  # pure Python: the stop is raised at the next instruction
            time.sleep(0.005)

    @app.task(name="t.polite", retries=3)
    def polite(key: str) -> str:
        started.add(key)
        job = current_job()
        assert job is not None
        try:
            while not job.cancelled:
                time.sleep(0.005)
        finally:
            seen[key] = job.cancelled
        return "stopped early"

    @app.task(name="t.wait", retries=3)
    async def wait(key: str) -> None:
        started.add(key)
        await asyncio.sleep(60)

    jobs = {"spin": spin.enqueue("spin"), "polite": polite.enqueue("polite"), "wait": wait.enqueue("wait")}
    running = Running(app)
    try:
        _wait(lambda: started == set(jobs))
        t0 = time.monotonic()
        assert app.cancel(*(j.id for j in jobs.values()), by="the test") == 3
        took = _wait(lambda: all(_state(app, j.id) == "cancelled" for j in jobs.values()))
        assert time.monotonic() - t0 < 3.0, took  # about a second: a poll, then the stop
    finally:
        running.stop()
    for job in jobs.values():
        done = app.get_job(job.id)
        assert done is not None and done.state == "cancelled" and done.last_error == "cancelled by the test"
        assert done.attempts == 1  # never retried
    assert seen == {"polite": True}


def test_cancel_racing_completion_leaves_one_state(app: Conveyor) -> None:
    @app.task(name="t.quick", retries=2)
    def quick(n: int) -> int:
        time.sleep(0.002 * (n % 5))
        return n

    jobs = [quick.enqueue(i) for i in range(60)]
    running = Running(app, concurrency=8)
    try:
        for job in jobs[::2]:
            app.cancel(job.id)
            time.sleep(0.003)
        _wait(lambda: all(_state(app, j.id) in ("completed", "cancelled") for j in jobs), 30)
    finally:
        running.stop()
    for job in jobs:
        done = app.get_job(job.id)
        assert done is not None
        assert done.state in ("completed", "cancelled"), (done.state, done.last_error)
        if done.state == "completed":
            assert done.return_value == int(job.args[0]) and done.cancel_requested is None
        else:
            assert done.attempts <= 1 and done.last_error and done.last_error.startswith("cancelled by")
    assert app.backend.cancel_requests(running.worker.id, ["default"]) == []


def test_progress_from_sync_and_async_tasks(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task(name="t.steps")
    def steps(n: int) -> None:
        job = current_job()
        assert job is not None
        for i in range(1, n + 1):
            job.progress(i, total=n, message=f"step {i}")
        with pytest.raises(ValueError, match="finite"):
            job.progress(float("nan"))
        time.sleep(0.7)  # past the throttle: the next one is written at once
        job.progress(n, total=n, message="written at once")
        seen["mid"] = app.get_job(job.id).progress  # type: ignore[union-attr]
        job.progress(n + 1, total=n + 1, message="the last, kept")

    @app.task(name="t.asteps")
    async def asteps(n: int) -> None:
        job = current_job()
        assert job is not None
        for i in range(1, n + 1):
            job.progress(i, total=n)
            await asyncio.sleep(0)

    writes: list[str] = []
    store_write = app.backend.set_progress

    def counted(job_id: str, worker: str, data: bytes) -> bool:
        writes.append(job_id)
        return store_write(job_id, worker, data)

    app.backend.set_progress = counted  # type: ignore[method-assign,assignment]
    a, b = steps.enqueue(500), asteps.enqueue(300)
    drain(app)
    # 500 and 300 reports, throttled: the first at once, one past the pause, the last at the end.
    assert writes.count(a.id) == 3 and 1 <= writes.count(b.id) <= 3, writes
    assert seen["mid"]["message"] == "written at once"
    first = app.get_job(a.id)
    assert first is not None and first.state == "completed"
    assert first.progress is not None
    last = first.progress
    assert (last["done"], last["total"], last["message"]) == (501, 501, "the last, kept")
    assert abs(first.progress["at"] - time.time()) < 60
    second = app.get_job(b.id)
    assert second is not None and second.progress is not None
    assert (second.progress["done"], second.progress["total"]) == (300, 300)
