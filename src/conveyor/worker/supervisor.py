"""``--processes N``: a parent that keeps N worker processes running.

Each child is a full worker (``conveyor worker … --processes 1``) in its own session, so a
Ctrl-C in the terminal reaches the supervisor once and is forwarded once. A child that dies
(kill -9, OOM, a stuck task thread) is replaced; its jobs come back through their leases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # (imported by the methods that start and wait for children: a worker process imports
    # this module for SUPERVISED_ENV and watch_parent, and never starts one)
    import subprocess

log = logging.getLogger("conveyor.supervisor")

SUPERVISED_ENV = "CONVEYOR_SUPERVISED"


class Supervisor:
    def __init__(self, command: Sequence[str], processes: int, grace: float, burst: bool = False) -> None:
        self.command = list(command)
        self.burst = burst
        self.processes = processes
        self.grace = grace
        self.children: list[subprocess.Popen[bytes]] = []
        self.replaced = 0
        self._stopping = threading.Event()
        self._signals = 0
        self._told: set[int] = set()  # children sent SIGTERM (a second one means "exit now")

    def _spawn(self) -> subprocess.Popen[bytes]:
        import subprocess

        env = {**os.environ, SUPERVISED_ENV: str(os.getpid())}
        return subprocess.Popen(self.command, env=env, start_new_session=True)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.children = [self._spawn() for _ in range(self.processes)]
        log.info("supervising %d worker processes: %s", self.processes, [c.pid for c in self.children])
        recent_deaths: list[float] = []
        finished: set[int] = set()
        while not self._stopping.is_set():
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is None or self._stopping.is_set() or i in finished:
                    continue
                if self.burst and code == 0:
                    finished.add(i)  # a burst worker that found nothing more to do
                    continue
                log.warning("worker process %d exited with %s; starting a new one", child.pid, code)
                now = time.monotonic()
                recent_deaths = [t for t in recent_deaths if now - t < 10] + [now]
                if len(recent_deaths) > 3 * self.processes:
                    # Crashing on start (a bad import, an unreachable store): do not spin.
                    time.sleep(min(5.0, 0.2 * len(recent_deaths)))
                self.children[i] = self._spawn()
                self.replaced += 1
            if len(finished) == len(self.children):
                break
            self._stopping.wait(0.2)
        return self._stop_children()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("%s: stopping %d workers gracefully", signal.Signals(signum).name, len(self.children))
            self._stopping.set()
            for child in self.children:
                _send(child, signal.SIGTERM)
                self._told.add(child.pid)
        else:
            for child in self.children:
                _send(child, signal.SIGKILL)
            os._exit(1)

    def _stop_children(self) -> int:
        # A child spawned while the signal was handled (a replacement the loop was starting)
        # was not in the list the handler went through: tell it now, or it would run until
        # killed at the deadline.
        for child in self.children:
            if child.pid not in self._told:
                _send(child, signal.SIGTERM)
                self._told.add(child.pid)
        import subprocess

        deadline = time.monotonic() + self.grace + 5
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _send(child, signal.SIGKILL)
                child.wait()
        return 0


def _send(child: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(sig)


def watch_parent(parent_pid: int, on_orphaned: Callable[[], None]) -> None:
    """Stop a supervised worker when its supervisor is gone (killed with -9, say)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        log.warning("supervisor %d is gone; stopping", parent_pid)
        on_orphaned()

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()


def child_command(argv: Sequence[str]) -> list[str]:
    """This worker command line, for one child process."""
    return [sys.executable, "-m", "conveyor", *argv]
