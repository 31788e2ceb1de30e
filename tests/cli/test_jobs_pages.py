"""``conveyor jobs`` pages with a cursor and says what a search read."""

from __future__ import annotations

import shlex
from pathlib import Path

import orjson

from conveyor import Conveyor
from tests.cli.helpers import cli


def test_jobs_pages_by_cursor_and_counts_what_a_search_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    app = Conveyor(url)

    @app.task(name="mail.send")
    def send(to: str) -> None: ...

    jobs = app.enqueue_many([send.job(f"u{i}@example.com") for i in range(5)])
    app.close()
    first = cli("jobs", "--url", url, "--state", "pending", "-n", "3", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert [orjson.loads(line)["id"] for line in first.stdout.splitlines()] == [j.id for j in jobs[:3]]
    after = orjson.loads(first.stderr.splitlines()[-1])["next"]
    rest = cli(
        "jobs", "--url", url, "--state", "pending", "-n", "3", "--after", after, "--json", cwd=tmp_path
    )
    assert [orjson.loads(line)["id"] for line in rest.stdout.splitlines()] == [j.id for j in jobs[3:]]
    assert rest.stderr == ""  # the last page, no search: nothing more to say

    table = cli("jobs", "--url", url, "--state", "pending", "-n", "2", cwd=tmp_path)
    hint = table.stderr.splitlines()[-1]
    assert hint.startswith("next: the same command with --after ")
    (cursor,) = shlex.split(hint.split("--after ", 1)[1])
    assert jobs[2].id in cli("jobs", "--url", url, "-s", "pending", "--after", cursor, cwd=tmp_path).stdout

    searched = cli("jobs", "--url", url, "--state", "pending", "--search", "u4@", cwd=tmp_path)
    assert jobs[4].id in searched.stdout and "searched the first 5 jobs" in searched.stderr
    bad = cli("jobs", "--url", url, "--state", "dead", "--after", "pending~x", cwd=tmp_path)
    assert bad.returncode == 2 and "cursor" in bad.stderr
