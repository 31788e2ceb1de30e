"""Fixtures for the PostgreSQL store's own tests (the conformance suite covers the rest).

Each test gets a database of its own on the session's shared server, so schemas, versions
and NOTIFY channels never meet. Tests that restart a server start their own instance.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conveyor import Conveyor
from tests.servers import PostgresServer

_counter = itertools.count()

AppFactory = Callable[..., Conveyor]


@pytest.fixture
def db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database."""
    name = f"pgtest_{os.getpid()}_{next(_counter)}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@pytest.fixture
def make_app(db_url: str) -> Iterator[AppFactory]:
    """Apps on the test's database; all closed afterwards."""
    apps: list[Conveyor] = []

    def factory(url: str | None = None, **options: Any) -> Conveyor:
        options.setdefault("lease", 5.0)
        app = Conveyor(url or db_url, **options)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()
