"""SQLite: lists of ids of any length, within the build's limit on a statement's parameters."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conveyor import Conveyor
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.backends.sqlite_lists import IN_CHUNK, in_chunks


def test_in_chunks_cover_every_id_in_padded_chunks() -> None:
    ids = [str(n) for n in range(2 * IN_CHUNK + 3)]
    chunks = list(in_chunks(ids))
    assert [len(chunk) for _, chunk in chunks] == [IN_CHUNK, IN_CHUNK, 4]
    assert [marks.count("?") for marks, _ in chunks] == [IN_CHUNK, IN_CHUNK, 4]
    assert sorted({i for _, chunk in chunks for i in chunk}, key=int) == ids


def test_a_job_may_wait_for_more_jobs_than_a_statement_takes_parameters(tmp_path: Path) -> None:
    """SQLite's default limit was 999 parameters a statement before 3.32 and is 32,766 since
    (Debian builds it with 250,000): a job's dependencies were looked up in one statement."""
    app = Conveyor(f"sqlite:///{tmp_path / 'deps.db'}")

    @app.task(name="t.step")
    def step(n: int) -> int:
        return n

    try:
        parents = [job.id for job in app.enqueue_many([step.using(queue="q1").job(n) for n in range(2000)])]
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        backend._conn().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        child = step.using(queue="q2", after=parents).enqueue(-1)
        found = app.get_job(child.id)
        assert found is not None and found.state == "waiting"
        assert backend.dependencies(child.id) == parents
    finally:
        app.close()
