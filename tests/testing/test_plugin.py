"""The pytest plugin as a user meets it: a project of their own, its app made at import time
with a production URL, and its test suite run by pytest in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TASKS = """
from conveyor import Conveyor, current_job

# The production store; the tests must never reach it.
app = Conveyor("postgresql://nobody@127.0.0.1:9/production")

@app.task(retries=3)
def flaky(order: int) -> str:
    job = current_job()
    if job.attempts < 3:
        raise ConnectionError("payment service down")
    return f"paid {order}"

@app.task
def checkout(order: int) -> None:
    flaky.enqueue(order)
"""

TESTS = """
import time

from conveyor.testing import assert_enqueued, drain

from shop.tasks import app, checkout, flaky


def test_the_fixture_is_the_projects_app_on_a_fresh_sqlite_file(conveyor_app, conveyor_url):
    assert conveyor_app is app and conveyor_app.url == conveyor_url
    assert conveyor_app.url.startswith("sqlite:///")


def test_a_task_that_retries_twice_then_succeeds(conveyor_app):
    with conveyor_app.inline():
        job = flaky.enqueue(7)
    assert job.result(timeout=0) == "paid 7"
    assert conveyor_app.get_job(job.id).attempts == 3


def test_drain_and_assert_enqueued(conveyor_app):
    checkout.enqueue(8)
    assert_enqueued(checkout, args=[8], count=1)
    drain(conveyor_app)
    assert_enqueued(flaky, args=[8], count=1, state="retry")
    drain(conveyor_app, advance=3600)
    assert_enqueued(flaky, args=[8], count=1, state="completed")


def test_each_test_starts_empty(conveyor_app):
    assert conveyor_app.stats().total("completed") == 0
"""


def _project(root: Path, pyproject: str) -> Path:
    (root / "shop").mkdir()
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "tasks.py").write_text(textwrap.dedent(TASKS))
    (root / "tests").mkdir()
    (root / "tests" / "test_shop.py").write_text(textwrap.dedent(TESTS))
    (root / "pyproject.toml").write_text(textwrap.dedent(pyproject))
    return root


def _pytest(root: Path, *args: str, autoload: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONVEYOR_"))}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(root)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "--durations-min=0",
        *args,
    ]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("pyproject", "autoload"),
    [
        # The app named the way the CLI finds it, the plugin loaded by its entry point.
        ('[tool.conveyor]\napp = "shop.tasks:app"\n', True),
        # Named in pytest's own settings, the plugin loaded by -p alone.
        ('[tool.pytest.ini_options]\nconveyor_app = "shop.tasks:app"\n', False),
    ],
)
def test_a_users_suite_runs_on_a_fresh_store_per_test(tmp_path: Path, pyproject: str, autoload: bool) -> None:
    root = _project(tmp_path, pyproject)
    result = _pytest(root, *(() if autoload else ("-p", "conveyor.testing")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    durations = re.search(
        r"([\d.]+)s call +tests/test_shop.py::test_a_task_that_retries_twice_then_succeeds", result.stdout
    )
    assert durations is not None, result.stdout
    # Setup (a fresh SQLite file) plus the call: under 50 ms on a quiet machine; the bound
    # here leaves room for a shared one (the report quotes the measured figure).
    setup = re.search(
        r"([\d.]+)s setup +tests/test_shop.py::test_a_task_that_retries_twice_then_succeeds", result.stdout
    )
    total = float(durations[1]) + (float(setup[1]) if setup else 0.0)
    print(f"retries-twice test: {total * 1000:.1f} ms (setup + call)")
    assert total < 0.5, result.stdout


def test_without_a_named_app_the_fixture_is_a_fresh_app(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            """
            def test_fresh(conveyor_app, conveyor_url):
                @conveyor_app.task
                def double(x: int) -> int:
                    return 2 * x

                with conveyor_app.inline():
                    assert double.enqueue(21).result(0) == 42
                assert conveyor_app.url == conveyor_url
            """
        )
    )
    # -p beside the entry point: the plugin is loaded once (both go by the name conveyor.testing).
    result = _pytest(tmp_path, "-p", "conveyor.testing")
    assert result.returncode == 0, result.stdout + result.stderr
