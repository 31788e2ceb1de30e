"""Running ``conveyor`` as a user does: in a pipe at 80 columns, or on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS`` in ``cwd`` under a pipe at 80 columns, with no CONVEYOR_* variables
    but the ones given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        env={**base, "PYTHONPATH": str(ROOT), "COLUMNS": "80", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def on_terminal(
    *args: str, cwd: Path, env: dict[str, str] | None = None, columns: int = 80, typed: bytes = b""
) -> tuple[int, str]:
    """``conveyor ARGS`` with stdin, stdout and stderr on a pseudo-terminal of ``columns``,
    ``typed`` already typed at it; (exit code, everything it wrote)."""
    import fcntl
    import struct
    import termios

    base = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    base.pop("COLUMNS", None)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", *args],
        env={**base, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", **(env or {})},
        cwd=cwd,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    if typed:
        os.write(main, typed)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    code = proc.wait(60)
    os.close(main)
    return code, out.decode()
