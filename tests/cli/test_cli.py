"""The conveyor command, run as a user would run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from tests.harness import run_conveyor as conveyor


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/jobs.db"


def test_enqueue_run_inspect_retry(url: str) -> None:
    target = "tests.worker.tasks_app:app"
    ok = conveyor("enqueue", target, "work", "--args", "[7, 0]", url=url)
    assert ok.returncode == 0, ok.stderr
    job_id = ok.stdout.strip()
    ran = conveyor("worker", target, "--burst", "--concurrency", "2", url=url)
    assert ran.returncode == 0, ran.stderr

    info = conveyor("info", url=url)
    assert info.returncode == 0 and "default" in info.stdout, info.stderr
    listed = conveyor("jobs", "--state", "completed", "--json", url=url)
    rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["result"]) for r in rows] == [(job_id, 7)]
    table = conveyor("jobs", url=url)
    assert job_id in table.stdout and "completed" in table.stdout
    shown = conveyor("show", job_id, "--json", url=url)
    assert orjson.loads(shown.stdout)["state"] == "completed"


def test_retry_all_dead_and_single_actions(url: str, tmp_path: Path) -> None:
    from conveyor import Conveyor
    from conveyor.job import Failure

    app = Conveyor(url)

    @app.task(name="x")
    def x() -> None: ...

    jobs = [x.enqueue() for _ in range(3)]
    got = app.backend.fetch(None, 3, "w", 30, __import__("time").time())
    app.backend.fail([Failure(r.id, "boom", None, None) for r in got], "w", 0)
    out = conveyor("retry", "--all-dead", url=url)
    assert out.returncode == 0 and "3 dead jobs" in out.stdout
    out = conveyor("cancel", jobs[0].id, url=url)
    assert out.returncode == 0 and "1 of 1" in out.stdout
    out = conveyor("cancel", jobs[0].id, url=url)
    assert out.returncode == 1 and "0 of 1" in out.stdout
    assert conveyor("pause", "default", url=url).returncode == 0
    assert app.stats().paused == {"default"}
    assert conveyor("resume", "default", url=url).returncode == 0
    assert conveyor("delete", jobs[1].id, url=url).returncode == 0
    assert app.get_job(jobs[1].id) is None
    app.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("worker", "nosuchmodule:app"), "cannot import 'nosuchmodule'"),
        (("worker", "tests.worker.tasks_app:nope"), "has no attribute 'nope'"),
        (("worker", "tests.worker.tasks_app"), "is not module:attribute"),
        (("worker", "tests.worker.tasks_app:RUN_LOG"), "not a conveyor.Conveyor app"),
        (("enqueue", "tests.worker.tasks_app:app", "nope"), "no task 'nope'"),
        (("enqueue", "tests.worker.tasks_app:app", "work", "--args", "[1,"), "not JSON"),
        (
            ("enqueue", "tests.worker.tasks_app:app", "work", "--args", "[1, 2, 3, 4]"),
            "too many positional arguments",
        ),
        (("info", "--url", "mysql://x"), "unknown store URL scheme"),
        (("show", "nope"), "no job nope"),
    ],
)
def test_user_errors_are_one_line_without_traceback(url: str, args: tuple[str, ...], message: str) -> None:
    out = conveyor(*args, url=url)
    assert out.returncode == 2 or out.returncode == 1, out
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], out.stderr


def test_processes_burst(url: str, tmp_path: Path) -> None:
    from tests.worker.tasks_app import app, work

    app.close()
    app.url = url
    app.enqueue_many([work.job(i, 0) for i in range(200)])
    out = conveyor("worker", "tests.worker.tasks_app:app", "--processes", "2", "--burst", url=url)
    assert out.returncode == 0, out.stderr
    assert app.stats().queues["default"] == {"completed": 200}
    app.close()


def test_demo_runs_every_path(tmp_path: Path) -> None:
    out = conveyor(
        "demo", "--jobs", "60", "--db", str(tmp_path / "demo.db"), url="", cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "completed" in out.stdout and "dead" in out.stdout
    # The commands it suggests run as printed, from where the demo ran, venv active or not.
    suggested = out.stdout.split("Look around:\n", 1)[1].strip().splitlines()
    assert len(suggested) == 3
    outputs = []
    for command in suggested:  # info, jobs --state dead, retry --all-dead: in this order
        ran = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, (command, ran.stderr)
        outputs.append(ran.stdout)
    assert "\tdead\t" in outputs[1] and "back to pending" in outputs[2]
    log = (tmp_path / "demo.log").read_text()
    assert " INFO conveyor.job: " in log and " ERROR conveyor.job: " in log


def test_help_answers_questions() -> None:
    out = conveyor("worker", "--help", url="")
    assert "--queues" in out.stdout and "critical:6" in out.stdout and "--processes" in out.stdout
