"""A partitioned queue (``app.queue(name, partitions=n)``): on Redis its jobs spread over n
hash slots (on a Cluster, over the masters); on every store it stays one queue to everyone
who uses it, and every job runs once."""

from __future__ import annotations

import time

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError

from .conftest import AppFactory
from .helpers import ids, record


def test_a_partitioned_queue_is_one_queue_to_its_users(app: Conveyor) -> None:
    in_force = app.queue("hot", partitions=4)
    assert in_force in (1, 4)  # 1 where the store keeps one queue whatever (SQL)
    assert app.queue("hot", partitions=2) == in_force  # never fewer
    now = time.time()
    jobs = [record(app, queue="hot", run_at=now - 100 + i) for i in range(40)]
    app.backend.enqueue(jobs[:39])
    app.backend.enqueue(jobs[39:])  # alone: the single-job path deals it out too
    assert app.stats().queues == {"hot": {"pending": 40}}
    assert {r.id for r in app.jobs(state="pending", queue="hot", limit=100)} == set(ids(jobs))
    assert app.get_job(jobs[7].id).queue == "hot"  # type: ignore[union-attr]

    app.pause("hot")
    assert app.backend.fetch(["hot"], 100, "w", 30, now) == []
    assert app.backend.fetch(None, 100, "w", 30, now) == []
    assert "hot" in app.stats().paused
    app.resume("hot")

    first = app.backend.fetch(["hot"], 25, "w", 30, now)
    rest = app.backend.fetch(None, 100, "w", 30, now)
    assert len(first) == 25 and len(rest) == 15
    assert sorted(ids(first + rest)) == sorted(ids(jobs))
    assert {r.queue for r in first + rest} == {"hot"}
    app.backend.complete([(r.id, b"1") for r in first + rest], "w", now)
    assert app.stats().queues["hot"] == {"completed": 40}
    assert app.get_job(jobs[0].id).state == "completed"  # type: ignore[union-attr]


def test_partitions_are_seen_by_every_process_of_the_namespace(make_app: AppFactory) -> None:
    producer, worker = make_app(), make_app()
    counted = producer.queue("mail", partitions=3)
    now = time.time()
    jobs = [record(producer, queue="mail", run_at=now - 10) for _ in range(30)]
    producer.backend.enqueue(jobs)
    got = worker.backend.fetch(["mail"], 100, "w", 30, now)
    assert sorted(ids(got)) == sorted(ids(jobs)), f"{counted} partitions"
    worker.backend.complete([(r.id, None) for r in got], "w", now)
    assert producer.stats().total("completed") == 30


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_a_partition_count_that_is_no_whole_number_is_refused(app: Conveyor, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="partitions"):
        app.queue("mail", partitions=bad)  # type: ignore[arg-type]


def test_a_partitioned_queue_takes_a_queue_name(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="queue name"):
        app.queue("mail:1", partitions=2)
