"""The admin calls behind the CLI and the dashboard."""

from __future__ import annotations

import time

from conveyor import Conveyor
from conveyor.job import Failure

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
    newest_first = ids(app.jobs(state="pending", queue="default"))  # type: ignore[arg-type]
    assert newest_first == [j.id for j in reversed(jobs)]
    page = app.jobs(state="pending", queue="default", limit=2, offset=2)
    assert ids(page) == newest_first[2:4]  # type: ignore[arg-type]
    assert [j.args for j in app.jobs(search="user3@")] == [["user3@example.com"]]
    assert {j.task for j in app.jobs(search="mail.send")} == {"mail.send"}
    assert len(app.jobs(queue="low")) == 1
    assert app.jobs(state="dead") == []


def test_retry_dead_job_resets_attempts(app: Conveyor) -> None:
    (job_id,) = _dead(app, 1)
    assert app.retry(job_id)
    job = app.get_job(job_id)
    assert job is not None and job.state == "pending" and job.attempts == 0
    assert not app.retry(job_id)  # pending already: nothing to do


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
    assert app.retry(later.id)
    assert app.get_job(later.id).state == "pending"  # type: ignore[union-attr]


def test_cancel_only_waiting_jobs(app: Conveyor) -> None:
    app.backend.enqueue([waiting := record(app), running := record(app, queue="q")])
    app.backend.fetch(["q"], 1, "w", 30, time.time())
    assert app.cancel(waiting.id)
    assert app.get_job(waiting.id).state == "cancelled"  # type: ignore[union-attr]
    assert not app.cancel(running.id)
    assert app.backend.fetch(None, 10, "w", 30, time.time()) == []
    assert app.retry(waiting.id)  # a cancelled job can be brought back
    assert app.get_job(waiting.id).state == "pending"  # type: ignore[union-attr]


def test_delete_any_job(app: Conveyor) -> None:
    app.backend.enqueue([r := record(app)])
    assert app.delete(r.id)
    assert app.get_job(r.id) is None
    assert not app.delete(r.id)
    assert app.backend.fetch(None, 10, "w", 30, time.time()) == []
