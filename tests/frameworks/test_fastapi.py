"""examples/fastapi_app.py under a real uvicorn, driven with httpx: a handler enqueues, the
lifespan's in-process worker runs the job, the dashboard answers under /jobs, and SIGTERM
stops the server and its worker cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT
from tests.servers import free_port

pytest.importorskip("fastapi")


def test_example_app_enqueues_runs_and_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db",
        "CONVEYOR_DASHBOARD_TOKEN": "t0ken",
        "CONVEYOR_IN_PROCESS_WORKER": "1",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "uvicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_app:api", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        answer = httpx.post(f"{base}/signup", params={"email": "ada@example.com"})
        assert answer.status_code == 202
        job_id = answer.json()["job"]
        while True:
            status = httpx.get(f"{base}/signup/{job_id}").json()
            if status["state"] == "completed":
                break
            assert time.monotonic() < deadline, (status, log.read_text())
            time.sleep(0.05)
        assert status["result"] == "welcome sent to ada@example.com"
        assert httpx.get(f"{base}/jobs/").status_code in (401, 403)
        page = httpx.get(f"{base}/jobs/", headers={"Authorization": "Bearer t0ken"})
        assert page.status_code == 200 and "/jobs/static/" in page.text
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    text = log.read_text()
    # uvicorn re-raises the SIGTERM it handled once shut down: -15 is a clean stop too.
    assert code in (0, -signal.SIGTERM), text
    assert "Application shutdown complete" in text, text
