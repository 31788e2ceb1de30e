"""The worker's drain, A/B: CPU per job and jobs/s of one in-process worker, two code trees.

    python bench/drain_probe.py --store redis|sqlite [--jobs 20000] [--rounds 5]
                                [--against DIR] [--profile DIR]

N no-op jobs are queued, then one worker (10 threads, ``--burst``, per-job logging off as
bench/run.py runs every peer) drains them in the same process. Each drain runs in a fresh
child process whose ``conveyor`` comes from ``--against`` (a tree holding ``conveyor/``, e.g.
``git archive main src | tar -x -C /tmp/base`` then ``/tmp/base/src``) or from this tree;
rounds alternate A B, B A, ... so the machine's load falls on both alike. On a shared 2-core
machine the rates are noise-bound; the CPU per job is the steadier figure:

* worker CPU µs/job: ``time.process_time()`` of the drain's process (every thread), over the
  whole drain, and "steady" from the 1,000th job run to the last;
* server CPU µs/job: redis-server's utime + stime (/proc) over the same spans (Redis only);
* jobs/s: whole drain (``run()`` called to returned) and steady (1,000th job run to the last).

Prints each run and the medians per tree; ``--json`` writes the runs. ``--profile DIR`` runs
the drains of this tree under ``py-spy record`` (if installed) into DIR instead.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STEADY_FROM = 1_000


def proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (/proc)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the child


def child(url: str, namespace: str, jobs: int, server_pid: int) -> dict[str, Any]:
    import itertools

    from conveyor import Conveyor

    app = Conveyor(url, namespace=namespace)
    marks: dict[str, tuple[float, float, float]] = {}
    switches: dict[str, int] = {}
    count = itertools.count(1)

    def mark(name: str) -> None:
        server = proc_cpu(server_pid) if server_pid else 0.0
        marks[name] = (time.perf_counter(), time.process_time(), server)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        switches[name] = usage.ru_nvcsw + usage.ru_nivcsw

    @app.task(name="noop")
    def noop() -> None:
        n = next(count)
        if n in (STEADY_FROM, jobs):
            mark("steady" if n == STEADY_FROM else "last")

    for i in range(0, jobs, 10_000):
        app.enqueue_many([noop.job() for _ in range(min(10_000, jobs - i))])
    worker = app.worker(concurrency=10, burst=True)
    load = os.getloadavg()[0]
    mark("start")
    worker.run()
    mark("end")
    left = app.stats().total("pending")
    app.backend.close()
    if left or worker.processed != jobs:
        raise RuntimeError(f"drain left {left} pending, ran {worker.processed} of {jobs}")
    (t0, c0, s0), (t1, c1, s1) = marks["start"], marks["end"]
    (ts, cs, ss), (tl, cl, sl) = marks["steady"], marks["last"]
    steady = jobs - STEADY_FROM
    return {
        "jobs": jobs,
        "load1": round(load, 2),
        "per_s": round(jobs / (t1 - t0)),
        "steady_per_s": round(steady / (tl - ts)),
        "cpu_us": round((c1 - c0) / jobs * 1e6, 2),
        "steady_cpu_us": round((cl - cs) / steady * 1e6, 2),
        "server_us": round((s1 - s0) / jobs * 1e6, 2) if server_pid else None,
        "steady_server_us": round((sl - ss) / steady * 1e6, 2) if server_pid else None,
        "switches_per_job": round((switches["end"] - switches["start"]) / jobs, 3),
    }


# --------------------------------------------------------------------------- the parent


@contextlib.contextmanager
def store(kind: str) -> Iterator[tuple[str, int]]:
    """(URL or a directory for SQLite files, the server's pid or 0)."""
    if kind == "redis":
        from tests.servers import RedisServer

        with RedisServer(appendonly=False) as server:
            assert server.proc is not None
            yield server.url, server.proc.pid
    else:
        folder = tempfile.mkdtemp(prefix="conveyor-drain-")
        try:
            yield folder, 0
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def run_child(
    tree: str, url: str, namespace: str, jobs: int, server_pid: int, profile: Path | None
) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, str(REPO)) if p)
    cmd = [sys.executable, "-m", "bench.drain_probe", "--child", url, namespace, str(jobs), str(server_pid)]
    if profile is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = profile / f"{namespace}.txt"
        cmd = [spy, "record", "-r", "500", "-f", "raw", "-o", str(out), "--", *cmd]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"drain failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        url, namespace, jobs, server_pid = sys.argv[2:6]
        print(json.dumps(child(url, namespace, int(jobs), int(server_pid))), flush=True)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "redis"), required=True)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", default="", help="a tree holding conveyor/ (the A side)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw profiles into DIR")
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    options = parser.parse_args()
    trees = {"this": str(REPO / "src")}
    if options.against:
        trees = {"base": options.against, **trees}
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
        trees = {"this": str(REPO / "src")}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    keys = (
        "per_s",
        "steady_per_s",
        "cpu_us",
        "steady_cpu_us",
        "server_us",
        "steady_server_us",
        "switches_per_job",
    )
    print(f"{'tree':5} {'round':>5} {'load1':>5} " + " ".join(f"{k[:14]:>14}" for k in keys), flush=True)
    with store(options.store) as (where, server_pid):
        for n in range(options.rounds):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            for name in order:
                namespace = f"dp{n}{name}"
                url = where if options.store == "redis" else f"sqlite:///{where}/{namespace}.db"
                result = run_child(trees[name], url, namespace, options.jobs, server_pid, options.profile)
                result["tree"], result["round"] = name, n + 1
                runs[name].append(result)
                cells = " ".join(f"{result[k] if result[k] is not None else '-':>14}" for k in keys)
                print(f"{name:5} {n + 1:>5} {result['load1']:>5} {cells}", flush=True)
    print("medians:")
    for name, got in runs.items():
        cells = []
        for k in keys:
            values = [r[k] for r in got if r[k] is not None]
            cells.append(f"{statistics.median(values):>14,.2f}" if values else f"{'-':>14}")
        loads = [r["load1"] for r in got]
        print(f"{name:5} {'':>5} {statistics.median(loads):>5} " + " ".join(cells))
    if options.json is not None:
        options.json.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
