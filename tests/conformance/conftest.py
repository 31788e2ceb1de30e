"""The stores every conformance test runs against.

Each test gets a fresh namespace, so tests never see each other's jobs. A store whose module
is not written yet (``ImportError`` from ``open_backend``) is skipped, never faked.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError

STORES = ["sqlite", "redis", "postgres"]
_counter = itertools.count()

AppFactory = Callable[..., Conveyor]


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a real store of each kind."""
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return str(server.url)
    server = request.getfixturevalue("postgres_server")
    return str(server.url)


@pytest.fixture
def make_app(store_url: str) -> Iterator[AppFactory]:
    """Builds apps on the store, each in a namespace of its own test; all closed afterwards.
    Apps built with the same ``namespace=`` share jobs (a second process's view)."""
    apps: list[Conveyor] = []
    base = f"t{os.getpid()}_{next(_counter)}"

    def factory(**options: Any) -> Conveyor:
        options.setdefault("lease", 2.0)
        options["namespace"] = f"{base}_{options.get('namespace', 'a')}"
        app = Conveyor(store_url, **options)
        try:
            app.backend  # noqa: B018 - open now, so a missing store module skips here
        except ConfigurationError as exc:
            if "needs the" in str(exc):
                pytest.skip(str(exc))
            raise
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: AppFactory) -> Conveyor:
    return make_app()
