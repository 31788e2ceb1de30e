"""Smoke test of the benchmark harness (not a benchmark): the conveyor driver drains a few
jobs on SQLite through a real worker process and prints its one JSON result line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_conveyor_driver_drain_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    driver = str(REPO / "bench/drivers/conveyor.py")
    proc = subprocess.run(
        [sys.executable, driver, "--url", url, "--scenario", "drain", "--n", "200", "--timeout", "15"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=19,
    )
    last = proc.stdout.strip().splitlines()[-1]
    line = json.loads(last)
    assert "error" not in line, line
    assert proc.returncode == 0, proc.stderr
    assert line["system"] == "conveyor"
    assert line["variant"] == "sqlite"
    assert line["scenario"] == "drain"
    assert line["n"] == 200
    assert line["jobs_per_s"] > 0
    assert line["seconds"] > 0
