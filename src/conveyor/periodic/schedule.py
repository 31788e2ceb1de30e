"""A periodic schedule: which task, with which arguments, when; checked at registration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..codec import check_json
from ..errors import ConfigurationError
from ..task import JobSpec, check_name
from .timing import Timing, timing, zone

if TYPE_CHECKING:
    from ..task import Task


@dataclass(frozen=True)
class Schedule:
    """A task enqueued at every tick of ``timing``; ``name`` keys its ticks in the store."""

    name: str
    task: Task[Any, Any]
    timing: Timing
    tz: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str

    def spec(self, tick: float | None) -> JobSpec:
        """The job the tick at ``tick`` enqueues: its metadata names the schedule and the
        tick (``{"periodic": name, "tick": epoch seconds}``), for the task, middleware and
        ``app.jobs(meta={"periodic": name})``. ``None``: a run asked for by hand (run now),
        whose metadata names the schedule only."""
        meta: dict[str, Any] = {"periodic": self.name}
        if tick is not None:
            meta["tick"] = tick
        options = replace(self.task.options, queue=self.queue, meta=meta)
        return JobSpec(self.task, self.args, dict(self.kwargs), options)

    def describe(self) -> str:
        """The schedule as written: the cron expression, or ``every 30s``."""
        return self.timing.describe()


def build_schedule(
    task: Task[Any, Any],
    *,
    cron: str | None,
    every: float | timedelta | None,
    tz: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    name: str | None,
    queue: str | None,
) -> Schedule:
    """A checked schedule: a bad name, cron expression, zone, interval or arguments (not JSON,
    or not fitting the task's signature) raise here, at registration, naming the value."""
    schedule_name = check_name("schedule", task.name if name is None else name)
    where = f"periodic task {task.name!r}" + ("" if name is None else f" (schedule {name!r})")
    if not isinstance(args, list | tuple):
        raise ConfigurationError(f"{where}: args= takes a tuple or list of arguments, not {args!r}")
    if kwargs is not None and (not isinstance(kwargs, dict) or not all(type(k) is str for k in kwargs)):
        raise ConfigurationError(f"{where}: kwargs= takes a dict with string keys, not {kwargs!r}")
    for i, arg in enumerate(args):
        check_json(arg, f"argument {i} of {where}")
    for key, value in (kwargs or {}).items():
        check_json(value, f"argument {key!r} of {where}")
    task.check_arguments(tuple(args), dict(kwargs or {}))
    chosen_queue = task.options.queue if queue is None else check_name("queue", queue)
    return Schedule(
        name=schedule_name,
        task=task,
        timing=timing(cron, every, zone(tz, schedule_name), schedule_name),
        tz=tz,
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        queue=chosen_queue,
    )
