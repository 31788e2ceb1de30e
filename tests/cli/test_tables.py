"""Tables one can read and copy: whole ids at 80 columns, tab-separated lines in a pipe,
sections for one job, and --json on every command that reports something."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest

from conveyor import Conveyor
from conveyor.job import Failure

from .helpers import cli, on_terminal

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/shop/tasks.py", line 12, in charge\n'
    "    raise ValueError(amount)\n"
    "ValueError: 12\n"
)


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    return {"CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db"}


@pytest.fixture
def jobs(store: dict[str, str]) -> list[str]:
    """Three jobs with long arguments and task names; the oldest dead with a traceback."""
    app = Conveyor(store["CONVEYOR_URL"])
    task = app.task(name="shop.billing.charge_the_customer_card_and_send_receipt", retries=0)(_charge)
    ids = [task.enqueue(n, "x" * 300).id for n in range(3)]
    [record] = app.backend.fetch(None, 1, "w", 30, time.time())
    error = "ValueError: 12\nsecond line\tand a tab"
    app.backend.fail([Failure(record.id, error, TRACEBACK, None)], "w", time.time())
    app.close()
    return ids


def _charge(n: int, note: str) -> None: ...


def test_jobs_in_a_pipe_is_one_tab_separated_line_per_job(
    tmp_path: Path, store: dict[str, str], jobs: list[str]
) -> None:
    out = cli("jobs", cwd=tmp_path, env=store)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header == "id\tstate\ttask\tqueue\ttries\tenqueued\targs\tlast error"
    assert len(rows) == 3
    cells = [row.split("\t") for row in rows]
    assert all(len(c) == 8 for c in cells)
    assert sorted(c[0] for c in cells) == sorted(jobs)
    dead = next(c for c in cells if c[1] == "dead")
    assert dead[2] == "shop.billing.charge_the_customer_card_and_send_receipt"
    assert dead[7] == "ValueError: 12 second line and a tab"
    assert "\x1b[" not in out.stdout


def test_jobs_on_a_terminal_keeps_ids_whole_at_80_columns(
    tmp_path: Path, store: dict[str, str], jobs: list[str]
) -> None:
    code, out = on_terminal("jobs", cwd=tmp_path, env=store, columns=80)
    assert code == 0, out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    lines = [line for line in plain.splitlines() if not line.startswith("conveyor: store")]
    assert all(len(line) <= 80 for line in lines), plain
    for job_id in jobs:
        assert sum(job_id in line for line in lines) == 1, plain
    assert "…" in plain  # the long task name and arguments gave way


def test_show_prints_sections_and_the_traceback(
    tmp_path: Path, store: dict[str, str], jobs: list[str]
) -> None:
    dead = jobs[0]
    out = cli("show", dead, cwd=tmp_path, env=store)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    titles = [
        line for line in text.splitlines() if line in ("state", "timings", "arguments", "error", "traceback")
    ]
    assert titles == ["state", "timings", "arguments", "error", "traceback"]
    assert text.startswith(f"job {dead}\n")
    assert "  state     dead\n" in text and "  attempts  1 of 1\n" in text
    assert '  args      [0,"xxx' in text
    assert text.endswith(TRACEBACK)
    raw = orjson.loads(cli("show", dead, "--json", cwd=tmp_path, env=store).stdout)
    assert raw["traceback"] == TRACEBACK and raw["state"] == "dead" and raw["args"][0] == 0

    code, shown = on_terminal("show", dead, cwd=tmp_path, env=store)
    assert code == 0 and "traceback ───" in re.sub(r"\x1b\[[0-9;]*m", "", shown)


def test_info_in_a_pipe_and_as_json(tmp_path: Path, store: dict[str, str], jobs: list[str]) -> None:
    out = cli("info", cwd=tmp_path, env=store)
    lines = out.stdout.splitlines()
    assert lines[0] == "queue\twaiting\tscheduled\tpending\tactive\tretry\tcompleted\tdead\tcancelled\toldest"
    assert lines[1].startswith("default\t0\t0\t2\t0\t0\t0\t1\t0\t")
    data = orjson.loads(cli("info", "--json", cwd=tmp_path, env=store).stdout)
    assert data["queues"] == {"default": {"pending": 2, "dead": 1}}
    assert data["store"] == store["CONVEYOR_URL"] and data["workers"] == []


def test_every_reporting_command_speaks_json(tmp_path: Path, store: dict[str, str], jobs: list[str]) -> None:
    def run(*args: str) -> object:
        out = cli(*args, "--json", cwd=tmp_path, env=store)
        return orjson.loads(out.stdout)

    assert run("cancel", jobs[1]) == {"action": "cancel", "changed": 1, "of": 1}
    assert run("retry", "--all-dead") == {"action": "retry", "changed": 1, "state": "dead", "queue": None}
    assert run("delete", jobs[2]) == {"action": "delete", "changed": 1, "of": 1}
    assert run("pause", "default") == {"queue": "default", "paused": True}
    assert run("resume", "default") == {"queue": "default", "paused": False}
    enqueued = run("enqueue", "tests.worker.tasks_app:app", "work", "--args", "[1]")
    assert isinstance(enqueued, dict) and enqueued["task"] == "work" and enqueued["state"] == "pending"


def test_delete_all_of_a_state(tmp_path: Path, store: dict[str, str], jobs: list[str]) -> None:
    out = cli("delete", "--all", cwd=tmp_path, env=store)
    assert out.returncode == 2 and "--all takes --state" in out.stderr
    out = cli("delete", "--all", "--state", "dead", "--json", cwd=tmp_path, env=store)
    assert orjson.loads(out.stdout) == {"action": "delete", "changed": 1, "state": "dead", "queue": None}
    # On a terminal it asks first; no deletes nothing.
    code, said = on_terminal("delete", "--all", "--state", "pending", cwd=tmp_path, env=store, typed=b"n\n")
    assert code == 1 and "delete 2 pending jobs? [y/N]" in said and "Aborted" in said
    code, said = on_terminal("delete", "--all", "--state", "pending", cwd=tmp_path, env=store, typed=b"y\n")
    assert code == 0 and "delete: 2 pending jobs" in said
    queues = orjson.loads(cli("info", "--json", cwd=tmp_path, env=store).stdout)["queues"]
    assert all(not counts for counts in queues.values()), queues


def test_show_a_running_job_with_progress_meta_and_a_stop_request(
    tmp_path: Path, store: dict[str, str]
) -> None:
    app = Conveyor(store["CONVEYOR_URL"])
    task = app.task(name="reports.build")(_charge)
    job = task.using(meta={"tenant": "acme"}).enqueue(1, "x")
    app.backend.fetch(None, 1, "w", 30, time.time())
    app.backend.set_progress(job.id, "w", b'{"done": 40, "total": 100, "message": "resizing", "at": 0}')
    app.close()
    cancelled = cli("cancel", job.id, cwd=tmp_path, env=store)
    assert cancelled.returncode == 0 and "cancel: 1 of 1 job" in cancelled.stdout, cancelled.stderr
    text = cli("show", job.id, cwd=tmp_path, env=store).stdout
    assert "[############..................] 40 of 100 (40%) resizing" in text
    assert '  meta      {"tenant":"acme"}' in text
    assert re.search(r"stopping\n  cancelled by conveyor cancel \(\S+@\S+\)", text), text
    raw = orjson.loads(cli("show", job.id, "--json", cwd=tmp_path, env=store).stdout)
    assert raw["progress"]["done"] == 40 and raw["meta"] == {"tenant": "acme"}
    assert raw["cancel_requested"].startswith("cancelled by conveyor cancel (")


def test_retry_all_and_delete_all_show_a_bar_on_a_terminal(tmp_path: Path, store: dict[str, str]) -> None:
    app = Conveyor(store["CONVEYOR_URL"])
    task = app.task(name="t.flaky", retries=0)(_charge)
    app.enqueue_many([task.job(n, "x") for n in range(2500)])
    now = time.time()
    while claimed := app.backend.fetch(None, 500, "w", 30, now):
        app.backend.fail([Failure(r.id, "boom") for r in claimed], "w", now)
    app.close()
    code, out = on_terminal("retry", "--all-dead", cwd=tmp_path, env=store)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert code == 0 and "retry: 2500 dead jobs back to pending" in plain, plain
    # One store call a thousand jobs, the bar redrawn after each.
    assert all(f" {n}/2500 " in plain for n in (1000, 2000, 2500)), plain
    code, out = on_terminal("delete", "--all", "--state", "pending", "--yes", cwd=tmp_path, env=store)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert code == 0 and "deleting pending jobs" in plain, plain
    assert orjson.loads(cli("info", "--json", cwd=tmp_path, env=store).stdout)["queues"]["default"] == {}


def test_show_lists_a_jobs_dependencies_and_dependents(tmp_path: Path, store: dict[str, str]) -> None:
    app = Conveyor(store["CONVEYOR_URL"])
    task = app.task(name="shop.step")(_charge)
    first, second, third = app.chain(task.job(1, "a"), task.job(2, "b"), task.job(3, "c"))
    app.close()
    out = cli("show", second.id, cwd=tmp_path, env=store)
    assert out.returncode == 0, out.stderr
    assert f"waits for {first.id}" in out.stdout and "shop.step, pending" in out.stdout
    assert f"needed by {third.id}" in out.stdout and "shop.step, waiting" in out.stdout
    shown = orjson.loads(cli("show", second.id, "--json", cwd=tmp_path, env=store).stdout)
    assert shown["state"] == "waiting"
    assert shown["dependencies"] == [first.id] and shown["dependents"] == [third.id]
    listed = cli("jobs", "--state", "waiting", cwd=tmp_path, env=store).stdout.splitlines()[1:]
    assert sorted(line.split("\t")[0] for line in listed) == sorted([second.id, third.id])
