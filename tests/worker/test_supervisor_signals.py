"""The supervisor's SIGTERM against the child it is starting at that moment."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from conveyor.worker.supervisor import Supervisor

# A stand-in for a worker: the first one exits at once (so the supervisor starts another),
# the next one exits 0 on SIGTERM, as a worker does after its grace period.
CHILD = """
import os, signal, sys, time
marker = sys.argv[1]
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit(1)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(0.05)
"""


class SignalledWhileReplacing(Supervisor):
    """SIGTERM arrives while the replacement of a dead child is being started: the handler
    runs before the new child is in ``children``."""

    def _spawn(self) -> subprocess.Popen[bytes]:
        child = super()._spawn()
        if self.children:  # a replacement (the first children are started into an empty list)
            signal.raise_signal(signal.SIGTERM)
        return child


def test_a_child_started_as_sigterm_arrives_is_told_too(tmp_path: Path) -> None:
    command = [sys.executable, "-c", CHILD, str(tmp_path / "first-ran")]
    supervisor = SignalledWhileReplacing(command, processes=1, grace=30.0)
    handlers = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT)}
    started = time.monotonic()
    try:
        assert supervisor.run() == 0
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for child in supervisor.children:
            if child.poll() is None:
                child.kill()
                child.wait()
    took = time.monotonic() - started
    assert supervisor.replaced == 1
    # Told at once, not killed at the deadline (grace + 5 s).
    assert supervisor.children[0].returncode in (0, -signal.SIGTERM), supervisor.children[0].returncode
    assert took < 10, took
