"""conveyor: background jobs for Python on SQLite, PostgreSQL or Redis.

The public API, re-exported here; README.md shows it in use. Importing this package opens
nothing.
"""

from .app import Conveyor
from .batch import Batch
from .errors import (
    BatchClosed,
    ConfigurationError,
    ConveyorError,
    Fail,
    JobFailed,
    JobTimeout,
    PayloadTooLarge,
    QueueFull,
    Retry,
    SchemaError,
    Snooze,
    StoreFull,
    StoreUnavailable,
)
from .job import Job, Stats, WorkerInfo
from .middleware import Enqueuing, Middleware
from .page import JobPage
from .running import CurrentJob, current_job
from .task import Task

__all__ = [
    "Batch",
    "BatchClosed",
    "ConfigurationError",
    "Conveyor",
    "ConveyorError",
    "CurrentJob",
    "Enqueuing",
    "Fail",
    "Job",
    "JobFailed",
    "JobPage",
    "JobTimeout",
    "Middleware",
    "PayloadTooLarge",
    "QueueFull",
    "Retry",
    "SchemaError",
    "Snooze",
    "Stats",
    "StoreFull",
    "StoreUnavailable",
    "Task",
    "WorkerInfo",
    "current_job",
]

#: The one version source: the package metadata reads it (``[tool.hatch.version]``).
__version__ = "0.1.0"
