"""What ``conveyor worker`` imports before its first job: a worker's first job waits for every
module it loads (about 0.1 s of imports, most of its start on SQLite), so what only other
commands (the dashboard, tables), other features (schedules, signing, timeouts) or the
supervisor need stays out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conveyor import Conveyor

from .helpers import cli

#: Modules a plain worker (SQLite, no schedules, keys, async tasks, timeouts or children)
#: does not load, and who does.
NOT_LOADED = {
    "conveyor.dashboard": "conveyor dashboard",
    "conveyor.dashboard.cli": "conveyor dashboard",
    "rich": "the admin commands' tables",
    "conveyor.top": "conveyor top",
    "conveyor.periodic.timing": "app.periodic",
    "conveyor.periodic.scheduler": "app.periodic",
    "cronsim": "app.periodic",
    "zoneinfo": "app.periodic, conveyor periodic",
    "hashlib": "secret_key, encryption_key, unique_for",
    "hmac": "secret_key",
    "ctypes": "a timeout that stops a thread",
    "subprocess": "--processes",
    "asyncio": "async tasks",
    "getpass": "conveyor cancel",
    "shlex": "conveyor jobs",
}

APP = """
import json
import sys

from conveyor import Conveyor

app = Conveyor({url!r}, namespace="imports")


@app.task(name="imports.record")
def record(path: str) -> None:
    with open(path, "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def _loaded_by_the_dependencies() -> set[str]:
    """What conveyor's own dependencies load by themselves, in a fresh interpreter: not ours
    to keep out (orjson 3.9, the lowest version allowed, imports zoneinfo)."""
    code = "import json, sys, click, orjson; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_a_plain_worker_loads_only_what_it_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    (tmp_path / "importsapp.py").write_text(textwrap.dedent(APP.format(url=url)))
    app = Conveyor(url, namespace="imports")
    found = tmp_path / "modules.json"
    app.task(name="imports.record")(lambda path: None).enqueue(str(found))
    out = cli("worker", "importsapp:app", "--burst", "--log-level", "warning", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(found.read_text()))
    assert "conveyor.worker.worker" in loaded  # (the job ran in the worker)
    theirs = _loaded_by_the_dependencies()
    assert {name: why for name, why in NOT_LOADED.items() if name in loaded and name not in theirs} == {}
    app.close()
