"""The pytest plugin: ``pytest -p conveyor.testing`` (or loaded by itself, through the
``pytest11`` entry point, wherever conveyor is installed).

Fixtures:

* ``conveyor_url``: a fresh SQLite file for the test (``sqlite:///<tmp_path>/conveyor.db``).
* ``conveyor_app``: an app on that store. When the project names its app, with
  ``conveyor_app = "myproject.tasks:app"`` in the pytest configuration (``[tool.pytest.ini_options]``,
  ``pytest.ini``) or else with ``[tool.conveyor] app`` in ``pyproject.toml`` (as the CLI finds
  it), that very app, with its tasks, is pointed at the fresh store for the test and put back
  afterwards; else a new ``Conveyor`` on it. A project that builds its app with a factory
  overrides the fixture: ``def conveyor_app(conveyor_url): return create_app(conveyor_url)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..app import Conveyor
from ..locate import load_app, pyproject_app
from .store import temporary_store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "conveyor_app",
        "MODULE:ATTRIBUTE of the application's Conveyor app, for the conveyor_app fixture "
        "(default: [tool.conveyor] app in pyproject.toml)",
        default="",
    )


@pytest.fixture
def conveyor_url(tmp_path: Path) -> str:
    """A fresh SQLite store for this test."""
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


@pytest.fixture
def conveyor_app(request: pytest.FixtureRequest, conveyor_url: str) -> Iterator[Conveyor]:
    """The project's app (see the module docstring) on a fresh SQLite store, or a new app."""
    target = str(request.config.getini("conveyor_app") or "")
    origin = "the conveyor_app setting of pytest"
    if not target:
        target, origin = pyproject_app(request.config.rootpath) or "", "[tool.conveyor] app in pyproject.toml"
    if not target:
        app = Conveyor(conveyor_url)
        try:
            yield app
        finally:
            app.close()
        return
    with temporary_store(load_app(target, origin), conveyor_url) as app:
        yield app
