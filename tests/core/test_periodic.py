"""Registering periodic schedules: both forms, and every bad input refused at registration,
naming the value. Tick arithmetic of ``every=`` and cron, without a store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor import ConfigurationError, Conveyor, PayloadTooLarge, Task
from conveyor.periodic import Cron, Every


@pytest.fixture
def app(tmp_path: Path) -> Conveyor:
    return Conveyor(f"sqlite:///{tmp_path}/jobs.db")


def test_decorator_on_a_task_and_on_a_plain_function(app: Conveyor) -> None:
    @app.periodic(cron="*/5 * * * *", tz="Europe/Berlin")
    @app.task(queue="maintenance")
    def cleanup() -> None: ...

    @app.periodic(every=timedelta(minutes=2))
    def plain() -> None: ...

    assert isinstance(cleanup, Task) and isinstance(plain, Task)
    assert plain.name in app.tasks  # registered as a task with the default options
    first = app.schedules[cleanup.name]
    assert (first.describe(), first.tz, first.queue) == ("*/5 * * * *", "Europe/Berlin", "maintenance")
    assert app.schedules[plain.name].describe() == "every 2m"


def test_call_form_with_arguments_name_and_queue(app: Conveyor) -> None:
    @app.task
    def report(kind: str, *, copies: int = 1) -> None: ...

    schedule = app.periodic(
        report,
        cron="0 9 * * MON-FRI",
        tz="America/New_York",
        args=("daily",),
        kwargs={"copies": 2},
        name="daily-report",
        queue="mail",
    )
    assert app.schedules == {"daily-report": schedule}
    spec = schedule.spec(1_800_000_000.0)
    assert spec.args == ("daily",) and spec.kwargs == {"copies": 2}
    assert spec.options.queue == "mail" and spec.options.meta == {
        "periodic": "daily-report",
        "tick": 1_800_000_000.0,
    }
    assert report.options.queue == "default"  # the task itself is unchanged
    app.periodic(report, every=30, args=("ping",), name="ping")
    assert app.schedules["ping"].describe() == "every 30s"


def _task(app: Conveyor) -> Task[Any, Any]:
    @app.task(name="t.report")
    def report(kind: str) -> None: ...

    return report


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "every monday"}, "invalid cron expression 'every monday'"),
        ({"cron": "0 0 30 2 *"}, "'0 0 30 2 *'"),
        ({"cron": "0 9 * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 9 * * *", "tz": "CET+1"}, "unknown time zone 'CET+1'"),
        ({"cron": "0 9 * * *", "every": 60}, "exactly one of them"),
        ({}, "exactly one of them"),
        ({"every": 0.5}, "under 1 second"),
        ({"every": "5m"}, "every= takes seconds or a timedelta, not '5m'"),
        ({"every": float("inf")}, "every= takes seconds"),
        ({"every": 60, "name": "has space"}, "schedule name 'has space'"),
        ({"every": 60, "queue": "a:b"}, "queue name 'a:b'"),
        ({"every": 60, "args": "daily"}, "args= takes a tuple or list"),
    ],
)
def test_bad_definitions_are_refused_naming_the_value(
    app: Conveyor, options: dict[str, Any], message: str
) -> None:
    options.setdefault("args", ("daily",))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        app.periodic(_task(app), **options)
    assert app.schedules == {}


def test_arguments_that_are_not_json_or_do_not_fit_fail_at_registration(app: Conveyor) -> None:
    report = _task(app)
    with pytest.raises(
        TypeError, match=r"argument 0 of periodic task 't.report' \(schedule 'x'\) is a datetime"
    ):
        app.periodic(report, every=60, args=(datetime.now(UTC),), name="x")
    with pytest.raises(TypeError, match=r"argument 'when' of periodic task 't.report'.* set"):
        app.periodic(report, every=60, kwargs={"when": {1, 2}})
    with pytest.raises(TypeError, match=r"task 't\.report' takes"):
        app.periodic(report, every=60)  # kind is missing
    assert app.schedules == {}


def test_a_job_too_large_for_the_store_fails_at_registration(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/jobs.db", max_payload=1000)
    with pytest.raises(PayloadTooLarge, match="encodes to"):
        app.periodic(_task(app), every=60, args=("x" * 2000,))
    assert app.schedules == {}


def test_two_schedules_with_one_name_are_an_error(app: Conveyor) -> None:
    report = _task(app)
    app.periodic(report, every=60, args=("a",))
    with pytest.raises(ConfigurationError, match=r"a schedule named 't\.report' is already registered"):
        app.periodic(report, cron="0 * * * *", args=("b",))
    app.periodic(report, cron="0 * * * *", args=("b",), name="hourly")
    assert set(app.schedules) == {"t.report", "hourly"}


def test_a_task_of_another_app_is_refused(app: Conveyor, tmp_path: Path) -> None:
    other = Conveyor(f"sqlite:///{tmp_path}/other.db")
    with pytest.raises(ConfigurationError, match="registered on another app"):
        app.periodic(_task(other), every=60, args=("a",))


def test_every_ticks_at_multiples_of_the_interval() -> None:
    every = Every(30.0)
    assert every.latest_at_or_before(1_800_000_015.0) == 1_800_000_000.0
    assert every.latest_at_or_before(1_800_000_030.0) == 1_800_000_030.0
    assert every.next_after(1_800_000_030.0) == 1_800_000_060.0
    assert Every(86400.0).describe() == "every 1d" and Every(90.0).describe() == "every 90s"


def test_cron_ticks_in_its_zone() -> None:
    from zoneinfo import ZoneInfo

    cron = Cron("0 9 * * MON-FRI", ZoneInfo("America/New_York"))
    friday_noon_utc = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
    nine_est = datetime(2026, 11, 27, 14, 0, tzinfo=UTC).timestamp()
    assert cron.next_after(friday_noon_utc) == nine_est
    assert cron.latest_at_or_before(nine_est) == nine_est  # at or before: inclusive
    monday = datetime(2026, 11, 30, 14, 0, tzinfo=UTC).timestamp()
    assert cron.next_after(nine_est) == monday  # strictly after; the weekend skipped
    assert cron.latest_at_or_before(monday - 1) == nine_est
