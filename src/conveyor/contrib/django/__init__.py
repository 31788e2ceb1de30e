"""Django integration: put ``"conveyor.contrib.django"`` in ``INSTALLED_APPS``.

* The project's app comes from settings: ``CONVEYOR_URL`` (the store), and ``CONVEYOR``, a
  dict of ``Conveyor`` keyword arguments (``{"namespace": "shop", "lease": 60}``; ``url``
  may go there too). ``get_app()`` returns it; ``@task`` registers a function on it.
* Enqueued inside ``transaction.atomic()``, a job joins the transaction when the store is
  the PostgreSQL database Django itself uses (through Django's own psycopg 3 connection);
  on any other store it is stored by ``transaction.on_commit``. Either way a rolled-back
  transaction leaves no job behind, and a worker never sees a job before its rows commit.
* ``manage.py conveyor_worker`` runs a worker, with every option of ``conveyor worker``.
* ``path("admin/jobs/", include("conveyor.contrib.django.urls"))`` serves the dashboard to
  staff users logged in through Django.
* ``ConveyorBackend``: a backend for Django 6's ``django.tasks`` and for its backport
  ``django-tasks``, so ``@django.tasks.task`` functions are stored and run by conveyor.

Importing this package imports no part of Django that needs settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .project import get_app, task

if TYPE_CHECKING:
    from .backend import ConveyorBackend

__all__ = ["ConveyorBackend", "get_app", "task"]


def __getattr__(name: str) -> Any:
    # The backend imports the tasks framework, which a project without it lacks.
    if name == "ConveyorBackend":
        from .backend import ConveyorBackend

        return ConveyorBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
