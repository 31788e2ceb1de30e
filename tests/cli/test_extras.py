"""A missing extra is one line naming it, never a traceback: the command is run with the
module made unimportable (``sys.modules[name] = None``, as if it were not installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT

RUN = (
    "import sys; sys.modules[{name!r}] = None; sys.argv[0] = 'conveyor'; "
    "from conveyor.cli import main; main()"
)


def without(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(PYTHONPATH=str(ROOT), CONVEYOR_URL=f"sqlite:///{cwd}/jobs.db")
    return subprocess.run(
        [sys.executable, "-c", RUN.format(name=module), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("module", "args", "line"),
    [
        *(
            (
                module,
                ("dashboard", "tests.worker.tasks_app:app"),
                "pip install 'conveyor[dashboard]'",
            )
            for module in ("itsdangerous", "starlette", "jinja2", "uvicorn")
        ),
        ("redis", ("info", "--url", "redis://127.0.0.1:1/0"), "pip install 'conveyor[redis]'"),
        ("psycopg", ("info", "--url", "postgresql://127.0.0.1:1/x"), "pip install 'conveyor[postgres]'"),
        ("cryptography", ("info", "--app", "tests.cli.crypto_app:app"), "pip install 'conveyor[crypto]'"),
        (
            "prometheus_client",
            ("info", "--app", "tests.cli.metrics_app:app"),
            "the prometheus extra (prometheus_client is not installed): pip install 'conveyor[prometheus]'",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    tmp_path: Path, module: str, args: tuple[str, ...], line: str
) -> None:
    out = without(module, *args, cwd=tmp_path)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    errors = [x for x in out.stderr.splitlines() if x.startswith("Error: ")]
    assert len(errors) == 1 and line in errors[0], out.stderr
