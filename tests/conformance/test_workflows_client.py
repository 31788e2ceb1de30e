"""Workflows from async code (``abatch``, ``achain``, ``Batch.aadd`` / ``astatus`` /
``await_done``) and in tests (``with app.inline():``, ``conveyor.testing.drain``) on every
store: a batch's callbacks and a chain's steps run as a worker would run them."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from conveyor import Batch, BatchClosed, Conveyor, Fail, current_job
from conveyor.testing import drain


def _tasks(app: Conveyor, seen: list[Any]) -> dict[str, Any]:
    lock = threading.Lock()

    @app.task(name="w.square", retries=0)
    def square(x: int) -> int:
        if x < 0:
            raise Fail(f"negative {x}")
        return x * x

    @app.task(name="w.note", queue="notes", retries=0)
    def note(kind: str) -> None:
        cur = current_job()
        assert cur is not None
        total: Any = None
        if cur.batch_id is not None:
            batch = app.get_batch(cur.batch_id)
            assert batch is not None
            total = sum(v for _, v in batch.results() if isinstance(v, int))
        else:
            total = [d.return_value for d in cur.dependencies()]
        with lock:
            seen.append((kind, total))

    return {"square": square, "note": note}


def test_abatch_and_achain_keep_the_loop_running(app: Conveyor) -> None:
    seen: list[Any] = []
    t = _tasks(app, seen)

    async def main() -> tuple[Batch, list[Any]]:
        ticks = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        batch = await app.abatch(
            (t["square"].job(i) for i in range(2000)),
            on_success=t["note"].job("success"),
            on_complete=t["note"].job("complete"),
        )
        assert len(batch.jobs) == 2000 and (await batch.astatus())["unfinished"] == 2000
        added = await batch.aadd(t["square"].job(3000))
        assert [j.batch_id for j in added] == [batch.id]
        chain = await app.achain(t["square"].job(2), t["square"].job(3), t["note"].job("chain"))
        assert [j.state for j in chain] == ["pending", "waiting", "waiting"]
        found = await app.aget_batch(batch.id)
        assert found is not None and found.status()["total"] == 2001
        with pytest.raises(TimeoutError):
            await batch.await_done(timeout=0.05)
        done.set()
        await ticker
        assert ticks > 10  # the loop ran while the store worked
        return batch, chain

    batch, _ = asyncio.run(main())
    drain(app)
    status = asyncio.run(batch.await_done(timeout=10))
    assert status == {"total": 2001, "completed": 2001, "dead": 0, "cancelled": 0, "unfinished": 0}
    expected = sum(i * i for i in range(2000)) + 3000 * 3000
    assert sorted(seen) == [("chain", [9]), ("complete", expected), ("success", expected)]


def test_inline_runs_a_batchs_callbacks_and_a_chains_steps(app: Conveyor) -> None:
    seen: list[Any] = []
    t = _tasks(app, seen)
    with app.inline():
        batch = app.batch(
            [t["square"].job(i) for i in (1, 2, -3)],
            on_success=t["note"].job("success"),
            on_complete=t["note"].job("complete"),
            on_death=t["note"].job("death"),
        )
        # Every job ended and the callbacks that fired ran before batch() returned.
        assert sorted(seen) == [("complete", 5), ("death", 5)]
        assert batch.status()["unfinished"] == 0
        grown = app.batch([t["square"].job(4)], on_success=t["note"].job("grown"))
        assert ("grown", 16) in seen
        with pytest.raises(BatchClosed):
            grown.add(t["square"].job(5))
        jobs = app.chain(t["square"].job(2), t["square"].job(3), t["note"].job("chain"))
        assert [app.get_job(j.id).state for j in jobs] == ["completed"] * 3  # type: ignore[union-attr]
        assert ("chain", [9]) in seen
        # A batch has ended when batch() returns: it takes no nested batch any more.
        with pytest.raises(BatchClosed):
            app.batch([t["square"].job(6)], on_complete=t["note"].job("inner"), parent=grown)


def test_drain_runs_callbacks_and_chain_steps(app: Conveyor) -> None:
    seen: list[Any] = []
    t = _tasks(app, seen)
    app.batch([t["square"].job(i) for i in range(5)], on_complete=t["note"].job("complete"))
    app.chain(t["square"].job(7), t["note"].job("chain"))
    drained = drain(app)  # once: the callbacks and the steps released on the way run too
    assert sorted(seen) == [("chain", [49]), ("complete", 30)]
    assert len(drained.completed) == 5 + 1 + 2
