"""``ConveyorBackend``: Django's tasks framework (``django.tasks``, or the ``django-tasks``
backport) stored and run by conveyor.

::

    TASKS = {"default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend",
                         "QUEUES": ["default", "mail"],
                         "OPTIONS": {"url": "postgresql:///shop", "retries": 2}}}

``OPTIONS`` takes ``Conveyor`` keyword arguments (as ``settings.CONVEYOR``) and the job
defaults ``retries`` (default 0: a task that raises ends ``FAILED``, as Django's own
backends do) and ``timeout``; without app options the backend uses the project's app
(``get_app()``), so one ``manage.py conveyor_worker`` runs both kinds of task.

A Django task becomes a conveyor task named by its ``module_path`` when it is defined: the
worker finds it by importing each installed app's ``tasks`` module, never by importing a
path from a job. ``priority`` (-100 to 100, higher first), ``queue_name`` and ``run_after``
carry over; a job's state reads back as the result's ``status`` (``READY`` while it waits
or waits to be retried, ``RUNNING``, ``SUCCESSFUL``, ``FAILED`` when dead or cancelled).
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import autodiscover_modules

from ...errors import ConfigurationError
from ...job import ACTIVE, CANCELLED, COMPLETED, DEAD, Job
from ...running import current_job
from ...task import Task as ConveyorTask
from . import project, tasks_api
from .transaction import DjangoConveyor

#: Job defaults a backend's OPTIONS may give beside the app's options.
JOB_OPTIONS = frozenset({"retries", "timeout"})
#: What a failure without a Python exception behind it (a lost worker, a timeout, a cancel)
#: names as its exception class.
NO_EXCEPTION = "conveyor.errors.JobFailed"

#: Django tasks by module path, as this process defined them (any backend instance: settings
#: overridden in tests make new ones).
DJANGO_TASKS: dict[str, Any] = {}

_STATUS = {
    ACTIVE: "RUNNING",
    COMPLETED: "SUCCESSFUL",
    DEAD: "FAILED",
    CANCELLED: "FAILED",
}


class ConveyorBackend(tasks_api.BaseTaskBackend):  # type: ignore[misc]
    """A task backend whose tasks are conveyor jobs: stored in conveyor's store, run by
    ``manage.py conveyor_worker``, results read from the store (any process)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = project.app_options(
            self.options, f"TASKS[{alias!r}]['OPTIONS']", project.APP_OPTIONS | JOB_OPTIONS
        )
        self.retries: int = options.pop("retries", 0)
        self.timeout: float | None = options.pop("timeout", None)
        own = {key: value for key, value in options.items() if key in project.APP_OPTIONS}
        self.app: DjangoConveyor = (
            project.get_app() if not own or own == project.configured_options() else project.build_app(own)
        )
        self._lock = threading.Lock()
        self._discovered = False

    # -- definition -----------------------------------------------------------------------
    def validate_task(self, task: Any) -> None:
        """Django's checks, then the task is registered on the app under its module path
        (every ``@task`` definition, and every ``.using()``, passes through here)."""
        super().validate_task(task)
        self.register(task)

    def register(self, task: Any) -> ConveyorTask[Any, Any]:
        name = task.module_path
        with self._lock:
            registered = self.app.tasks.get(name)
            if registered is None or getattr(registered.fn, "django_task_func", None) is not task.func:
                registered = self.app.task(
                    name=name, queue=task.queue_name, retries=self.retries, timeout=self.timeout
                )(_runner(task, self.alias))
            DJANGO_TASKS.setdefault(name, task)
        return registered

    # -- enqueue --------------------------------------------------------------------------
    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        job = (
            self.register(task)
            .using(queue=task.queue_name, priority=task.priority, at=task.run_after)
            .enqueue(*args, **kwargs)
        )
        return self._result(task, job)

    # aenqueue: the base class runs enqueue in a thread (sync_to_async), so that an atomic
    # block of the calling request still sees the enqueue.

    # -- results --------------------------------------------------------------------------
    def get_result(self, result_id: str) -> Any:
        job = self.app.get_job(result_id)
        if job is None:
            raise tasks_api.TaskResultDoesNotExist(result_id)
        task = DJANGO_TASKS.get(job.task)
        if task is None and not self._discovered:
            # A process that never imported the task's module (a web process asking about a
            # job): import the installed apps' tasks modules, never the path in the job.
            self._discovered = True
            autodiscover_modules("tasks")
            task = DJANGO_TASKS.get(job.task)
        if task is None:
            raise tasks_api.TaskResultDoesNotExist(
                f"job {result_id} runs {job.task!r}, which is not a task of backend {self.alias!r}"
            )
        deferred = job.run_at is not None and job.enqueued_at is not None and job.run_at > job.enqueued_at
        as_enqueued = task.using(
            queue_name=job.queue,
            priority=max(-100, min(100, job.priority)),
            run_after=job.run_at if deferred else None,
        )
        return self._result(as_enqueued, job)

    def _result(self, task: Any, job: Job) -> Any:
        status = _STATUS.get(job.state, "READY")
        errors = []
        if job.last_error and job.state != COMPLETED:
            errors.append(
                tasks_api.TaskError(
                    exception_class_path=_exception_path(job.traceback) or NO_EXCEPTION,
                    traceback=job.traceback or job.last_error,
                )
            )
        result = tasks_api.TaskResult(
            task=task,
            id=job.id,
            status=tasks_api.TaskResultStatus[status],
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.started_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=errors,
            worker_ids=[job.worker or "conveyor"] * job.attempts,
        )
        if status == "SUCCESSFUL":
            object.__setattr__(result, "_return_value", job.return_value)
        return result


def _exception_path(traceback: str | None) -> str | None:
    """The exception's class path from a traceback's last line (``ValueError: x`` is a
    builtin; ``django.core.exceptions.ValidationError: x`` names its module)."""
    if not traceback:
        return None
    last = traceback.rstrip().rsplit("\n", 1)[-1]
    name = last.split(":", 1)[0].strip()
    if not name.replace(".", "").replace("_", "").isalnum():
        return None
    return name if "." in name else f"builtins.{name}"


def _runner(task: Any, alias: str) -> Callable[..., Any]:
    """The function conveyor runs for a Django task: its function, with the ``TaskContext``
    first when it takes one; the signature is the task's own (so bad arguments fail at
    enqueue)."""
    func = task.func
    signature = inspect.signature(func)
    if task.takes_context:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])

    def context() -> tuple[Any, ...]:
        if not task.takes_context:
            return ()
        running = current_job()
        result = tasks_api.TaskResult(
            task=task,
            id=running.id if running else "",
            status=tasks_api.TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=[],
            kwargs={},
            backend=alias,
            errors=[],
            worker_ids=["conveyor"] * (running.attempts if running else 1),
        )
        return (tasks_api.TaskContext(task_result=result),)

    run: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            return await func(*context(), *args, **kwargs)

        run = run_async
    else:

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            return func(*context(), *args, **kwargs)

        run = run_sync
    run.__dict__["__signature__"] = signature
    run.__dict__["django_task_func"] = func
    return run


def check_backend_app(backend: Any) -> DjangoConveyor:
    if not isinstance(backend, ConveyorBackend):
        raise ConfigurationError(f"task backend {backend.alias!r} is not a ConveyorBackend")
    return backend.app
