"""What limits cost (issue 16's figures), per store, medians of interleaved runs.

    python bench/limits_probe.py --store sqlite --main-src /tmp/limits-main/src

1. A/B, no limits anywhere: enqueue N no-op jobs (batches of 1,000) and drain them with one
   in-process worker of 8 threads, once with this tree's conveyor and once with ``--main-src``
   (a copy of main's ``src``: ``git archive main src | tar -x -C /tmp/limits-main``), each in a
   fresh process, A and B taking turns.
2. Limited drains: N jobs of one task (no-op, or sleeping ``--run-ms``), served by 4
   ``conveyor worker`` processes of ``--threads`` threads: unlimited, ``concurrency=50``, and
   ``concurrency=1`` per key over 100 keys. The rate is N over the span from the first start
   to the last finish (process start-up left out); the steady rate leaves out the first and
   last tenth of the jobs (by when they finished): 0.8 N over the span between the two (the
   workers start a few hundred milliseconds apart on a loaded machine, which in a drain of
   about a second moved the first figure by up to 2.5x between identical runs). With
   ``--cpu``, the CPU each job cost too (the 4 workers' and, on PostgreSQL, the server's with
   its backends'), read from /proc: the
   queue is paused while the workers start, the CPU read, the queue resumed, the CPU read
   again once drained. On a shared machine the rate follows the load; the CPU a job costs
   follows it much less.

Servers: a fresh SQLite file, or a PostgreSQL / Redis server started for the run (tests/servers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of server process ``pid`` and its children (PostgreSQL's
    backends, each in a process group of its own), with what its exited children left it."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the name: state, ppid, ..., utime and stime (fields 14-15 of stat), cutime, cstime.
        if int(entry) == pid:
            total += sum(int(x) for x in fields[11:15]) / tick
        elif int(fields[1]) == pid:
            total += sum(int(x) for x in fields[11:13]) / tick
    return total


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _child_noop(src: str, url: str, jobs: int) -> None:
    sys.path.insert(0, src)
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"ab{os.getpid()}")

    @app.task(name="bench.noop")
    def noop(n: int) -> None:
        return None

    start = time.perf_counter()
    for i in range(0, jobs, 1000):
        app.enqueue_many([noop.job(n) for n in range(i, min(i + 1000, jobs))])
    enqueued = time.perf_counter() - start
    worker = app.worker(concurrency=8, burst=True, grace=5)
    pid = int(os.environ.get("BENCH_SERVER_PID", "0"))
    server_cpu = _server_cpu(pid) if pid else 0.0
    cpu = time.process_time()
    start = time.perf_counter()
    worker.run()
    drained = time.perf_counter() - start
    cpu = time.process_time() - cpu
    server_cpu = (_server_cpu(pid) - server_cpu) if pid else 0.0
    done = app.stats().queues.get("default", {}).get("completed", 0)
    figures = {"enqueue": jobs / enqueued, "drain": done / drained, "cpu_us": cpu / done * 1e6}
    if pid:
        figures["server_us"] = server_cpu / done * 1e6
    print(json.dumps(figures))


def _ab(url: str, main_src: str, this_src: str, jobs: int, repeat: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {"main": [], "limits": []}
    for _ in range(repeat):
        for name, src in (("main", main_src), ("limits", this_src)):
            out = subprocess.run(
                [sys.executable, __file__, "--child-noop", src, "--url", url, "--jobs", str(jobs)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": src},
            )
            runs[name].append(json.loads(out.stdout.splitlines()[-1]))
    return {
        name: {k: statistics.median(r[k] for r in found) for k in found[0]} for name, found in runs.items()
    }


def _drain(
    url: str, variant: str, jobs: int, tmp: Path, threads: int, run_ms: float, src: str, cpu: bool = False
) -> dict[str, float]:
    """One drain, run by a child process whose conveyor is ``src``'s (enqueue, workers and the
    reading of the figures alike: a store's schema is the version its conveyor knows): its
    rate, and with ``cpu`` the CPU per job (µs) of the workers and of the server."""
    command = [sys.executable, __file__, "--child-drain", src, "--url", url, "--variant", variant]
    command += ["--jobs", str(jobs), "--tmp", str(tmp), "--threads", str(threads), "--run-ms", str(run_ms)]
    command += ["--cpu"] if cpu else []
    out = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src + ":" + str(ROOT)}
    )
    if out.returncode != 0:
        log = (
            (tmp / f"{variant}.log").read_text(errors="replace")[-3000:]
            if (tmp / f"{variant}.log").exists()
            else ""
        )
        raise RuntimeError(f"drain {variant} ({src}) failed:\n{out.stderr[-3000:]}\nworkers' log:\n{log}")
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _drain_here(
    url: str, variant: str, jobs: int, tmp: Path, threads: int, run_ms: float, src: str, cpu: bool
) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, src)
    from bench import limits_app

    ns = f"lim{os.getpid()}{variant}{time.monotonic_ns() % 10**6}"
    os.environ["LIMITS_NS"] = ns
    from conveyor import Conveyor

    app = Conveyor(url, namespace=ns)
    for name, task in limits_app.app.tasks.items():
        app.tasks[name] = task
    task = app.tasks[f"bench.{variant}"]
    task.app = app
    queue = task.options.queue
    if cpu:
        app.pause(queue)
    for i in range(0, jobs, 1000):
        app.enqueue_many([task.job(n) for n in range(i, min(i + 1000, jobs))])
    env = {
        **os.environ,
        "BENCH_RUN_MS": str(run_ms),
        "CONVEYOR_URL": url,
        "LIMITS_NS": ns,
        "PYTHONPATH": src + ":" + str(ROOT),
    }
    command = [sys.executable, "-m", "conveyor", "worker", "bench.limits_app:app"]
    command += ["--queues", task.options.queue, "--concurrency", str(threads), "--log-level", "warning"]
    with open(tmp / f"{variant}.log", "ab") as log:
        procs = [
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
            for _ in range(4)
        ]
    figures: dict[str, float] = {}
    try:
        server = int(os.environ.get("BENCH_SERVER_PID", "0"))
        if cpu:
            # The workers start (imports, connections) while the queue is paused.
            deadline = time.monotonic() + 60
            while len(app.workers()) < len(procs) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            workers_cpu = sum(_process_cpu(p.pid) for p in procs)
            server_cpu = _server_cpu(server) if server else 0.0
            app.resume(queue)
        deadline = time.monotonic() + 300
        while app.stats().queues.get(queue, {}).get("completed", 0) < jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{variant}: not drained in 300 s")
            time.sleep(0.2)
        if cpu:
            figures["worker_us"] = (sum(_process_cpu(p.pid) for p in procs) - workers_cpu) / jobs * 1e6
            if server:
                figures["server_us"] = (_server_cpu(server) - server_cpu) / jobs * 1e6
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                # (A worker that outlives its 30 s grace after the drain: seen on main's code
                # too, with concurrency=1 per key; the figures come from the jobs' times.)
                print(f"{variant}: a worker did not exit within 40 s of SIGTERM", file=sys.stderr)
                proc.kill()
                proc.wait()
    done = app.jobs(state="completed", limit=jobs + 10)
    first = min(j.started_at.timestamp() for j in done if j.started_at)
    ends = sorted(j.finished_at.timestamp() for j in done if j.finished_at)
    app.close()
    low, high = len(ends) // 10, len(ends) - 1 - len(ends) // 10
    steady = (high - low) / (ends[high] - ends[low])
    return {"rate": len(done) / (ends[-1] - first), "steady": steady, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis", "cluster"), default="sqlite")
    parser.add_argument("--main-src", help="main's src directory for the A/B run (skipped without)")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16, help="threads of each of the 4 workers")
    parser.add_argument("--run-ms", type=float, default=0.0, help="how long each job of the drains sleeps")
    parser.add_argument("--no-drains", action="store_true", help="the A/B run only")
    parser.add_argument("--no-ab", action="store_true", help="the drains only")
    parser.add_argument(
        "--drain-main", action="store_true", help="run the drains with --main-src's workers too, interleaved"
    )
    parser.add_argument("--variants", default="plain,conc50,perkey")
    parser.add_argument("--this-src", help="the workers' src for 'this' (default: this tree's)")
    parser.add_argument(
        "--cpu", action="store_true", help="the drains' CPU per job too (workers; PostgreSQL's server)"
    )
    parser.add_argument("--child-noop", help=argparse.SUPPRESS)
    parser.add_argument("--child-drain", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_noop:
        _child_noop(args.child_noop, args.url, args.jobs)
        return
    if args.child_drain:
        tmp = Path(args.tmp)
        figures = _drain_here(
            args.url, args.variant, args.jobs, tmp, args.threads, args.run_ms, args.child_drain, args.cpu
        )
        print(json.dumps(figures))
        return
    sys.path.insert(0, str(ROOT))
    server = None
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if args.store == "sqlite":

            def url_for(tag: str) -> str:
                return f"sqlite:///{tmp}/{tag}.db"
        else:
            from tests.servers import PostgresServer, RedisCluster, RedisServer

            kinds = {"redis": RedisServer, "postgres": PostgresServer, "cluster": RedisCluster}
            server = kinds[args.store]().start()
            if args.store == "postgres" and server.proc is not None:
                # The A/B reports the server's CPU per job too (its backends': children).
                os.environ["BENCH_SERVER_PID"] = str(server.proc.pid)

            def url_for(tag: str) -> str:
                if args.store == "cluster":
                    host, port = server.nodes[0]
                    return f"redis+cluster://{host}:{port}"
                return str(server.url)

        try:
            started = time.strftime("%H:%M:%S", time.gmtime())
            result: dict[str, object] = {"store": args.store, "jobs": args.jobs, "repeat": args.repeat}
            if args.main_src and not args.no_ab:
                this_src = args.this_src or str(ROOT / "src")
                result["ab_noop"] = _ab(url_for("ab"), args.main_src, this_src, args.jobs, args.repeat)
            if not args.no_drains:
                result.update(threads=args.threads, run_ms=args.run_ms)
                # The workers' conveyor: this tree's, and main's too when given, taking turns.
                srcs = {"this": args.this_src or str(ROOT / "src")}
                if args.drain_main and args.main_src:
                    srcs["main"] = args.main_src
                variants = [v for v in ("plain", "conc50", "perkey") if v in args.variants.split(",")]
                rates: dict[str, list[float]] = {f"{v}@{t}": [] for t in srcs for v in variants}
                cpus: dict[str, list[float]] = {f"{v}@{t}": [] for t in srcs for v in variants}
                steady: dict[str, list[float]] = {f"{v}@{t}": [] for t in srcs for v in variants}
                loads: list[float] = []
                for rep in range(args.repeat):
                    for tree, src in srcs.items():
                        for variant in variants:
                            url = url_for(f"{variant}{tree}{rep}")
                            loads.append(os.getloadavg()[0])
                            got = _drain(
                                url, variant, args.jobs, tmp, args.threads, args.run_ms, src, args.cpu
                            )
                            rates[f"{variant}@{tree}"].append(got["rate"])
                            steady[f"{variant}@{tree}"].append(got["steady"])
                            if args.cpu:
                                cpus[f"{variant}@{tree}"].append(got["worker_us"] + got.get("server_us", 0.0))
                loads.append(os.getloadavg()[0])
                medians = {v: statistics.median(r) for v, r in rates.items()}
                result["drain_jobs_per_s"] = medians
                result["runs"] = rates
                steady_medians = {v: statistics.median(r) for v, r in steady.items()}
                result["steady_jobs_per_s"] = steady_medians
                result["steady_runs"] = steady
                result["load_1min"] = [round(min(loads), 1), round(max(loads), 1)]
                if args.cpu:
                    cpu_medians = {v: statistics.median(c) for v, c in cpus.items()}
                    result["cpu_us_per_job"] = cpu_medians
                    result["cpu_runs"] = cpus
                    if "plain" in variants:
                        # Unlimited CPU per job over limited: the rate ratio the CPU alone allows.
                        result["cpu_ratio_to_plain"] = {
                            f"{v}@{t}": cpu_medians[f"plain@{t}"] / cpu_medians[f"{v}@{t}"]
                            for t in srcs
                            for v in variants
                            if v != "plain"
                        }
                if "plain" in variants:
                    for key, found in (
                        ("ratio_to_plain", medians),
                        ("steady_ratio_to_plain", steady_medians),
                    ):
                        result[key] = {
                            f"{v}@{t}": found[f"{v}@{t}"] / found[f"plain@{t}"]
                            for t in srcs
                            for v in variants
                            if v != "plain"
                        }
            result["utc"] = f"{started}-{time.strftime('%H:%M:%S', time.gmtime())}"
            print(json.dumps(result, indent=2))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
