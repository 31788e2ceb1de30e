"""``conveyor enqueue TASK --from-file jobs.jsonl``: a backfill in chunks, a progress bar on
a terminal, and a bad line that says where it is and what was stored before it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from conveyor import Conveyor

from .helpers import cli, on_terminal

TARGET = "tests.worker.tasks_app:app"


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    return {"CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db"}


def _jobs(url: str) -> list[tuple[list[object], dict[str, object]]]:
    app = Conveyor(url)
    found = [(job.args, job.kwargs) for job in app.jobs(limit=10_000)]
    app.close()
    return sorted(found, key=lambda x: str(x))


def test_backfill_in_chunks(tmp_path: Path, store: dict[str, str]) -> None:
    lines = [orjson.dumps([n]) for n in range(2500)]
    lines[7] = orjson.dumps({"args": [7], "kwargs": {"seconds": 0.5}})
    lines.insert(100, b"")  # blank lines are skipped
    (tmp_path / "jobs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = cli(
        "enqueue", TARGET, "work", "--from-file", "jobs.jsonl", "--chunk", "1000", cwd=tmp_path, env=store
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "enqueued 2500 jobs of work\n"
    jobs = _jobs(store["CONVEYOR_URL"])
    assert len(jobs) == 2500 and ([7], {"seconds": 0.5}) in jobs
    again = cli(
        "enqueue", TARGET, "work", "--from-file", "-", "--json", "--queue", "bulk", cwd=tmp_path, env=store
    )
    assert again.returncode == 0  # stdin is empty here: nothing to do
    assert orjson.loads(again.stdout) == {"enqueued": 0, "task": "work"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"[1,", "line 1502: not JSON"),
        (b'{"arg": [1]}', 'line 1502: expected a list of arguments or {"args": [...], "kwargs": {...}}'),
        (b"[1, 2, 3, 4]", "line 1502: task 'work' takes (n: 'int', seconds: 'float' = 0.01)"),
    ],
)
def test_a_bad_line_says_where_and_what_was_stored(
    tmp_path: Path, store: dict[str, str], line: bytes, problem: str
) -> None:
    lines = [orjson.dumps([n]) for n in range(1501)] + [line] + [b"[0]"]
    (tmp_path / "jobs.jsonl").write_bytes(b"\n".join(lines))
    out = cli("enqueue", TARGET, "work", "--from-file", "jobs.jsonl", cwd=tmp_path, env=store)
    assert out.returncode == 1
    assert problem in out.stderr and "; 1000 jobs before it were enqueued" in out.stderr
    assert len(_jobs(store["CONVEYOR_URL"])) == 1000


def test_progress_bar_on_a_terminal(tmp_path: Path, store: dict[str, str]) -> None:
    (tmp_path / "jobs.jsonl").write_bytes(b"\n".join(orjson.dumps([n]) for n in range(3000)))
    code, out = on_terminal("enqueue", TARGET, "work", "--from-file", "jobs.jsonl", cwd=tmp_path, env=store)
    assert code == 0, out
    assert "enqueue" in out and "3,000 jobs" in out and "━" in out
    assert "enqueued 3000 jobs of work" in out


def test_burst_worker_shows_progress_on_a_terminal(tmp_path: Path, store: dict[str, str]) -> None:
    (tmp_path / "jobs.jsonl").write_bytes(b"\n".join(orjson.dumps([n, 0.001]) for n in range(300)))
    assert (
        cli("enqueue", TARGET, "work", "--from-file", "jobs.jsonl", cwd=tmp_path, env=store).returncode == 0
    )
    code, out = on_terminal("worker", TARGET, "--burst", "--concurrency", "4", cwd=tmp_path, env=store)
    assert code == 0, out
    assert "300/300" in out and "━" in out and "jobs/s" in out
    # The log lines are printed above the bar, each whole.
    assert out.count(" conveyor.job: work ") == 300 and "stopped after 300 jobs" in out
    assert len(_jobs(store["CONVEYOR_URL"])) == 300
    piped = cli("worker", TARGET, "--burst", cwd=tmp_path, env=store)
    assert "━" not in piped.stderr + piped.stdout
