"""What every benchmark no-op task calls: the cheapest way to say "done" or "started after".

* ``tick()``: counts runs in this worker process (an ``itertools.count``: one C call, safe
  under the GIL without a lock); when the count reaches ``$BENCH_DONE_N`` it creates the
  marker file ``$BENCH_DONE_FILE`` (and ``$BENCH_DONE_FILE.first`` at the first run, whose
  mtime tells the worker's start-up time, and ``$BENCH_DONE_FILE.steady`` at run
  ``STEADY_FROM``, whose mtime starts the steady rate). No round-trip to any store.
* ``latency(ts)``: appends ``time.time() - ts`` (seconds) as one line to ``$BENCH_LAT_FILE``,
  opened ``O_APPEND`` once per process, so concurrent threads and processes never interleave
  within a line.
"""

from __future__ import annotations

import itertools
import os
import time

_done_n = int(os.environ.get("BENCH_DONE_N") or 0)
_done_file = os.environ.get("BENCH_DONE_FILE", "")
_lat_file = os.environ.get("BENCH_LAT_FILE", "")
_counter = itertools.count(1)
#: the steady drain rate is timed from this completion to the last (every driver, every language)
STEADY_FROM = 1_000
_fd: dict[int, int] = {}


def tick() -> None:
    if _done_n and _done_file:
        count = next(_counter)
        if count == 1:  # when the first job ran: start-up time of the worker
            os.close(os.open(_done_file + ".first", os.O_WRONLY | os.O_CREAT, 0o644))
        if count == STEADY_FROM:
            os.close(os.open(_done_file + ".steady", os.O_WRONLY | os.O_CREAT, 0o644))
        if count == _done_n:
            os.close(os.open(_done_file, os.O_WRONLY | os.O_CREAT, 0o644))


def latency(ts: float) -> None:
    elapsed = time.time() - ts
    pid = os.getpid()
    fd = _fd.get(pid)
    if fd is None:
        fd = _fd[pid] = os.open(_lat_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%.9f\n" % elapsed)


def noop(ts: float | None = None) -> None:
    """The body of every Python no-op task: a tick, or a latency sample if ``ts`` is given."""
    if ts is None:
        tick()
    else:
        latency(ts)
