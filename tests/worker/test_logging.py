"""The worker's log, read as an operator reads it: one line per finished job, the reason for
each retry and death, the job id on the task's own records, text or JSON, colour on a
terminal only."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from conveyor.logs import JobIdFilter, TextFormatter, configure
from conveyor.running import CurrentJob, _current

from .logging_app import aok, app, flaky, ok, refuse

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests.worker.logging_app:app"


@pytest.fixture
def jobs(tmp_path: Path) -> dict[str, str]:
    """One job of each kind, and one of a task the worker does not know; their ids."""
    url = f"sqlite:///{tmp_path}/jobs.db"
    app.close()
    app.url = url
    ids = {
        "ok": ok.enqueue(7).id,
        "aok": aok.enqueue(8).id,
        "flaky": flaky.enqueue().id,
        "refuse": refuse.enqueue().id,
    }
    ghost = app.task(name="ghost")(_ghost)
    ids["ghost"] = ghost.enqueue().id
    del app.tasks["ghost"]
    app.close()
    return ids


def _ghost() -> None: ...


def run_worker(tmp_path: Path, *args: str, tty: bool = False) -> str:
    """``conveyor worker --burst`` on the fixture's store; its stderr."""
    env = {**os.environ, "CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "conveyor", "worker", TARGET, "--burst", *args]
    if not tty:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stderr
    main, child = pty.openpty()
    proc = subprocess.Popen(command, env=env, stdin=child, stdout=child, stderr=child)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0, out
    os.close(main)
    return out.decode()


def test_one_line_per_finished_job_with_reasons(jobs: dict[str, str], tmp_path: Path) -> None:
    err = run_worker(tmp_path)
    lines = err.splitlines()

    def line(pattern: str) -> str:
        found = [x for x in lines if re.search(pattern, x)]
        assert len(found) == 1, (pattern, err)
        return found[0]

    assert re.search(
        rf" INFO conveyor\.job: ok {jobs['ok']} completed in [\d.]+ ms$", line(f"ok {jobs['ok']}")
    )
    assert " INFO conveyor.job: aok " in line(f"aok {jobs['aok']}")
    assert re.search(
        rf" WARNING conveyor\.job: flaky {jobs['flaky']} failed in [\d.]+ ms \(attempt 1 of 2\), "
        r"retrying in 0\.0 ms: ValueError: connect\(token=\[REDACTED\]\) refused$",
        line(f"flaky {jobs['flaky']} failed"),
    )
    assert re.search(
        rf" ERROR conveyor\.job: flaky {jobs['flaky']} dead in [\d.]+ ms after 2 attempts: ValueError",
        line(f"flaky {jobs['flaky']} dead"),
    )
    refused = line(f"refuse {jobs['refuse']}")
    assert re.search(r" ERROR conveyor\.job: refuse \S+ dead in [\d.]+ ms: Fail: card declined$", refused)
    assert "attempt" not in refused
    assert f"ERROR conveyor.job: ghost {jobs['ghost']} dead: unknown task 'ghost'" in line("ghost")
    # The task's own records carry the job's id.
    assert line("working on 7").endswith(f"INFO shop [job {jobs['ok']}]: working on 7")
    assert line("async work on 8").endswith(f"WARNING shop [job {jobs['aok']}]: async work on 8")
    assert "\x1b[" not in err, "no colour in a pipe"
    assert re.search(r"stopped after 6 jobs$", lines[-1])


def test_json_lines_carry_the_fields(jobs: dict[str, str], tmp_path: Path) -> None:
    err = run_worker(tmp_path, "--log-format", "json")
    records = [orjson.loads(x) for x in err.splitlines()]
    by_job = {(r.get("job_id"), r["logger"], r.get("outcome")): r for r in records}
    done = by_job[(jobs["ok"], "conveyor.job", "completed")]
    assert done["task"] == "ok" and done["level"] == "INFO" and 0 <= done["duration"] < 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", done["time"])
    retry = by_job[(jobs["flaky"], "conveyor.job", "retry")]
    assert (retry["attempt"], retry["max_attempts"], retry["retry_in"]) == (1, 2, 0.0)
    assert retry["error"] == "ValueError: connect(token=[REDACTED]) refused"
    assert by_job[(jobs["refuse"], "conveyor.job", "dead")]["error"] == "Fail: card declined"
    assert by_job[(jobs["ok"], "shop", None)]["message"] == "working on 7"
    assert by_job[(jobs["aok"], "shop", None)]["level"] == "WARNING"


def test_warning_level_keeps_retries_and_deaths_only(jobs: dict[str, str], tmp_path: Path) -> None:
    err = run_worker(tmp_path, "--log-level", "warning")
    assert "completed" not in err and "working on" not in err and " INFO " not in err
    assert f"flaky {jobs['flaky']} failed" in err and f"refuse {jobs['refuse']} dead" in err
    assert f"[job {jobs['aok']}]: async work on 8" in err


def test_colour_on_a_terminal(jobs: dict[str, str], tmp_path: Path) -> None:
    out = run_worker(tmp_path, tty=True)
    assert "\x1b[32mINFO\x1b[0m conveyor.job: ok" in out
    assert "\x1b[31mERROR\x1b[0m conveyor.job: refuse" in out


def test_filter_reads_the_job_of_the_running_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(JobIdFilter())
    logger = logging.getLogger("tests.jobid")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        token = _current.set(CurrentJob("job-1", "t", "default", 1, 1, {}))
        logger.warning("inside")
        _current.reset(token)
    finally:
        logger.removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("WARNING tests.jobid: outside")
    assert second.endswith("WARNING tests.jobid [job job-1]: inside")


def test_configure_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="text, json"):
        configure("INFO", "xml")
