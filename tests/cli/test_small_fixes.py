"""Small things an operator trips over in the first hour: a phantom paused queue, "1 jobs",
"signal 2", help cut mid-sentence, options that ended in a raw exception."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import Conveyor

from .helpers import ROOT, cli


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    return {"CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db"}


def test_pausing_a_mistyped_queue_is_refused(tmp_path: Path, store: dict[str, str]) -> None:
    app = Conveyor(store["CONVEYOR_URL"])
    app.task(name="t", queue="mail")(lambda: None).enqueue()
    out = cli("pause", "mial", cwd=tmp_path, env=store)
    assert out.returncode == 1
    assert "Error: no queue 'mial' in this store (queues: mail); --force pauses it anyway" in out.stderr
    assert app.stats().paused == frozenset()
    assert cli("pause", "mail", cwd=tmp_path, env=store).returncode == 0
    assert cli("pause", "later", "--force", cwd=tmp_path, env=store).returncode == 0
    assert app.stats().paused == {"mail", "later"}
    out = cli("pause", "a}b", "--force", cwd=tmp_path, env=store)
    assert out.returncode == 1 and "queue name 'a}b' holds '}'" in out.stderr
    app.close()


def test_counts_are_said_in_good_english(tmp_path: Path, store: dict[str, str]) -> None:
    app = Conveyor(store["CONVEYOR_URL"])
    job = app.task(name="t")(lambda: None).enqueue()
    out = cli("cancel", job.id, cwd=tmp_path, env=store)
    assert out.stdout == "cancel: 1 of 1 job\n"
    out = cli("retry", "--all-dead", cwd=tmp_path, env=store)
    assert out.stdout == "retry: 0 dead jobs back to pending\n"
    app.close()


def test_help_summaries_are_whole_sentences_at_80_columns(tmp_path: Path) -> None:
    out = cli("--help", cwd=tmp_path)
    commands = out.stdout.split("Commands:\n", 1)[1].splitlines()
    assert len(commands) >= 12
    for line in commands:
        assert len(line) <= 80 and line.endswith("."), line
        assert not line.endswith("..."), line


def test_sigint_is_named(tmp_path: Path, store: dict[str, str]) -> None:
    env = {**os.environ, **store, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "tests.worker.tasks_app:app"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "... serving ...": the signal handler is installed
    assert "serving" in first, first
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(30) == 0
    assert "INFO conveyor.worker: SIGINT: finishing running jobs" in err, err
    assert "stopped after 0 jobs" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--priority", str(2**70)), "priority must be an int from -2147483648 to 2147483647"),
        (("--delay", "nan"), "delay must be seconds from 0 to 3155760000 (a century), not nan"),
        (("--delay", "inf"), "not inf"),
        (("--queue", "a b"), "queue name 'a b' holds ' '"),
    ],
)
def test_enqueue_options_out_of_bounds_are_one_line(
    tmp_path: Path, store: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    out = cli(
        "enqueue", "tests.worker.tasks_app:app", "work", "--args", "[1]", *args, cwd=tmp_path, env=store
    )
    assert out.returncode == 1, out
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr


def test_unknown_task_error_reads_plainly(tmp_path: Path, store: dict[str, str]) -> None:
    out = cli("enqueue", "tests.worker.tasks_app:app", "nope", cwd=tmp_path, env=store)
    assert (
        out.stderr
        == "Error: no task 'nope' on tests.worker.tasks_app:app; registered: crash, long, stuck, work\n"
    )
