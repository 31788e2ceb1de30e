"""``assert_enqueued``: what a test checks after the code under test enqueued jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..job import Job
from ..task import BoundTask, Task

#: Jobs of one task read at most to check an assertion.
SCAN = 10_000


def assert_enqueued(
    task: Task[Any, Any] | BoundTask[Any, Any],
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    count: int | None = None,
    *,
    state: str | None = None,
) -> list[Job]:
    """Assert that jobs of ``task`` are in its app's store, in any state (run or not) unless
    ``state`` says which: with exactly these positional ``args`` and these ``kwargs`` when
    given (compared after the JSON round trip, so a tuple matches a list), ``count`` of them
    exactly when given, else at least one. Returns the matching jobs, oldest first.

    An ``AssertionError`` lists the jobs of the task that were found, to show what differed."""
    if isinstance(task, BoundTask):
        task = task.task
    app = task.app
    want_args = None if args is None else orjson.loads(orjson.dumps(list(args)))
    want_kwargs = None if kwargs is None else orjson.loads(orjson.dumps(kwargs))
    found = [
        job
        for job in app.jobs(state=state, search=orjson.dumps(task.name).decode(), limit=SCAN)
        if job.task == task.name
    ]
    found.sort(key=lambda job: job.id)  # ids are time-ordered: oldest first
    matching = [
        job
        for job in found
        if (want_args is None or job.args == want_args) and (want_kwargs is None or job.kwargs == want_kwargs)
    ]
    if (count is None and matching) or (count is not None and len(matching) == count):
        return matching
    wanted = "".join(
        part
        for part in (
            f" args={want_args!r}" if want_args is not None else "",
            f" kwargs={want_kwargs!r}" if want_kwargs is not None else "",
            f" state={state!r}" if state is not None else "",
        )
    )
    expected = "at least 1" if count is None else str(count)
    seen = "\n".join(f"  {j.id} {j.state} args={j.args!r} kwargs={j.kwargs!r}" for j in found[:20])
    more = f"\n  … and {len(found) - 20} more" if len(found) > 20 else ""
    raise AssertionError(
        f"expected {expected} job(s) of task {task.name!r}{wanted}, found {len(matching)}; "
        f"jobs of that task in the store: {len(found)}" + (f"\n{seen}{more}" if found else "")
    )
