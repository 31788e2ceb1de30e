"""The running job on each store: current_job(), metadata, and middleware that wraps a run."""

from __future__ import annotations

import asyncio
import logging
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
