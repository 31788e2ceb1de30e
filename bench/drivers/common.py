"""Shared plumbing for the benchmark drivers: arguments, the result line, process groups,
pacing and percentiles.

Every driver is a script::

    python bench/drivers/<system>.py --url URL --scenario SCENARIO --n N [--rate R] [--variant V]

and prints ONE JSON line last on stdout::

    {"system", "variant", "version", "scenario", "n", "jobs_per_s", "p50_ms", "p99_ms", "seconds"}

Scenarios:

* ``enqueue_one``: N jobs enqueued one call at a time; p50/p99 are per call.
* ``enqueue_bulk``: N jobs through the system's bulk API (chunks); p50/p99 are not given.
* ``drain``: N jobs enqueued first (untimed), then ONE worker process is started and timed
  from its start until all N are done (nothing subtracted: start-up counts).
* ``latency``: an idle worker; N jobs enqueued at a paced rate R/s, each carrying its enqueue
  time; the task records ``time.time() - ts`` when it starts. p50/p99 of that, in ms.

Completion of a drain is seen through a marker file that the task writes when the worker
process has run N jobs (an in-process counter, ~100 ns a job, no round-trip), or through the
system's own burst mode (conveyor, RQ) where it has one.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent
SCENARIOS = ("enqueue_one", "enqueue_bulk", "drain", "latency")

# Environment read by the task modules (see bench/drivers/sink.py).
ENV_DONE_FILE = "BENCH_DONE_FILE"
ENV_DONE_N = "BENCH_DONE_N"
ENV_LAT_FILE = "BENCH_LAT_FILE"
ENV_URL = "BENCH_URL"
#: the store server's main process (set by bench/run.py for Redis and PostgreSQL)
ENV_SERVER_PID = "BENCH_SERVER_PID"


class NotMeasured(Exception):
    """This system cannot run this scenario; the message says why (printed as ``error``)."""


def parse_args(system: str, variants: Sequence[str], argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench/drivers/{system}.py")
    parser.add_argument("--url", required=True, help="store URL: redis://… or sqlite:///path")
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument(
        "--rate", type=float, default=None, help="latency: jobs/s (default 200 Redis, 100 SQLite)"
    )
    parser.add_argument("--variant", default=None, choices=list(variants) or None)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a drain/latency after this")
    args = parser.parse_args(argv)
    if args.variant is None and variants:
        args.variant = variants[0]
    if args.rate is None:
        args.rate = 100.0 if args.url.startswith("sqlite") else 200.0
    if args.n < 1:
        parser.error("--n must be at least 1")
    return args


def result(
    args: argparse.Namespace,
    system: str,
    version: str,
    *,
    seconds: float,
    n: int | None = None,
    p50_ms: float | None = None,
    p99_ms: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    count = args.n if n is None else n
    return {
        "system": system,
        "variant": args.variant,
        "version": version,
        "scenario": args.scenario,
        "n": count,
        "jobs_per_s": round(count / seconds, 1) if seconds > 0 else None,
        "p50_ms": None if p50_ms is None else round(p50_ms, 3),
        "p99_ms": None if p99_ms is None else round(p99_ms, 3),
        "seconds": round(seconds, 4),
        **extra,
    }


def emit(line: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(line), flush=True)


def run_main(
    system: str, variant: str | None, version: Callable[[], str], body: Callable[[], dict[str, Any]]
) -> int:
    """Run ``body`` and print its result line; on error print a line with ``error`` instead.
    Every process started through :func:`spawn` is killed before this returns."""
    install_signal_cleanup()
    try:
        line = body()
        rc = 0
    except NotMeasured as exc:
        line = {
            "system": system,
            "variant": variant,
            "version": _safe(version),
            "error": f"not measured: {exc}",
        }
        rc = 0
    except Exception as exc:
        line = {
            "system": system,
            "variant": variant,
            "version": _safe(version),
            "error": f"{type(exc).__name__}: {exc}",
        }
        rc = 1
    finally:
        kill_all()
    emit(line)
    return rc


def _safe(version: Callable[[], str]) -> str:
    try:
        return version()
    except Exception:
        return "?"


# --------------------------------------------------------------------------- statistics


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, as numpy's default."""
    if not samples:
        raise ValueError("no samples")
    data = sorted(samples)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def timed_calls(n: int, call: Callable[[int], object]) -> tuple[float, list[float]]:
    """Call ``call(i)`` n times; total seconds and per-call seconds."""
    per: list[float] = []
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        t = clock()
        call(i)
        per.append(clock() - t)
    return clock() - start, per


def enqueue_one_result(
    args: argparse.Namespace, system: str, version: str, call: Callable[[int], object]
) -> dict[str, Any]:
    warm = min(50, args.n)
    for i in range(warm):  # connect, load scripts; not timed
        call(i)
    total, per = timed_calls(args.n, call)
    return result(
        args,
        system,
        version,
        seconds=total,
        p50_ms=percentile(per, 50) * 1000,
        p99_ms=percentile(per, 99) * 1000,
    )


def paced(n: int, rate: float, call: Callable[[int], object]) -> float:
    """Call ``call(i)`` n times at ``rate`` per second on an absolute schedule (no drift);
    returns the seconds it took."""
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        call(i)
    return time.perf_counter() - start


def chunks(n: int, size: int) -> Iterator[range]:
    for lo in range(0, n, size):
        yield range(lo, min(n, lo + size))


# --------------------------------------------------------------------------- marker files


class Workdir:
    """A temporary directory for one driver run: the done marker and the latency file."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
        self.done = self.path / "done"
        self.lat = self.path / "latency.txt"
        atexit.register(self.remove)

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)

    def env(self, n: int | None = None, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env[ENV_DONE_FILE] = str(self.done)
        env[ENV_LAT_FILE] = str(self.lat)
        env["PYTHONUNBUFFERED"] = "1"
        if n is not None:
            env[ENV_DONE_N] = str(n)
        else:
            env.pop(ENV_DONE_N, None)
        env.update(extra)
        return env

    def startup(self, spawned_at: float) -> float | None:
        """Seconds from the worker's spawn (``time.time()``) to its first job, from the mtime
        of the marker the first job created."""
        try:
            return round(os.stat(f"{self.done}.first").st_mtime - spawned_at, 3)
        except FileNotFoundError:
            return None

    def steady(self, n: int) -> float | None:
        """The steady drain rate (jobs/s): from the ``STEADY_FROM``-th job run to the last, from
        the mtimes of the markers the task wrote at those two runs; None for a short drain."""
        from bench.drivers.sink import STEADY_FROM

        if n <= STEADY_FROM:
            return None
        try:
            seconds = os.stat(self.done).st_mtime - os.stat(f"{self.done}.steady").st_mtime
        except FileNotFoundError:
            return None
        return round((n - STEADY_FROM) / seconds, 1) if seconds > 0 else None

    def latencies(self) -> list[float]:
        """Latencies in seconds recorded so far; warm-up jobs (ts=0) are left out."""
        try:
            text = self.lat.read_text()
        except FileNotFoundError:
            return []
        values = []
        for line in text.split("\n"):
            if line:
                with contextlib.suppress(ValueError):
                    values.append(float(line))
        return [v for v in values if v < 1e6]

    def lines(self) -> int:
        try:
            with self.lat.open("rb") as fh:
                return fh.read().count(b"\n")
        except FileNotFoundError:
            return 0


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    poll: float = 0.0005,
) -> float:
    """Poll until ``predicate()``; the monotonic time it became true. Raises if ``proc`` exits
    first or time runs out."""
    deadline = time.perf_counter() + timeout
    while True:
        if predicate():
            return time.perf_counter()
        if proc is not None and proc.poll() is not None:
            if predicate():
                return time.perf_counter()
            raise RuntimeError(f"worker exited with {proc.returncode} before {what}; log: {tail_log(proc)}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s; log: {tail_log(proc)}")
        time.sleep(poll)


def latency_result(
    args: argparse.Namespace,
    system: str,
    version: str,
    wd: Workdir,
    proc: subprocess.Popen[bytes],
    enqueue: Callable[[float], object],
    warmup: int = 3,
) -> dict[str, Any]:
    """The latency scenario once the idle worker ``proc`` runs: warm up, pace, collect."""
    for _ in range(warmup):
        enqueue(0.0)
    wait_for(lambda: wd.lines() >= warmup, 120.0, "warm-up jobs", proc, poll=0.01)
    time.sleep(0.5)  # let the worker go idle again
    paced(args.n, args.rate, lambda _i: enqueue(time.time()))
    wait_for(lambda: wd.lines() >= warmup + args.n, args.timeout, "latency jobs", proc, poll=0.01)
    lat = wd.latencies()
    return result(
        args,
        system,
        version,
        seconds=args.n / args.rate,
        n=len(lat),
        p50_ms=percentile(lat, 50) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        rate=args.rate,
    )


def drain_by_marker(
    args: argparse.Namespace,
    system: str,
    version: str,
    wd: Workdir,
    cmd: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Start the worker and time until the task's counter wrote the done marker."""
    server = server_cpu_seconds()
    wall = time.time()
    start = time.perf_counter()
    proc = spawn(cmd, env=env or wd.env(args.n), cwd=cwd, log=wd.path / "worker.log")
    end = wait_for(wd.done.exists, args.timeout, f"drain of {args.n} jobs", proc)
    seconds = end - start
    cpu = tree_cpu_seconds(proc.pid)
    server_cpu = server_cpu_between(server)
    stop(proc)
    return result(
        args,
        system,
        version,
        seconds=seconds,
        cpu_s=round(cpu, 3),
        startup_s=wd.startup(wall),
        steady_per_s=wd.steady(args.n),
        server_cpu_s=server_cpu,
    )


def server_cpu_seconds() -> float | None:
    """CPU seconds used so far by the store server named in ``$BENCH_SERVER_PID``: the process,
    its live children (PostgreSQL's backends) and the children it has reaped (backends that
    have exited); None when not set."""
    pid = os.environ.get(ENV_SERVER_PID)
    if not pid:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    reaped = (int(fields[13]) + int(fields[14])) / ticks  # cutime, cstime
    return reaped + tree_cpu_seconds(int(pid))


def server_cpu_between(before: float | None) -> float | None:
    after = server_cpu_seconds()
    return None if before is None or after is None else round(after - before, 3)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (/proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for ``proc`` to exit; (exit code, user + system CPU seconds it and its reaped
    children used)."""
    deadline = time.perf_counter() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc in _procs:
                _procs.remove(proc)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.perf_counter() > deadline:
            raise TimeoutError(f"worker still running after {timeout:.0f} s; log: {tail_log(proc)}")
        time.sleep(0.0005)


# --------------------------------------------------------------------------- processes

_procs: list[subprocess.Popen[bytes]] = []
_logs: dict[int, Path] = {}


def spawn(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group (session), output to ``log``."""
    out: Any = subprocess.DEVNULL
    if log is not None:
        out = log.open("ab")
    try:
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=str(cwd or REPO),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log is not None:
            out.close()
    _procs.append(proc)
    if log is not None:
        _logs[proc.pid] = log
    return proc


def tail_log(proc: subprocess.Popen[bytes] | None, lines: int = 15) -> str:
    if proc is None or proc.pid not in _logs:
        return "(none)"
    try:
        text = _logs[proc.pid].read_text(errors="replace")
    except OSError:
        return "(none)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the process group, then SIGKILL it and any descendant left after ``grace``."""
    victims = _descendants(proc.pid)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc in _procs:
        _procs.remove(proc)


def kill_all() -> None:
    for proc in list(_procs):
        stop(proc, grace=1.0)


def install_signal_cleanup() -> None:
    atexit.register(kill_all)

    def handler(signum: int, _frame: object) -> None:
        kill_all()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def run_quiet(cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600.0) -> str:
    """Run a helper command to completion (own process group, killed on timeout); stdout."""
    proc = subprocess.Popen(
        list(cmd),
        env=env,
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {err.decode(errors='replace')[-800:]}")
    return out.decode()


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite:/// URL: {url}")
    return url[len("sqlite:///") :]  # sqlite:///rel.db is relative, sqlite:////abs.db absolute


def flush_redis(url: str) -> None:
    """Empty the benchmark's Redis database (the bench server is ours alone)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


async def timed_calls_async(n: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, list[float]]:
    """``timed_calls`` for coroutines, awaited one after another on the running loop."""
    per: list[float] = []
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        t = clock()
        await call(i)
        per.append(clock() - t)
    return clock() - start, per


async def enqueue_one_result_async(
    args: argparse.Namespace, system: str, version: str, call: Callable[[int], Awaitable[object]]
) -> dict[str, Any]:
    for i in range(min(50, args.n)):
        await call(i)
    total, per = await timed_calls_async(args.n, call)
    return result(
        args,
        system,
        version,
        seconds=total,
        p50_ms=percentile(per, 50) * 1000,
        p99_ms=percentile(per, 99) * 1000,
    )


async def gather_chunks(n: int, size: int, call: Callable[[int], Awaitable[object]]) -> None:
    """Await ``call(i)`` for i < n, ``size`` at a time concurrently (``asyncio.gather``)."""
    import asyncio

    for chunk in chunks(n, size):
        await asyncio.gather(*(call(i) for i in chunk))
