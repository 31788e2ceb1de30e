"""Worker processes started for real, on a real SQLite file (``tests/harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import WorkerProcesses

from .tasks_app import app as tasks_app

LEASE = 1.5


class Workers(WorkerProcesses):
    """``conveyor worker tests.worker.tasks_app:app`` processes; ``runs()`` as tags."""

    def __init__(self, tmp: Path, url: str) -> None:
        # The test process enqueues through the same app the workers import, pointed at
        # this test's file.
        tasks_app.close()
        tasks_app.url = url
        tasks_app.lease = LEASE
        super().__init__("tests.worker.tasks_app:app", tasks_app, tmp, url, CONVEYOR_LEASE=str(LEASE))


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path, f"sqlite:///{tmp_path}/jobs.db")
    yield w
    w.close()
