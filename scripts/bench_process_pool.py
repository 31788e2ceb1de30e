"""``--pool process`` measured (issue 13): a 1 ms CPU-bound task on 2 children against Celery's
prefork pool (``-c 2``, its own Redis broker) in the same run, and the no-op drain of
``--pool process`` against ``--pool thread`` on SQLite.

    .venv/bin/python scripts/bench_process_pool.py [--repeat 3] [--base /path/to/old/src]

Each task appends the time it finished to a file; a rate is (runs - 1) / (last - first), so
start-up (of the worker, its children, Celery's) counts for no system. ``--base`` adds the
no-op drain of ``--pool thread`` with another checkout's ``src`` first on PYTHONPATH: the A/B
of this change's cost to the thread pool (runs alternate, so drift hits both alike). Prints
the median and every run, and for the thread pool the worker's CPU time a job (start-up
included: the same in A and B), which a machine shared with other work disturbs less than
the wall-clock rate. Needs ``celery[redis]`` (``pip install -e '.[bench]'``) and
``redis-server``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pool_bench import conveyor_app  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu-jobs", type=int, default=2000)
    parser.add_argument("--noop-jobs", type=int, default=5000)
    parser.add_argument("--base", type=Path, default=None, help="another checkout's src, for the A/B")
    parser.add_argument("--only", default="", help="run the cases whose names contain one of A|B|...")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pool-bench-"))
    redis_url, redis = start_redis(tmp)
    try:
        cases = make_cases(args, tmp, redis_url)
        if args.only:
            cases = {k: v for k, v in cases.items() if any(part in k for part in args.only.split("|"))}
        rates: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.repeat):
            for name, run in cases.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                rate = run()
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                rates[name].append(rate)
                used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                jobs = args.noop_jobs if name.startswith("no-op") else args.cpu_jobs
                cpu[name].append(used / jobs * 1e6)
                print(
                    f"round {round_ + 1} {name}: {rate:,.0f} jobs/s, {cpu[name][-1]:.1f} µs CPU/job",
                    flush=True,
                )
        print("\nmedian of", args.repeat, "runs:")
        for name, values in rates.items():
            runs = ", ".join(f"{v:,.0f}" for v in values)
            line = f"  {name:46} {statistics.median(values):>8,.0f} jobs/s   ({runs})"
            if "thread" in name:  # the process pool's children are the forkserver's: not counted
                line += f"; {statistics.median(cpu[name]):.1f} µs CPU/job"
            print(line)
    finally:
        redis.terminate()
        redis.wait()
        if not os.environ.get("POOL_BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def make_cases(args: argparse.Namespace, tmp: Path, redis_url: str) -> dict[str, Callable[[], float]]:
    cpu, noop = args.cpu_jobs, args.noop_jobs
    process2 = ["--pool", "process", "-c", "2"]
    cases: dict[str, Callable[[], float]] = {
        "cpu 1 ms, conveyor --pool process -c 2, redis": lambda: conveyor(
            tmp, redis_url, "cpu", cpu, process2
        ),
        "cpu 1 ms, celery prefork -c 2, redis": lambda: celery(tmp, redis_url, cpu, []),
        "cpu 1 ms, celery prefork -c 2 -O fair, redis": lambda: celery(tmp, redis_url, cpu, ["-O", "fair"]),
        "cpu 1 ms, conveyor --pool process -c 2, sqlite": lambda: conveyor(tmp, None, "cpu", cpu, process2),
        "cpu 1 ms, conveyor --pool thread -c 2, sqlite": lambda: conveyor(
            tmp, None, "cpu", cpu, ["--pool", "thread", "-c", "2"]
        ),
        "no-op, conveyor --pool thread, sqlite": lambda: conveyor(tmp, None, "noop", noop, []),
        "no-op, conveyor --pool process -c 2, sqlite": lambda: conveyor(tmp, None, "noop", noop, process2),
    }
    if args.base is not None:
        base = str(args.base.resolve())
        cases["no-op, conveyor --pool thread, sqlite, BASE"] = lambda: conveyor(
            tmp, None, "noop", noop, [], src=base
        )
    return cases


def conveyor(
    tmp: Path, url: str | None, task: str, n: int, options: list[str], src: str | None = None
) -> float:
    """Enqueue ``n`` jobs, drain them with one ``conveyor worker --burst``: the rate."""
    if url is None:
        db = tmp / "jobs.db"
        for leftover in tmp.glob("jobs.db*"):
            leftover.unlink()
        url = f"sqlite:///{db}"
    else:
        flush_redis(url)
    app = conveyor_app.app
    app.close()
    app.url = url
    fn = conveyor_app.cpu if task == "cpu" else conveyor_app.noop
    app.enqueue_many([fn.job() for _ in range(n)])
    app.close()
    marks = fresh(tmp / "marks")
    path = f"{src}:{HERE}:{ROOT / 'src'}" if src else f"{HERE}:{ROOT / 'src'}"
    env = {**os.environ, "CONVEYOR_URL": url, "POOL_BENCH_MARKS": str(marks), "PYTHONPATH": path}
    command = [sys.executable, "-m", "conveyor", "worker", "pool_bench.conveyor_app:app", "--burst"]
    proc = subprocess.run([*command, "--log-level", "WARNING", *options], env=env, cwd=tmp, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"conveyor worker exited with {proc.returncode}")
    return rate(marks, n)


def celery(tmp: Path, broker: str, n: int, options: list[str]) -> float:
    """Publish ``n`` tasks, then run ``celery worker -P prefork -c 2`` until all ran: the rate."""
    flush_redis(broker)
    os.environ["POOL_BENCH_BROKER"] = broker
    from pool_bench import celery_app

    celery_app.app.conf.broker_url = broker
    with celery_app.app.producer_or_acquire() as producer:
        for _ in range(n):
            celery_app.cpu.apply_async(producer=producer)
    marks = fresh(tmp / "marks")
    env = {**os.environ, "POOL_BENCH_BROKER": broker, "POOL_BENCH_MARKS": str(marks), "PYTHONPATH": str(HERE)}
    exe = str(Path(sys.executable).with_name("celery"))
    command = [exe, "-A", "pool_bench.celery_app", "worker", "-P", "prefork", "-c", "2", "-l", "warning"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", *options]
    proc = subprocess.Popen(command, env=env, cwd=tmp, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while count(marks) < n:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"celery worker stopped with {count(marks)} of {n} tasks run")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    return rate(marks, n)


def rate(marks: Path, n: int) -> float:
    times = sorted(float(line) for line in marks.read_text().split())
    if len(times) != n:
        raise SystemExit(f"{len(times)} runs recorded for {n} jobs")
    return (n - 1) / (times[-1] - times[0])


def count(marks: Path) -> int:
    return marks.read_bytes().count(b"\n") if marks.exists() else 0


def fresh(path: Path) -> Path:
    path.unlink(missing_ok=True)
    return path


def start_redis(tmp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*command, "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


if __name__ == "__main__":
    sys.exit(main())
