"""What ``manage.py conveyor_worker`` runs: the project's app, with every task Django knows.

``conveyor.contrib.django.worker:app`` is a ``MODULE:APP`` target like any other, so the
worker's child processes (``--processes``, ``--pool process``) load it the same way. Reading
``app`` sets Django up (``$DJANGO_SETTINGS_MODULE``), imports each installed app's ``tasks``
module (as Celery's autodiscovery does: the tasks registered are those the project defines,
never a path read from a job) and returns ``get_app()``. ``backends.ALIAS`` is the app of the
``ConveyorBackend`` configured as ``TASKS[ALIAS]``, when that backend has a store of its own.
Importing this module does none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...middleware import Middleware
from ...running import CurrentJob
from .transaction import DjangoConveyor


class DatabaseConnections(Middleware):
    """Django's request rule for each job run in a worker thread: a connection past its
    ``CONN_MAX_AGE`` or broken is closed before and after the run, as around a request."""

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        from django.db import close_old_connections

        close_old_connections()
        try:
            return call_next()
        finally:
            close_old_connections()


def _prepared(app: DjangoConveyor) -> DjangoConveyor:
    if not any(isinstance(mw, DatabaseConnections) for mw in app.middleware):
        app.add_middleware(DatabaseConnections())
    return app


def _setup() -> None:
    import django
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    if not apps.ready:
        django.setup()
    autodiscover_modules("tasks")


class _Backends:
    """``backends.ALIAS``: the app of ``TASKS[ALIAS]``'s ``ConveyorBackend``."""

    def __getattr__(self, alias: str) -> DjangoConveyor:
        _setup()
        from .backend import ConveyorBackend
        from .tasks_api import tasks

        backend = tasks.task_backends[alias]
        if not isinstance(backend, ConveyorBackend):
            raise AttributeError(f"TASKS[{alias!r}] is {type(backend).__name__}, not a ConveyorBackend")
        return _prepared(backend.app)


backends = _Backends()


def __getattr__(name: str) -> Any:
    if name == "app":
        _setup()
        from .project import get_app

        return _prepared(get_app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
