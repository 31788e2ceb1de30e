"""``conveyor periodic``: the schedules of an app, with their next run and last job."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from conveyor import Conveyor
from conveyor.periodic import Scheduler

from .helpers import cli, on_terminal

TARGET = "tests.cli.periodic_app:app"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store where the schedules ran once: the two sub-hourly ones have a last job."""
    from tests.cli.periodic_app import app

    store = f"sqlite:///{tmp_path}/jobs.db"
    app.close()
    app.url = store
    scheduler = Scheduler(app)
    # A Sunday noon (UTC), whatever the time the suite runs: the weekday 09:00 New York
    # schedule must not have come due in the hour before.
    sunday_noon = datetime(2026, 11, 22, 12, tzinfo=UTC).timestamp()
    scheduler.run_due(sunday_noon - 3600)
    scheduler.run_due(sunday_noon)
    app.close()
    return store


def test_periodic_lists_schedules_in_a_pipe(url: str, tmp_path: Path) -> None:
    done = cli("periodic", TARGET, cwd=tmp_path, env={"CONVEYOR_URL": url})
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split("\t") == [
        "name",
        "schedule",
        "zone",
        "queue",
        "next run",
        "last job",
        "state",
        "enqueued",
    ]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert list(rows) == ["daily-report", "ping", "reports.cleanup"]
    assert rows["daily-report"][1:4] == ["0 9 * * MON-FRI", "America/New_York", "mail"]
    assert rows["daily-report"][4].endswith(")") and " 09:00:00 E" in rows["daily-report"][4]
    assert rows["daily-report"][5:7] == ["-", "-"]  # never ran
    assert rows["ping"][1] == "every 30s" and rows["ping"][6] == "pending"
    assert rows["reports.cleanup"][2] == "Europe/Berlin" and len(rows["reports.cleanup"][5]) == 36


def test_periodic_json_and_a_bare_store(url: str, tmp_path: Path) -> None:
    done = cli("periodic", TARGET, "--json", cwd=tmp_path, env={"CONVEYOR_URL": url})
    found = [orjson.loads(line) for line in done.stdout.splitlines()]
    ping = next(s for s in found if s["name"] == "ping")
    assert ping["task"] == "reports.send" and ping["defined"] and ping["last_job_state"] == "pending"
    assert ping["last_tick"].endswith(("00+00:00", "30+00:00"))
    # Without the app, the store's record only: no schedule text, marked as not in the code.
    bare = cli("periodic", "--url", url, "--json", cwd=tmp_path)
    assert bare.returncode == 0, bare.stderr
    names = {s["name"]: s for s in map(orjson.loads, bare.stdout.splitlines())}
    assert set(names) == {"ping", "reports.cleanup"}
    assert names["ping"]["schedule"] is None and not names["ping"]["defined"]
    assert names["ping"]["last_job"] == ping["last_job"]


def test_periodic_table_on_a_terminal(url: str, tmp_path: Path) -> None:
    code, out = on_terminal("periodic", TARGET, cwd=tmp_path, env={"CONVEYOR_URL": url}, columns=160)
    assert code == 0, out
    assert "3 schedules" in out and "*/5 * * * *" in out and "every 30s" in out and "pending" in out


def test_a_schedule_of_a_removed_task_shows_as_not_in_the_code(url: str, tmp_path: Path) -> None:
    app = Conveyor(url)

    @app.periodic(every=60, name="ping")
    @app.task(name="other")
    def other() -> None: ...

    (status,) = [s for s in app.schedule_status() if s.name == "reports.cleanup"]
    assert not status.defined and status.schedule is None and status.last_job_state == "pending"
    app.close()
