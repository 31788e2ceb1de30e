"""Helpers for testing code that uses conveyor, with its real store and no worker.

* ``with app.inline():`` runs each job at once, in the caller, as it is enqueued.
* ``drain(app)`` runs every due job in the test's thread; ``drain(app, advance=3600)`` first
  lets an hour pass on the app's virtual clock, so delayed and retried jobs come due.
* ``assert_enqueued(task, args=..., kwargs=..., count=...)`` checks what was enqueued.
* ``temporary_store(app)`` points an app made at import time at a fresh store for a test.
* ``pytest -p conveyor.testing`` (also loaded by itself where conveyor is installed) gives the
  ``conveyor_app`` and ``conveyor_url`` fixtures (see ``plugin.py``).

Jobs run by these helpers go through the worker's own ``Runner``: the same JSON round trip,
middleware, ``current_job()``, timeouts and retry rules as in a worker, and their outcome is
written to the store, where ``job.result()`` and ``app.get_job(id)`` read it.
"""

from __future__ import annotations

import sys

from .asserts import assert_enqueued
from .clock import VirtualClock, virtual_clock
from .drain import Drained, TooManyJobs, drain, inline
from .store import temporary_store

__all__ = [
    "Drained",
    "TooManyJobs",
    "VirtualClock",
    "assert_enqueued",
    "drain",
    "inline",
    "temporary_store",
    "virtual_clock",
]

# The pytest plugin's hooks and fixtures live in this module (``-p conveyor.testing`` and the
# pytest11 entry point load it); pytest is then imported already. Outside pytest (a script
# using drain or inline) importing it would only cost a second.
if "pytest" in sys.modules:
    from .plugin import conveyor_app, conveyor_url, pytest_addoption

    __all__ += ["conveyor_app", "conveyor_url", "pytest_addoption"]
