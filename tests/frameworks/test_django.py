"""conveyor.contrib.django in a real Django project (tests/frameworks/django_project) on
SQLite and on PostgreSQL, driven through its manage.py: migrations, enqueue inside
``transaction.atomic()``, a real ``manage.py conveyor_worker`` process, results read back
through django-tasks' ``TaskResult``, the staff-only dashboard, and the backport's backend
tests ported to ConveyorBackend (``manage.py test shop``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT

pytest.importorskip("django")
pytest.importorskip("django_tasks")

PROJECT = Path(__file__).parent / "django_project"


@dataclass
class Project:
    """The test project on one database; its conveyor store is that same database."""

    env: dict[str, str]

    def manage(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def scenario(self, name: str, data: Any = None) -> Any:
        return json.loads(self.manage("scenario", name, json.dumps(data)).stdout)


def _env(database: str, store: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHOP_DATABASE_URL": database,
        "CONVEYOR_URL": store,
        "SHOP_OTHER_URL": f"sqlite:///{tmp}/other-jobs.db",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's SQLite database, migrated once; each test gets a copy."""
    tmp = tmp_path_factory.mktemp("django-template")
    Project(_env(f"sqlite:///{tmp}/shop.db", f"sqlite:///{tmp}/jobs.db", tmp)).manage("migrate", "-v0")
    return tmp / "shop.db"


@pytest.fixture(scope="session")
def postgres_template(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL database migrated once; each test's database is created from it."""
    name = f"shop_template_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    Project(_env(url, url, tmp_path_factory.mktemp("django-pg"))).manage("migrate", "-v0")
    return name


@pytest.fixture(params=["sqlite", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    yield from _project(request.param, request, tmp_path)


@pytest.fixture
def sqlite_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    yield from _project("sqlite", request, tmp_path)


def _project(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    if kind == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "shop.db")
        yield Project(_env(f"sqlite:///{tmp_path}/shop.db", f"sqlite:///{tmp_path}/jobs.db", tmp_path))
        return
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    name = f"shop_{uuid.uuid4().hex[:10]}"
    server.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = server.database_url(name)
    try:
        yield Project(_env(url, url, tmp_path))
    finally:
        server.drop_database(name)


def test_enqueue_in_atomic_commits_and_rolls_back_with_the_block(project: Project) -> None:
    found = project.scenario("atomic")
    # PostgreSQL, same database, psycopg 3: the job is written in Django's transaction.
    assert found["joins"] is (project.env["CONVEYOR_URL"].startswith("postgresql"))
    assert found["seen_before_commit"] is False
    assert found["unique_before_commit"] is False
    assert found["unique"] == ["none", "pending"]  # the second enqueue was a duplicate
    assert found["states"] == {"kept": "pending", "kept_task": "pending", "lost": None, "lost_task": None}
    assert "argument 0 of task 'shop.tasks.ship'" in found["bad_argument"]


def test_worker_runs_conveyor_and_django_tasks_and_results_read_back(project: Project) -> None:
    ids = project.scenario("enqueue")
    worker = project.manage("conveyor_worker", "--burst", "--concurrency", "2")
    assert "stopped after 6 jobs" in worker.stderr, worker.stderr
    found = project.scenario("results", ids)
    assert found["orders"] == ["r1", "shipped:a"]
    assert found["ship"] == {"state": "completed", "value": "a"}
    add = found["add"]
    assert (add["status"], add["value"], add["queue"], add["priority"]) == ("SUCCESSFUL", 3, "mail", 5)
    assert found["add_async"]["value"] == 5
    assert found["whoami"]["value"] == [ids["whoami"], 1]
    boom = found["boom"]
    assert (boom["status"], boom["state"], boom["errors"]) == (
        "FAILED",
        "dead",
        [["builtins.ValueError", "ValueError: boom"]],
    )
    later = found["later"]
    assert (later["status"], later["state"], later["priority"]) == ("READY", "scheduled", -7)


def test_conveyor_worker_takes_every_worker_option(project: Project) -> None:
    served = project.scenario("worker_app")
    assert served["same"] and served["schedules"] == ["shop.tasks.digest"]
    assert {"shop.tasks.ship", "shop.tasks.add", "shop.tasks.whoami"} <= set(served["tasks"])
    assert "shop.tasks.multiply" not in served["tasks"]  # the other backend's store
    help_text = project.manage("conveyor_worker", "--help").stdout
    from conveyor import cli

    for param in cli.worker.params:
        if param.name not in ("target", "app_target"):
            assert param.opts[0] in help_text
    if project.env["CONVEYOR_URL"].startswith("sqlite"):
        # Two supervised processes, and a child-process pool: each child sets Django up
        # itself through the same MODULE:APP target.
        project.scenario("enqueue")
        project.manage("conveyor_worker", "--burst", "--processes", "2", "--log-level", "warning")
        ids = project.scenario("enqueue")
        project.manage("conveyor_worker", "--burst", "--pool", "process", "--concurrency", "1")
        assert project.scenario("results", ids)["add"]["value"] == 3


def test_a_tasks_backend_with_its_own_store_has_its_own_worker(sqlite_project: Project) -> None:
    found = sqlite_project.scenario("other")
    assert found["own_store"] and found["url"].endswith("other-jobs.db")
    sqlite_project.manage("conveyor_worker", "--burst")  # the project's app: not this job
    assert sqlite_project.scenario("other_result", found["id"])["status"] == "READY"
    sqlite_project.manage("conveyor_worker", "--burst", "--tasks-backend", "other")
    assert sqlite_project.scenario("other_result", found["id"]) == {"status": "SUCCESSFUL", "value": 42}


def test_dashboard_is_for_staff_behind_django_login(sqlite_project: Project) -> None:
    found = sqlite_project.scenario("dashboard")
    assert found["anonymous"] == [302, "/admin/login/?next=/admin/jobs/"]
    assert found["plain"] == 403
    assert (found["staff"], found["staff_page"], found["static_link"], found["queues"]) == (
        200,
        True,
        True,
        200,
    )
    assert found["pause"] in (200, 303) and found["paused"] == ["mail"]
    assert found["forged"] == 403


def test_backport_backend_tests_pass_against_conveyor_backend(project: Project) -> None:
    done = project.manage("test", "shop", "-v", "2")
    assert " ... ok" in done.stderr and "FAILED" not in done.stderr, done.stderr
