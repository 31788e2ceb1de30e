"""Apps on the stores every conformance test runs against (``store_url``, from
``tests/conftest.py``: each kind of store in turn).

Each test gets a fresh namespace, so tests never see each other's jobs. A store whose extra
is not installed (``conveyor[redis]``...) is skipped with the reason, never faked; under
``CI=true`` that skip is a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor import Conveyor
from tests.harness import open_or_skip

_counter = itertools.count()

AppFactory = Callable[..., Conveyor]


@pytest.fixture
def make_app(store_url: str) -> Iterator[AppFactory]:
    """Builds apps on the store, each in a namespace of its own test; all closed afterwards.
    Apps built with the same ``namespace=`` share jobs (a second process's view)."""
    apps: list[Conveyor] = []
    base = f"t{os.getpid()}_{next(_counter)}"

    def factory(**options: Any) -> Conveyor:
        options.setdefault("lease", 2.0)
        options["namespace"] = f"{base}_{options.get('namespace', 'a')}"
        app = open_or_skip(Conveyor(store_url, **options))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: AppFactory) -> Conveyor:
    return make_app()
