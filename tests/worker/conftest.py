"""Worker processes started for real, on a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from .tasks_app import app as tasks_app

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Starts ``conveyor worker tests.worker.tasks_app:app`` processes and cleans them up."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.url = url
        self.run_log = tmp / "runs.log"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "CONVEYOR_URL": url,
            "CONVEYOR_RUN_LOG": str(self.run_log),
            "CONVEYOR_LEASE": "1.5",
            "PYTHONPATH": str(ROOT),
        }
        # The test process enqueues through the same app the workers import, pointed at
        # this test's file.
        tasks_app.close()
        tasks_app.url = url
        tasks_app.lease = 1.5
        self.app: Conveyor = tasks_app

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "tests.worker.tasks_app:app", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker-*.log")))

    def runs(self) -> list[str]:
        return self.run_log.read_text().split() if self.run_log.exists() else []

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; worker logs:\n{self.logs()[-5000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.app.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path, f"sqlite:///{tmp_path}/jobs.db")
    yield w
    w.close()
