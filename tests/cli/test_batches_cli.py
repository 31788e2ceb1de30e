"""``conveyor show`` names a job's batch; ``conveyor batch`` shows one, its jobs a page at a time."""

from __future__ import annotations

from pathlib import Path

import orjson

from conveyor import Conveyor

from .helpers import cli


def _work(n: int) -> int:
    return n


def test_show_and_batch(tmp_path: Path) -> None:
    env = {"CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db"}
    app = Conveyor(env["CONVEYOR_URL"])
    task = app.task(name="t.work")(_work)
    batch = app.batch([task.job(i) for i in range(3)], on_complete=task.job(99))
    assert app.cancel(batch.jobs[0].id) == 1
    app.close()
    text = cli("show", batch.jobs[1].id, cwd=tmp_path, env=env).stdout
    assert f"{batch.id}\n" in text and "\nbatch\n" in text
    assert "1 of 3 ended (33%)" in text and "cancelled 1" in text and "(not fired)" in text
    text = cli("batch", batch.id, "--jobs", "2", cwd=tmp_path, env=env).stdout
    assert batch.jobs[0].id in text and batch.jobs[1].id in text and batch.jobs[2].id not in text
    assert f"--after {batch.jobs[1].id}" in text
    raw = orjson.loads(
        cli("batch", batch.id, "--after", batch.jobs[1].id, "--json", cwd=tmp_path, env=env).stdout
    )
    assert [job["id"] for job in raw["jobs"]] == [batch.jobs[2].id]
    assert raw["status"]["cancelled"] == 1 and raw["callbacks"]["complete"]["fired"] is False
    assert cli("batch", "nope", cwd=tmp_path, env=env).returncode == 1
