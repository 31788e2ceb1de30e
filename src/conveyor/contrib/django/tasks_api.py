"""The Django tasks framework: Django 6's ``django.tasks``, else its backport ``django_tasks``.

The one place the two differ for conveyor is the module their API is imported from.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def _first(*names: str) -> ModuleType:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError(
        "ConveyorBackend needs Django 6's django.tasks or the backport: pip install django-tasks "
        "(and put 'django_tasks' in INSTALLED_APPS)"
    )


tasks: Any = _first("django.tasks", "django_tasks")
#: ``django.tasks`` or ``django_tasks``, whichever this process uses.
PACKAGE: str = tasks.__name__
base: Any = importlib.import_module(f"{PACKAGE}.base")
backends_base: Any = importlib.import_module(f"{PACKAGE}.backends.base")
exceptions: Any = importlib.import_module(f"{PACKAGE}.exceptions")

BaseTaskBackend: Any = backends_base.BaseTaskBackend
Task: Any = base.Task
TaskContext: Any = base.TaskContext
TaskError: Any = base.TaskError
TaskResult: Any = base.TaskResult
TaskResultStatus: Any = base.TaskResultStatus
TaskResultDoesNotExist: Any = exceptions.TaskResultDoesNotExist
