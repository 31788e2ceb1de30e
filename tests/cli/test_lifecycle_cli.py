"""``conveyor show`` tells a job's snoozes, unique key and expiry (issue 15)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from conveyor import Conveyor
from conveyor.job import Failure

from .helpers import cli


def _work(n: int) -> None: ...


def test_show_a_snoozed_unique_job_with_an_expiry(tmp_path: Path) -> None:
    env = {"CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db"}
    app = Conveyor(env["CONVEYOR_URL"])
    task = app.task(name="t.work")(_work)
    job = task.using(unique_key="order-7", unique_for=600, expires=3600).enqueue(7)
    for _ in range(2):
        (claimed,) = app.backend.fetch(None, 1, "w", 30, time.time())
        app.backend.fail([Failure(claimed.id, "snoozed", None, time.time(), snoozed=True)], "w", time.time())
    app.close()
    text = cli("show", job.id, cwd=tmp_path, env=env).stdout
    assert "  snoozed     2 times\n" in text and "  unique key  order-7\n" in text
    assert "  expires " in text and "  attempts    0 of 4\n" in text
    raw = orjson.loads(cli("show", job.id, "--json", cwd=tmp_path, env=env).stdout)
    assert raw["snoozes"] == 2 and raw["unique_key"] == "order-7" and raw["expires_at"].startswith("20")
