"""An idle SQLite worker looks for commits less often the longer none comes (issue 19: an
idle worker under 2% of a core), and as often as at first again once one came."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.backends import sqlite
from conveyor.backends.sqlite import BUSY_POLL, IDLE_POLL, SQLiteBackend
from conveyor.job import PENDING, JobRecord


def test_the_idle_wait_backs_off_and_a_commit_brings_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    waiter, writer = SQLiteBackend(url, "conveyor"), SQLiteBackend(url, "conveyor")
    try:
        waiter.wait(None, 0.1)  # nothing committed: the looks grow apart, up to IDLE_POLL
        assert BUSY_POLL < waiter._poll <= IDLE_POLL

        class Clock:
            """The store's time module, whose first sleep lets another connection commit."""

            committed = False

            def __getattr__(self, name: str) -> object:
                return getattr(time, name)

            def sleep(self, seconds: float) -> None:
                if not self.committed:
                    self.committed = True
                    writer.enqueue([JobRecord("j1", "default", b"{}", 0, PENDING, 0.0, 0, 1, None, 0.0)])
                time.sleep(seconds)

        monkeypatch.setattr(sqlite, "time", Clock())
        waiter._poll = IDLE_POLL
        waiter.wait(None, 60.0)  # returns at the commit's next look (else after a minute)
        assert waiter._poll == BUSY_POLL
    finally:
        waiter.close()
        writer.close()
