"""The admin calls behind the CLI and the dashboard."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.job import STATES, Failure

from .helpers import ids, record


def _dead(app: Conveyor, n: int, queue: str = "default") -> list[str]:
    records = [record(app, queue=queue) for _ in range(n)]
    app.backend.enqueue(records)
    got = app.backend.fetch([queue], n, "w", 30, time.time())
    app.backend.fail([Failure(r.id, "boom", None, None) for r in got], "w", time.time())
    return ids(records)


def test_stats_by_queue_and_state(app: Conveyor) -> None:
    now = time.time()
    app.backend.enqueue(
        [record(app), record(app), record(app, queue="mail", run_at=now + 100), record(app, queue="mail")]
    )
    _dead(app, 1)
    stats = app.stats()
    assert stats.queues["default"] == {"pending": 2, "dead": 1}
    assert stats.queues["mail"] == {"scheduled": 1, "pending": 1}
    assert stats.total("pending") == 3
    assert set(stats.oldest_pending) == {"default", "mail"}
    assert all(age >= 0 for age in stats.oldest_pending.values())
    assert stats.failed >= 1 and stats.history and stats.history[-1][2] >= 1


def test_jobs_filters_pages_and_search(app: Conveyor) -> None:
    @app.task(name="mail.send")
    def send(to: str) -> None: ...

    @app.task(name="t.other")
    def other() -> None: ...

    jobs = [send.enqueue(f"user{i}@example.com") for i in range(5)]
    other.using(queue="low").enqueue()
    next_first = ids(app.jobs(state="pending", queue="default"))  # type: ignore[arg-type]
    assert next_first == [j.id for j in jobs]  # claim order
    page = app.jobs(state="pending", queue="default", limit=2, offset=2)
    assert ids(page) == next_first[2:4]  # type: ignore[arg-type]
    assert [j.args for j in app.jobs(search="user3@")] == [["user3@example.com"]]
    assert {j.task for j in app.jobs(search="mail.send")} == {"mail.send"}
    assert len(app.jobs(queue="low")) == 1
    assert app.jobs(state="dead") == []


def test_retry_dead_job_resets_attempts(app: Conveyor) -> None:
    (job_id,) = _dead(app, 1)
    assert app.retry(job_id) == 1
    job = app.get_job(job_id)
    assert job is not None and job.state == "pending" and job.attempts == 0
    assert app.retry(job_id) == 0  # pending already: nothing to do


def test_retry_all_and_delete_all_dead(app: Conveyor) -> None:
    _dead(app, 3)
    _dead(app, 2, queue="mail")
    assert app.retry_all("dead", queue="mail") == 2
    assert app.stats().queues["mail"] == {"pending": 2}
    assert app.delete_all("dead") == 3
    assert app.stats().total("dead") == 0


def test_run_now_for_scheduled_and_retry_jobs(app: Conveyor) -> None:
    later = record(app, run_at=time.time() + 3600)
    app.backend.enqueue([later])
    assert app.retry(later.id) == 1
    assert app.get_job(later.id).state == "pending"  # type: ignore[union-attr]


def test_cancel_ends_waiting_jobs_and_asks_running_ones_to_stop(app: Conveyor) -> None:
    app.backend.enqueue([waiting := record(app), running := record(app, queue="q")])
    app.backend.fetch(["q"], 1, "w", 30, time.time())
    assert app.cancel(waiting.id, by="ops (Ada)") == 1
    gone = app.get_job(waiting.id)
    assert gone is not None and gone.state == "cancelled" and gone.last_error == "cancelled by ops (Ada)"
    assert app.backend.cancel_requests("w", ["q"]) == []
    # A running job is asked, once: it stays active until its worker stops it.
    assert app.cancel(running.id, by="ops (Ada)") == 1
    assert app.cancel(running.id) == 0
    asked = app.get_job(running.id)
    assert asked is not None and asked.state == "active"
    assert asked.cancel_requested == "cancelled by ops (Ada)"
    assert app.backend.cancel_requests("w", ["q"]) == [(running.id, "cancelled by ops (Ada)")]
    assert app.backend.cancel_requests("other-worker", ["q"]) == []
    assert app.backend.fetch(None, 10, "w", 30, time.time()) == []
    app.backend.fail([Failure(running.id, "cancelled by ops (Ada)", cancelled=True)], "w", time.time())
    stopped = app.get_job(running.id)
    assert stopped is not None and stopped.state == "cancelled" and stopped.cancel_requested is None
    assert stopped.last_error == "cancelled by ops (Ada)"
    assert app.backend.cancel_requests("w", ["q"]) == []
    assert app.stats().queues["q"] == {"cancelled": 1}
    assert app.retry(waiting.id) == 1  # a cancelled job can be brought back
    assert app.get_job(waiting.id).state == "pending"  # type: ignore[union-attr]


def test_a_lost_run_of_a_job_asked_to_stop_ends_cancelled(app: Conveyor) -> None:
    app.backend.enqueue([job := record(app, max_attempts=3)])
    app.backend.fetch(None, 1, "w", 0.5, time.time())
    assert app.cancel(job.id, by="ops") == 1
    assert app.backend.recover(time.time() + 5, 0.0) == 1  # the worker died meanwhile
    lost = app.get_job(job.id)
    assert lost is not None and lost.state == "cancelled" and lost.last_error == "cancelled by ops"
    assert app.backend.fetch(None, 1, "w", 30, time.time() + 10) == []  # never retried


def test_progress_is_kept_while_the_worker_holds_the_job(app: Conveyor) -> None:
    app.backend.enqueue([job := record(app, max_attempts=2)])
    app.backend.fetch(None, 1, "w", 30, time.time())
    assert app.backend.set_progress(job.id, "w", b'{"done": 3, "total": 10}')
    assert not app.backend.set_progress(job.id, "someone-else", b'{"done": 9}')
    assert not app.backend.set_progress("no-such-id", "w", b'{"done": 9}')
    got = app.get_job(job.id)
    assert got is not None and got.progress == {"done": 3, "total": 10}
    app.backend.complete([(job.id, None)], "w", time.time())
    done = app.get_job(job.id)
    assert done is not None and done.progress == {"done": 3, "total": 10}  # the last one stays
    assert not app.backend.set_progress(job.id, "w", b'{"done": 4}')  # finished: no more


def test_delete_any_job(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app)])
    assert app.delete(r.id) == 1
    assert app.get_job(r.id) is None
    assert app.delete(r.id) == 0
    assert app.backend.fetch(None, 10, "w", 30, time.time()) == []


def _count_store_calls(app: Conveyor, monkeypatch: pytest.MonkeyPatch) -> list[Sequence[str] | None]:
    """Every ``Backend.act`` call's ids, in order; the real store still does the work."""
    calls: list[Sequence[str] | None] = []
    act = app.backend.act

    def counted(action: str, ids: Sequence[str] | None, *args: Any, **kwargs: Any) -> int:
        calls.append(None if ids is None else list(ids))
        return act(action, ids, *args, **kwargs)

    monkeypatch.setattr(app.backend, "act", counted)
    return calls


def test_retry_cancel_delete_take_many_ids_in_one_store_call(
    app: Conveyor, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _dead(app, 3) + _dead(app, 2, queue="mail")
    app.backend.enqueue(
        [pending := record(app), waiting := record(app, queue="mail"), held := record(app, queue="q")]
    )
    app.backend.fetch(["q"], 1, "w", 30, time.time())
    calls = _count_store_calls(app, monkeypatch)

    # Jobs of two queues, one pending already, one unknown id, one id twice: each job
    # counts once, and only if the action changed it.
    assert app.retry(*dead, pending.id, "no-such-id", dead[0]) == 5
    assert len(calls) == 1
    assert {app.get_job(job_id).state for job_id in dead} == {"pending"}  # type: ignore[union-attr]
    assert app.stats().total("dead") == 0

    assert app.cancel(pending.id, waiting.id, held.id, dead[0], dead[0]) == 4  # held: asked to stop
    assert len(calls) == 2
    states = {job_id: app.get_job(job_id).state for job_id in (pending.id, waiting.id, held.id)}  # type: ignore[union-attr]
    assert states == {pending.id: "cancelled", waiting.id: "cancelled", held.id: "active"}

    assert app.delete(*dead[1:], held.id, "no-such-id") == 5
    assert len(calls) == 3
    assert [job_id for job_id in (*dead, held.id) if app.get_job(job_id) is not None] == [dead[0]]

    assert app.retry() == 0 and app.cancel() == 0 and app.delete() == 0
    assert len(calls) == 3  # no ids, no store call


def test_a_list_of_ids_is_refused_with_the_way_to_pass_it(app: Conveyor) -> None:
    (job_id,) = _dead(app, 1)
    with pytest.raises(TypeError, match=r"app\.retry\(\*ids\)"):
        app.retry([job_id])  # type: ignore[arg-type]
    assert app.get_job(job_id).state == "dead"  # type: ignore[union-attr]


@pytest.mark.parametrize("call", ["jobs", "retry_all", "delete_all"])
def test_an_unknown_state_is_an_error_naming_the_valid_ones(app: Conveyor, call: str) -> None:
    _dead(app, 1)
    with pytest.raises(ValueError, match="'pendng'") as info:
        getattr(app, call)(state="pendng")
    assert all(state in str(info.value) for state in STATES)
    assert app.stats().total("dead") == 1  # nothing touched


def test_retry_all_and_delete_all_in_chunks(app: Conveyor) -> None:
    _dead(app, 5)
    _dead(app, 3, queue="mail")
    assert app.retry_all("dead", limit=3) == 3  # any three dead jobs
    assert app.stats().total("dead") == 5
    left_in_mail = app.stats().queues["mail"].get("dead", 0)
    assert app.retry_all("dead", queue="mail", limit=10) == left_in_mail
    assert app.stats().queues["mail"] == {"pending": 3}
    assert app.retry_all("dead", limit=10) == 5 - left_in_mail  # fewer than asked: the caller stops
    assert app.stats().total("dead") == 0
    assert app.delete_all("pending", limit=4) == 4
    assert app.delete_all("pending", limit=4) == 4
    assert app.delete_all("pending", limit=4) == 0
