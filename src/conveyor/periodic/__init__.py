"""Periodic jobs: schedules (``app.periodic``), their timing, and the scheduler every worker runs."""

from .schedule import Schedule, build_schedule
from .scheduler import Scheduler
from .timing import Cron, Every

__all__ = ["Cron", "Every", "Schedule", "Scheduler", "build_schedule"]
