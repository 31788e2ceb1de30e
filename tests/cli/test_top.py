"""``conveyor top`` as an operator runs it: in a real terminal (tmux), refreshing as jobs come
in, quitting on q and on Ctrl-C; and as one snapshot in a pipe."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.job import Failure

from .helpers import ROOT, cli


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Conveyor]:
    app = Conveyor(f"sqlite:///{tmp_path}/jobs.db")
    yield app
    app.close()


def _fill(app: Conveyor) -> str:
    """Three mail jobs waiting and one dead report job; the dead job's id."""
    send = app.task(name="mail.send", queue="mail")(_noop)
    report = app.task(name="reports.build", retries=0)(_noop)
    for _ in range(3):
        send.enqueue()
    dead = report.enqueue()
    [record] = app.backend.fetch(["default"], 1, "w", 30, time.time())
    app.backend.fail([Failure(record.id, "KeyError: 'region'", None, None)], "w", time.time())
    return dead.id


def _noop() -> None: ...


class Tmux:
    """One tmux server of its own (its own socket), one window of a fixed size."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"conveyor-test-{os.getpid()}-{tmp.name}"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "top").stdout

    def wait_for(self, check: Callable[[str], bool], timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("tmux is not installed (scripts/test.sh installs it)")
        pytest.skip("tmux is not installed")
    session = Tmux(tmp_path)
    yield session
    session("kill-server")


def _start_top(tmux: Tmux, tmp_path: Path, url: str) -> Path:
    """``conveyor top`` in a 100x32 tmux window; the file its exit code is written to."""
    exit_file = tmp_path / "exit"
    env = f"CONVEYOR_URL={shlex.quote(url)} PYTHONPATH={shlex.quote(str(ROOT))} TERM=xterm-256color"
    command = (
        f"cd {shlex.quote(str(tmp_path))} && env {env} {shlex.quote(sys.executable)} -m conveyor top "
        f"--interval 0.2; echo $? > {shlex.quote(str(exit_file))}; sleep 60"
    )
    started = tmux("new-session", "-d", "-s", "top", "-x", "100", "-y", "32", command)
    assert started.returncode == 0, started.stderr
    return exit_file


def _exit_code(path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, "conveyor top did not exit"
        time.sleep(0.05)
    return int(path.read_text())


def test_top_draws_refreshes_and_quits_on_q(tmux: Tmux, tmp_path: Path, app: Conveyor) -> None:
    dead = _fill(app)
    exit_file = _start_top(tmux, tmp_path, app.url)
    screen = tmux.wait_for(lambda s: "conveyor top" in s and "mail" in s)
    mail = next(line for line in screen.splitlines() if line.startswith("mail "))
    assert mail.split()[:6] == ["mail", "3", "0", "0", "0", "0"], screen
    default = next(line for line in screen.splitlines() if line.startswith("default "))
    assert default.split()[5] == "1", screen
    failure = next(line for line in screen.splitlines() if line.startswith(dead))
    assert "dead" in failure and "reports.build" in failure and "KeyError: 'region'" in failure
    assert "no workers alive" in screen

    app.tasks["mail.send"].enqueue()
    tmux.wait_for(lambda s: any(line.split()[:2] == ["mail", "4"] for line in s.splitlines()))

    tmux("send-keys", "-t", "top", "q")
    assert _exit_code(exit_file) == 0
    # The alternate screen is left: the shell's screen is back, without the view.
    assert "conveyor top" not in tmux.screen()


def test_top_quits_on_ctrl_c(tmux: Tmux, tmp_path: Path, app: Conveyor) -> None:
    _fill(app)
    exit_file = _start_top(tmux, tmp_path, app.url)
    tmux.wait_for(lambda s: "conveyor top" in s)
    tmux("send-keys", "-t", "top", "C-c")
    assert _exit_code(exit_file) == 0


def test_top_in_a_pipe_prints_one_snapshot(tmp_path: Path, app: Conveyor) -> None:
    dead = _fill(app)
    out = cli("top", "--url", app.url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("conveyor top") and "sqlite:///" in out.stdout
    assert any(line.split()[:2] == ["mail", "3"] for line in lines)
    assert any(line.startswith(dead) for line in lines)
    assert all(len(line) <= 80 for line in lines), out.stdout
