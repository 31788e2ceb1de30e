"""What every benchmark task calls: append the time it finished to ``$POOL_BENCH_MARKS``.

One ``O_APPEND`` write a run, on a file opened once per process, so children and threads
never interleave within a line. The drain rate is then (runs - 1) / (last - first): worker
and child start-up are left out, for every system alike.
"""

from __future__ import annotations

import os
import time

_fds: dict[int, int] = {}


def mark() -> None:
    pid = os.getpid()
    fd = _fds.get(pid)
    if fd is None:
        fd = _fds[pid] = os.open(
            os.environ["POOL_BENCH_MARKS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
    os.write(fd, b"%.6f\n" % time.time())


def spin(seconds: float) -> None:
    """Keep the CPU busy for ``seconds``: a CPU-bound task, holding the GIL throughout."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
