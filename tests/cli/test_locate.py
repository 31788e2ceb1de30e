"""Every command finds the app the same way: --app, --url, $CONVEYOR_APP, pyproject.toml,
$CONVEYOR_URL, the default; and says what it found when the command line did not name it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from .helpers import ROOT, cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The quickstart's project: tasks.py with an app on jobs.db, named in pyproject.toml."""
    (tmp_path / "shop_tasks.py").write_text(
        textwrap.dedent(
            """
            from conveyor import Conveyor

            app = Conveyor("sqlite:///jobs.db")
            other = Conveyor("sqlite:///other.db")

            @app.task(name="add")
            def add(a: int, b: int) -> int:
                return a + b

            @other.task(name="add")
            def add_other(a: int, b: int) -> int:
                return a + b
            """
        )
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\n\n[tool.conveyor]\napp = "shop_tasks:app"\n'
    )
    return tmp_path


def test_pyproject_app_is_used_by_every_command_and_announced(project: Path) -> None:
    enqueued = cli("enqueue", "add", "--args", "[1, 2]", cwd=project)
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    assert enqueued.stderr == "conveyor: app shop_tasks:app (from pyproject.toml), store sqlite:///jobs.db\n"

    listed = cli("jobs", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert [orjson.loads(line)["id"] for line in listed.stdout.splitlines()] == [job_id]
    assert "from pyproject.toml" in listed.stderr

    ran = cli("worker", "--burst", cwd=project)
    assert ran.returncode == 0, ran.stderr
    shown = cli("show", job_id, "--json", cwd=project)
    assert orjson.loads(shown.stdout)["result"] == 3, shown.stderr
    assert not (project / "conveyor.db").exists()


def test_order_app_flag_then_url_flag_then_env_then_pyproject(project: Path) -> None:
    cli("enqueue", "shop_tasks:other", "add", "--args", "[1, 1]", cwd=project)
    env = {"CONVEYOR_APP": "shop_tasks:other"}
    by_env = cli("jobs", "--json", cwd=project, env=env)
    assert len(by_env.stdout.splitlines()) == 1
    assert by_env.stderr == "conveyor: app shop_tasks:other (from $CONVEYOR_APP), store sqlite:///other.db\n"

    by_flag = cli("jobs", "--json", "--app", "shop_tasks:app", cwd=project, env=env)
    assert by_flag.stdout == "" and by_flag.stderr == "", "an explicit --app is not announced"
    by_url = cli("jobs", "--json", "--url", "sqlite:///other.db", cwd=project, env=env)
    assert len(by_url.stdout.splitlines()) == 1 and by_url.stderr == ""


def test_without_app_the_store_url_or_default_is_said(tmp_path: Path) -> None:
    out = cli("info", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("conveyor: store sqlite:///conveyor.db: the default; no --app")
    env = {"CONVEYOR_URL": f"sqlite:///{tmp_path}/x.db"}
    out = cli("info", "--json", cwd=tmp_path, env=env)
    assert out.stderr == f"conveyor: store sqlite:///{tmp_path}/x.db (from $CONVEYOR_URL)\n"


def test_announced_url_hides_the_password(tmp_path: Path) -> None:
    # Nothing listens on port 1: the command fails, but says which store it tried, safely.
    out = cli("info", cwd=tmp_path, env={"CONVEYOR_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert out.returncode == 1
    assert "redis://:***@127.0.0.1:1/0 (from $CONVEYOR_URL)" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


def test_commands_that_run_tasks_need_an_app(tmp_path: Path) -> None:
    for args in (("worker", "--burst"), ("enqueue", "add")):
        out = cli(*args, cwd=tmp_path)
        assert out.returncode == 2, out
        assert "which app? give MODULE:APP" in out.stderr and "[tool.conveyor]" in out.stderr


def test_bad_app_setting_says_where_it_came_from(project: Path) -> None:
    out = cli("info", cwd=project, env={"CONVEYOR_APP": "shop_tasks:nope"})
    assert out.returncode == 1
    assert "Error: module 'shop_tasks' has no attribute 'nope' (from $CONVEYOR_APP)" in out.stderr
    (project / "pyproject.toml").write_text("[tool.conveyor]\napp = 3\n")
    out = cli("info", cwd=project)
    assert "[tool.conveyor] app must be a string" in out.stderr


def test_locate_does_not_import_the_cli() -> None:
    code = "import sys, conveyor.locate; sys.exit('conveyor.cli' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
        == 0
    )
