"""What every test directory shares: the ``conveyor`` command and ``conveyor worker``
processes, run as a user runs them (a fresh interpreter, ``python -m conveyor``).

The store fixtures (``store``, ``store_url``) are in ``tests/conftest.py``. Nothing here
imports pytest at module level: the apps that worker processes load (``tests/*/..._app.py``)
import ``record_run`` from here, and a worker should not import a test framework to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

if TYPE_CHECKING:
    from conveyor import Conveyor

ROOT = Path(__file__).resolve().parents[1]
#: The environment variable a test app reads for the file its tasks append their runs to.
RUN_LOG_ENV = "CONVEYOR_RUN_LOG"


class _Server(Protocol):
    def start(self) -> Self: ...


_S = TypeVar("_S", bound=_Server)


def in_ci() -> bool:
    """``CI`` is set (to anything but 0/false/no): skips fail (``tests/conftest.py``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def start_server(factory: Callable[[], _S]) -> _S:
    """``factory().start()``; a server binary that is not installed skips the test (and so,
    under CI, fails it), with the package to install in the reason."""
    import pytest

    from tests.servers import ServerNotAvailable

    try:
        return factory().start()
    except ServerNotAvailable as exc:
        pytest.skip(str(exc))


def open_or_skip(app: Conveyor) -> Conveyor:
    """Open the app's store now: a store whose extra is not installed (``conveyor[redis]``,
    ``conveyor[postgres]``) skips the test with the reason (and so, under CI, fails it)."""
    import pytest

    from conveyor.errors import ConfigurationError

    try:
        app.backend  # noqa: B018 - the property opens the store
    except ConfigurationError as exc:
        if "extra: pip install" in str(exc):
            pytest.skip(str(exc))
        raise
    return app


def conveyor_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a ``conveyor`` process: this one's, the store URL, and the repo on
    the import path so that ``tests.*`` apps load."""
    return {**os.environ, "CONVEYOR_URL": url, "PYTHONPATH": str(ROOT), **extra}


def run_conveyor(
    *args: str, url: str, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``conveyor ARGS`` to the end; its exit code and output as text."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env=conveyor_env(url, COLUMNS="200"),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def record_run(tag: str) -> None:
    """Append ``<tag> <pid>`` to the run log (``$CONVEYOR_RUN_LOG``). One short O_APPEND
    write is atomic, so several worker processes can share the log, and a duplicate can be
    traced to the process that ran it."""
    fd = os.open(os.environ.get(RUN_LOG_ENV, os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class WorkerProcesses:
    """``conveyor worker TARGET`` processes on one store, each in its own process group, its
    output in ``tmp/worker-N.log``; every one still running is killed by ``close()``.

    ``app`` is the test process's view of the same app (same store and namespace), to
    enqueue into and inspect. ``env`` adds to ``conveyor_env(url)``; the run log is
    ``tmp/runs.log``.
    """

    def __init__(self, target: str, app: Conveyor, tmp: Path, url: str, **env: str) -> None:
        self.target = target
        self.app = app
        self.tmp = tmp
        self.url = url
        self.run_log = tmp / "runs.log"
        self.env = conveyor_env(url, **{RUN_LOG_ENV: str(self.run_log), **env})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"worker-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "worker", self.target, *args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 the worker and everything in its process group (a supervisor's children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker-*.log")))

    def runs(self) -> list[tuple[str, int]]:
        """``(tag, pid)`` of every run so far, in the order they were logged. A line a worker
        is writing at this moment can be read in part (its O_APPEND write is atomic only
        against other writers, not against this read): only lines already ended are read."""
        if not self.run_log.exists():
            return []
        text = self.run_log.read_text()
        out: list[tuple[str, int]] = []
        for line in text[: text.rfind("\n") + 1].splitlines():
            tag, _, pid = line.partition(" ")
            out.append((tag, int(pid or 0)))
        return out

    def tags(self) -> list[str]:
        return [tag for tag, _ in self.runs()]

    def counts(self) -> Counter[str]:
        return Counter(self.tags())

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> float:
        """Poll until ``condition()``; returns the seconds it took. On timeout the assertion
        carries the tail of the workers' logs."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"timed out after {timeout} s {what}; worker logs:\n{self.logs()[-6000:]}"
                )
            time.sleep(0.05)
        return time.monotonic() - start

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        self.app.close()
