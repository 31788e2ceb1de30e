"""A long PostgreSQL drain, watched from inside the worker and from the server (issue 19:
leases that expired mid-drain, acks that deadlocked with recover, RSS that grew).

    python bench/pg_drain_probe.py --jobs 200000 [--url postgresql://...] [--keep]

One worker process (``--burst``, 10 threads, a no-op task) drains ``--jobs`` pending jobs.
Every 0.2 s the worker writes what it holds, the outcomes its acker has not written yet, its
RSS, and the slowest heartbeat, recover, fetch and ack call of the interval; the parent
writes (every second) the jobs active in the store, those whose lease is over, the dead index entries, and
the HOT updates so far. At the end: the rate per tenth, jobs run more than once, deadlocks
and lease expiries in the server's statistics, and the server's and worker's CPU per job.
Exits 1 if a lease expired under the live worker, a job ran twice, or the worker's RSS grew
more than 20% after the first 100,000 jobs (``make bench-scale`` runs it).
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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from conveyor import Conveyor

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# -- the worker process ----------------------------------------------------------------------
def _worker(url: str, namespace: str, out: Path) -> int:
    app = Conveyor(url, namespace=namespace)

    @app.task(name="noop")
    def noop(i: int) -> None: ...

    worker = app.worker(concurrency=10, burst=True)
    backend = app.backend
    slowest: dict[str, float] = {}

    def timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.monotonic()
            try:
                return call(*args, **kwargs)
            finally:
                took = time.monotonic() - began
                slowest[name] = max(slowest.get(name, 0.0), took)

        return wrapper

    for name in ("heartbeat", "recover", "fetch", "complete", "fail"):
        setattr(backend, name, timed(name, getattr(backend, name)))
    stop = threading.Event()

    def report() -> None:
        with out.open("w") as f:
            while not stop.wait(0.2):
                rss = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
                acker = getattr(worker, "_acker", None)
                backlog = acker.unwritten if acker is not None else 0
                row = {"t": time.time(), "runs": worker.processed, "rss": rss}
                row.update(held=len(worker._held), unacked=backlog)
                row.update({k: round(v, 3) for k, v in slowest.items()})
                slowest.clear()
                f.write(json.dumps(row) + "\n")
                f.flush()

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        return worker.run()
    finally:
        time.sleep(0.6)
        stop.set()
        thread.join()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _server_cpu(postmaster: int | None) -> float:
    """CPU seconds of a PostgreSQL server: the postmaster with its reaped children (backends
    that exited) and its living children (backends, autovacuum, the writers)."""
    if postmaster is None:
        return 0.0
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in fields[11:15]) / TICKS
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += _cpu(int(entry.name))
    return total


@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    from tests.servers import PostgresServer

    with PostgresServer() as server:
        db = server.create_database(f"probe{os.getpid()}")
        assert server.proc is not None
        yield db, server.proc.pid


def _crossing(rows: list[dict[str, Any]], n: float) -> float:
    """When the worker had run ``n`` jobs, between the two samples around it."""
    before = rows[0]
    for row in rows:
        if row["runs"] >= n:
            if row["runs"] == before["runs"]:
                return float(row["t"])
            share = (n - before["runs"]) / (row["runs"] - before["runs"])
            return float(before["t"] + share * (row["t"] - before["t"]))
        before = row
    return float(rows[-1]["t"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--url", default=None, help="a database to use (default: a private server)")
    parser.add_argument("--namespace", default="probe")
    parser.add_argument("--log", type=Path, default=None, help="write the samples here (JSON lines)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        url, namespace, out = options.worker
        sys.exit(_worker(url, namespace, Path(out)))
    with _server(options.url) as (url, postmaster):
        ns = options.namespace
        app = Conveyor(url, namespace=ns)

        @app.task(name="noop")
        def noop(i: int) -> None: ...

        began = time.monotonic()
        for start in range(0, options.jobs, 50_000):
            app.enqueue_many([noop.job(i) for i in range(start, min(options.jobs, start + 50_000))])
        app.close()
        print(f"{options.jobs:,} jobs enqueued in {time.monotonic() - began:.1f} s", flush=True)
        out = Path(tempfile.mktemp(prefix="conveyor-probe-"))
        samples: list[dict[str, Any]] = []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET jit = off")

            def server_view() -> dict[str, Any]:
                row = conn.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE lease_until < extract(epoch FROM now()))"
                    f" FROM {ns}.jobs WHERE state = 'active'"
                ).fetchone()
                stat = conn.execute(
                    "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, autovacuum_count, autoanalyze_count"
                    " FROM pg_stat_user_tables WHERE schemaname = %s AND relname = 'jobs'",
                    (ns,),
                ).fetchone()
                deadlocks = conn.execute(
                    "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
                ).fetchone()
                assert row is not None and stat is not None and deadlocks is not None
                return {
                    "active": row[0],
                    "expired": row[1],
                    "upd": stat[0],
                    "hot": stat[1],
                    "dead_tup": stat[2],
                    "vacuums": stat[3],
                    "analyzes": stat[4],
                    "deadlocks": deadlocks[0],
                }

            start_view = server_view()
            server_before = _server_cpu(postmaster)
            spawned = time.monotonic()
            proc = subprocess.Popen([sys.executable, __file__, "--worker", url, ns, str(out)], cwd=REPO)
            worker_cpu = 0.0
            while proc.poll() is None:
                time.sleep(1.0)
                with contextlib.suppress(OSError):
                    worker_cpu = _cpu(proc.pid)
                view = server_view()
                view["t"] = time.time()
                samples.append(view)
                print(
                    f"  +{time.monotonic() - spawned:6.1f}s active {view['active']:7d}"
                    f" expired {view['expired']:6d} dead tuples {view['dead_tup']:8d}"
                    f" vacuums {view['vacuums']} deadlocks {view['deadlocks']}",
                    flush=True,
                )
            elapsed = time.monotonic() - spawned
            server_cpu = _server_cpu(postmaster) - server_before
            end_view = server_view()
            ran = conn.execute(
                f"SELECT count(*) FILTER (WHERE attempts > 1), count(*) FILTER (WHERE state = 'completed'),"
                f" count(*) FROM {ns}.jobs"
            ).fetchone()
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        out.unlink()
        if options.log:
            with options.log.open("w") as f:
                for r in rows:
                    f.write(json.dumps({"worker": r}) + "\n")
                for s in samples:
                    f.write(json.dumps({"server": s}) + "\n")
        jobs = options.jobs
        tenth = jobs / 10
        started = next(r["t"] for r in rows if r["runs"] > 0)
        crossed = [_crossing(rows, k * tenth) for k in range(1, 11)]
        spans = zip([started, *crossed[:-1]], crossed, strict=True)
        tenths = [tenth / (b - a) if b > a else 0.0 for a, b in spans]
        early = next(r["rss"] for r in rows if r["runs"] >= min(100_000, tenth))
        most = max(r["rss"] for r in rows if r["runs"] >= min(100_000, tenth))
        upd = end_view["upd"] - start_view["upd"]
        hot = end_view["hot"] - start_view["hot"]

        def worst(key: str) -> float:
            return max((r.get(key, 0.0) for r in rows), default=0.0)

        assert ran is not None
        summary = {
            "jobs": jobs,
            "rate": round(jobs / (crossed[-1] - started)),
            "tenths": [round(x) for x in tenths],
            "last/first": round(tenths[-1] / tenths[0], 2) if tenths[0] else None,
            "ran_twice": ran[0],
            "completed": ran[1],
            "deadlocks": end_view["deadlocks"] - start_view["deadlocks"],
            "most_expired": max((s["expired"] for s in samples), default=0),
            "most_active": max((s["active"] for s in samples), default=0),
            "most_unacked": max((r["unacked"] for r in rows), default=0),
            "rss_early_mb": round(early / 2**20, 1),
            "rss_ratio": round(most / early, 2),
            "slowest_s": {k: worst(k) for k in ("heartbeat", "recover", "fetch", "complete")},
            "hot_ratio": round(hot / upd, 3) if upd else None,
            "worker_cpu_us_job": round(worker_cpu / jobs * 1e6, 1),
            "server_cpu_us_job": round(server_cpu / jobs * 1e6, 1) if postmaster else None,
            "elapsed_s": round(elapsed, 1),
        }
        print(json.dumps(summary), flush=True)
        # What issue 19's 1M drains broke: leases that expired under a live worker, jobs run
        # twice, a worker whose memory grew with the drain.
        broken = []
        if summary["ran_twice"] or summary["most_expired"]:
            broken.append(f"{summary['most_expired']} leases expired, {summary['ran_twice']} jobs ran twice")
        if summary["rss_ratio"] > 1.2:
            broken.append(f"RSS grew {summary['rss_ratio']}x")
        if broken:
            sys.exit("FAILED: " + "; ".join(broken))


if __name__ == "__main__":
    main()
