"""What the CLI, the dashboard and /metrics show of periodic schedules: the code's definitions
joined with the store's state (last tick, its job and that job's state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..job import ScheduleState

if TYPE_CHECKING:
    from ..app import Conveyor


@dataclass(frozen=True)
class ScheduleStatus:
    """One schedule as an admin sees it. ``defined`` is False for a schedule the store still
    has state for but this app's code does not define (removed, or another app's: its state
    goes once abandoned); its ``schedule``, ``tz`` and ``task`` are then unknown (None)."""

    name: str
    task: str | None
    schedule: str | None
    tz: str | None
    queue: str
    next_run: datetime | None
    last_tick: datetime | None
    last_enqueued: datetime | None
    last_job_id: str | None
    last_job_state: str | None
    defined: bool = True

    def seconds_since_enqueue(self, now: float) -> float | None:
        """Seconds since the last tick was enqueued, or None if none was yet."""
        return None if self.last_enqueued is None else max(0.0, now - self.last_enqueued.timestamp())


def _at(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def statuses(app: Conveyor, now: float, job_states: bool = True) -> list[ScheduleStatus]:
    """Every schedule of ``app``'s code and of its store, by name. ``job_states`` reads each
    last job's state (one store read per schedule); /metrics leaves it out."""
    recorded: dict[str, ScheduleState] = {s.name: s for s in app.backend.schedules()}
    found: list[ScheduleStatus] = []
    for name in sorted(set(app.schedules) | set(recorded)):
        state = recorded.get(name)
        schedule = app.schedules.get(name)
        job_state = None
        if job_states and state is not None:
            job = app.backend.get(state.job_id)
            job_state = job.state if job is not None else "gone"
        if schedule is not None:
            task, described, tz, queue = schedule.task.name, schedule.describe(), schedule.tz, schedule.queue
            next_run = schedule.timing.next_after(now)
        else:
            assert state is not None  # every name comes from one or the other
            task, described, tz, queue, next_run = None, None, None, state.queue, state.next_at
        found.append(
            ScheduleStatus(
                name=name,
                task=task,
                schedule=described,
                tz=tz,
                queue=queue,
                next_run=_at(next_run),
                last_tick=_at(state.last_at if state else None),
                last_enqueued=_at(state.enqueued_at if state else None),
                last_job_id=state.job_id if state else None,
                last_job_state=job_state,
                defined=schedule is not None,
            )
        )
    return found
