"""Periodic jobs: schedules (``app.periodic``), their timing, and the scheduler every worker runs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schedule import Schedule, build_schedule
    from .scheduler import Scheduler
    from .timing import Cron, Every

__all__ = ["Cron", "Every", "Schedule", "Scheduler", "build_schedule"]

# Loaded when first named: importing ``conveyor.periodic.status`` (the CLI, the dashboard)
# runs this package first, and the timing module imports cronsim and zoneinfo (with calendar
# and locale, 3-5 ms), which a worker of an app without schedules never uses.
_HOMES = {
    "Cron": "timing",
    "Every": "timing",
    "Schedule": "schedule",
    "build_schedule": "schedule",
    "Scheduler": "scheduler",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
