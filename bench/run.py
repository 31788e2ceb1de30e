"""Run the conveyor benchmark against its peers and write bench/RESULTS-<store>.md.

    python bench/run.py --store sqlite|redis|postgres [--repeat 3] [--quick] [--systems conveyor,huey]

Each driver (bench/drivers/<system>.py) runs in its own process, once per scenario and repeat;
the table shows the median of the repeats. For Redis a private redis-server is started on a
free loopback port (persistence off: no AOF, no RDB) and flushed before every run; for
PostgreSQL a private server (tests.servers: fsync off) where every run gets a fresh database;
for SQLite every run gets a fresh database file in a temporary directory (/tmp, on disk here).

Drains are reported twice: from the worker's spawn to the last job (start-up included), and the
steady rate from the 1,000th job run to the last (bench/drivers/sink.py writes a marker at each).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import compileall
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("enqueue_one", "enqueue_bulk", "drain", "drain_100k", "latency")
#: what each scenario asks its driver for (drain_100k is a drain of another size)
DRIVER_SCENARIO = {"drain_100k": "drain"}
DRAINS = ("drain", "drain_100k")


@dataclass(frozen=True)
class Entry:
    system: str
    variant: str | None = None
    note: str = ""
    #: per-scenario sizes that replace the defaults (slow peers, to keep the run short; 0 = not run)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.system if self.variant is None else f"{self.system} ({self.variant})"

    @property
    def module(self) -> str:
        return self.system.replace("-", "_")


CONVEYOR_NOTE = (
    "`conveyor worker bench.drivers.conveyor_tasks:app --concurrency 10 --log-level ERROR "
    "[--burst]`, 1 process (drain timed to its exit); bulk = `app.enqueue_many`, 10,000 a call"
)
#: the slow Python peers drain 100,000 jobs in minutes each; the 20,000 drain has their steady rate
NO_100K = {"drain_100k": 0}
NODE_PEERS = ("bullmq", "graphile-worker")

SYSTEMS: dict[str, list[Entry]] = {
    "sqlite": [
        Entry("conveyor", note=CONVEYOR_NOTE),
        Entry(
            "huey",
            note="SqliteHuey (WAL), `huey_consumer -w 4 -k thread -q` (logging quiet), huey's "
            "default polling (0.1 s, backing off x1.15 to 10 s); huey has no bulk enqueue",
            sizes=NO_100K,
        ),
    ],
    "redis": [
        Entry("conveyor", note=CONVEYOR_NOTE),
        Entry(
            "sidekiq",
            note="Ruby, one `sidekiq -c 10 -r ./worker.rb` process, `Sidekiq.logger.level = "
            "Logger::ERROR` as its own load test (`bin/sidekiqload`) sets it (the default INFO "
            "writes two lines a job), and redis-rb's deprecation warnings silenced (Debian's "
            "redis-rb 4.8 warns, with a caller lookup, on each BRPOP and push Sidekiq 6.4 makes); "
            "one at a time = `perform_async`; bulk = "
            "`Sidekiq::Client.push_bulk`, 10,000 a call",
        ),
        Entry(
            "bullmq",
            note="Node, one `node bullmq_worker.js` process, `Worker` concurrency 50 (the value of "
            "BullMQ's concurrency guide; its repository has no load test to copy), finished jobs "
            "removed at once (`removeOnComplete`/`removeOnFail` `{count: 0}`); BullMQ logs nothing "
            "per job; one at a time = `Queue.add`; bulk = `Queue.addBulk`, 10,000 a call",
        ),
        Entry(
            "rq",
            "simple",
            note="`rq worker --burst -w rq.worker.SimpleWorker --logging_level ERROR` (the default "
            "INFO writes two lines a job; drain timed to its exit); bulk = `Queue.enqueue_many`, "
            "one pipeline per 10,000",
            sizes={"drain": 5_000, "enqueue_bulk": 20_000, **NO_100K},
        ),
        Entry(
            "rq",
            "fork",
            note="`rq worker --burst --logging_level ERROR` (default `rq.Worker`, forks a child per "
            "job); bulk as above. It runs ~30 jobs/s, below the 200/s pace, so its latency is a "
            "growing backlog",
            sizes={"drain": 1_000, "enqueue_bulk": 20_000, "latency": 200, **NO_100K},
        ),
        Entry(
            "celery",
            "solo",
            note="`celery worker -P solo --without-gossip --without-mingle --without-heartbeat "
            "-l warning` (no per-job line), Redis broker, no result backend; bulk = loop of "
            "`apply_async` on one producer (the Redis transport publishes one message per call; a "
            "`group` does the same)",
            sizes={"drain": 10_000, "enqueue_bulk": 20_000, **NO_100K},
        ),
        Entry(
            "celery",
            "threads",
            note="as solo but `-P threads -c 10`",
            sizes={"drain": 10_000, "enqueue_bulk": 20_000, **NO_100K},
        ),
        Entry(
            "dramatiq",
            note="`dramatiq -p 1 -t 8`, RedisBroker, default middleware, default logging (INFO: "
            "dramatiq logs per job only at DEBUG); bulk = loop of `send` (no batch enqueue in "
            "RedisBroker)",
            sizes={"enqueue_bulk": 20_000, **NO_100K},
        ),
        Entry(
            "huey",
            note="RedisHuey (blocking BRPOP), `huey_consumer -w 4 -k thread -q` (logging quiet); no bulk API",
            sizes={"drain": 10_000, **NO_100K},
        ),
        Entry(
            "arq",
            note="`arq …WorkerSettings --custom-log-dict …LOG_CONFIG` (arq's logger at ERROR; "
            "its default INFO writes two lines a job), defaults otherwise (`max_jobs=10`, "
            "`poll_delay=0.5`); bulk = `asyncio.gather` of `enqueue_job`, 50 at a time (each is "
            "its own MULTI/EXEC)",
            sizes={"drain": 5_000, "enqueue_bulk": 20_000, **NO_100K},
        ),
        Entry(
            "saq",
            note="`saq …settings --workers 1 --quiet`, concurrency 10; no batch enqueue: bulk = "
            "`asyncio.gather` of `Queue.enqueue`, 50 at a time",
            sizes={"drain": 5_000, "enqueue_bulk": 20_000, **NO_100K},
        ),
    ],
    "postgres": [
        Entry("conveyor", note=CONVEYOR_NOTE),
        # BENCH_MAIN_SRC=<a checkout's src>: that conveyor too, in the same run (A/B).
        *(
            [Entry("conveyor", "main", note="the same, main's src")]
            if os.environ.get("BENCH_MAIN_SRC")
            else []
        ),
        Entry(
            "graphile-worker",
            note="Node, one `node graphile_worker.js` process configured as graphile-worker's perf "
            "test (`perfTest/graphile.config.js`): `concurrentJobs` 10, `maxPoolSize` 11, "
            "`localQueue` 500 (refetch delay 10 ms), `completeJobBatchDelay`/`failJobBatchDelay` "
            "0, logger at errors only (the perf test sets `NO_LOG_SUCCESS`); one at a time = "
            "`addJob`; bulk = `addJobs`, 10,000 a call",
        ),
        Entry(
            "pgqueuer",
            note="`python -m bench.drivers.pgqueuer_tasks`: as PgQueuer's own benchmark "
            "(`tools/benchmark.py` drain strategy): asyncpg, uvloop, 5 `PgQueuer` consumers in one "
            "process on a connection each, batch size 10, `QueueExecutionMode.drain` for the drain; "
            "logger at ERROR; one at a time = `Queries.enqueue`; bulk = `Queries.enqueue` of "
            "lists, 10,000 a call",
        ),
        Entry(
            "procrastinate",
            note="`App.run_worker(concurrency=10, wait=False, listen_notify=True)` through the "
            "Python API (no logging configured: nothing per job); one at a time = `defer`; bulk = "
            "`batch_defer`, 10,000 a call",
            sizes={"drain": 5_000, **NO_100K},
        ),
    ],
}

SIZES: dict[str, dict[str, int]] = {
    "sqlite": {
        "enqueue_one": 5_000,
        "enqueue_bulk": 50_000,
        "drain": 20_000,
        "drain_100k": 100_000,
        "latency": 2_000,
    },
    "redis": {
        "enqueue_one": 5_000,
        "enqueue_bulk": 100_000,
        "drain": 20_000,
        "drain_100k": 100_000,
        "latency": 2_000,
    },
    "postgres": {
        "enqueue_one": 5_000,
        "enqueue_bulk": 50_000,
        "drain": 20_000,
        "drain_100k": 100_000,
        "latency": 1_000,
    },
}
RATES = {"sqlite": 100.0, "redis": 200.0, "postgres": 100.0}

LIBRARIES = {
    "sqlite": ["conveyor", "huey"],
    "redis": ["conveyor", "redis", "hiredis", "rq", "celery", "kombu", "dramatiq", "huey", "arq", "saq"],
    "postgres": ["conveyor", "psycopg", "psycopg-pool", "pgqueuer", "asyncpg", "uvloop", "procrastinate"],
}


# --------------------------------------------------------------------------- running


@contextlib.contextmanager
def store(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (URL or directory, facts about the server; for PostgreSQL also the server itself,
    under "server", to create a database per run)."""
    if kind == "redis":
        from tests.servers import RedisServer

        server = RedisServer(appendonly=False).start()
        try:
            info = server.command("INFO", "server")
            text = info.decode() if isinstance(info, bytes) else str(info)
            facts = dict(
                line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
            )
            pid = server.proc.pid if server.proc else None
            yield server.url, {"redis-server": facts.get("redis_version", "?"), "server_pid": pid}
        finally:
            server.stop()
    elif kind == "postgres":
        from tests.servers import PostgresServer

        with PostgresServer() as pg:
            version = pg.psql("SHOW server_version").strip() + " (fsync off)"
            pid = pg.proc.pid if pg.proc else None
            yield "", {"PostgreSQL": version, "server": pg, "server_pid": pid}
    else:
        tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-sqlite-"))
        try:
            yield str(tmp), {"sqlite": sqlite3.sqlite_version}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_driver(
    entry: Entry, url: str, scenario: str, n: int, rate: float, timeout: float, server_pid: int | None
) -> dict[str, Any]:
    scenario = DRIVER_SCENARIO.get(scenario, scenario)
    cmd = [sys.executable, "-m", f"bench.drivers.{entry.module}", "--url", url, "--scenario", scenario]
    cmd += ["--n", str(n), "--rate", str(rate), "--timeout", str(timeout)]
    env = dict(os.environ)
    if entry.system == "conveyor" and entry.variant == "main":
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env["BENCH_MAIN_SRC"], env.get("PYTHONPATH", "")) if p
        )
    elif entry.variant:
        cmd += ["--variant", entry.variant]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if server_pid is not None:  # the drain then says how much CPU the store's server spent on it
        env["BENCH_SERVER_PID"] = str(server_pid)
    proc = subprocess.Popen(
        cmd,
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout + 120)
    except BaseException:
        # the driver kills its own workers on SIGTERM; then make sure of the whole group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"error": f"driver timed out after {timeout + 120:.0f} s"}
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        return {"error": f"driver exited {proc.returncode} without a result: {' | '.join(tail)}"}
    return parsed


@dataclass
class Cell:
    runs: list[dict[str, Any]] = field(default_factory=list)

    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if "error" not in r and r.get("jobs_per_s") is not None]

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.ok() if r.get(key) is not None]
        return statistics.median(values) if values else None

    def spread(self, key: str) -> tuple[float, float] | None:
        values = [r[key] for r in self.ok() if r.get(key) is not None]
        return (min(values), max(values)) if values else None

    def error(self) -> str | None:
        errors = [r["error"] for r in self.runs if "error" in r]
        return errors[0] if errors and not self.ok() else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, choices=sorted(SYSTEMS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="sizes / 10, for a smoke run")
    parser.add_argument(
        "--systems", default="", help="comma-separated labels or systems to run (default all)"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one driver run may take")
    parser.add_argument("--out", type=Path, default=None, help="default bench/RESULTS-<store>.md")
    args = parser.parse_args()

    kind: str = args.store
    wanted = {s.strip() for s in args.systems.split(",") if s.strip()}
    entries = [e for e in SYSTEMS[kind] if not wanted or e.system in wanted or e.label in wanted]
    scenarios = [s for s in args.scenarios.split(",") if s]
    out_path: Path = args.out or REPO / "bench" / f"RESULTS-{kind}.md"
    cells: dict[tuple[str, str], Cell] = {(e.label, s): Cell() for e in entries for s in scenarios}
    started = datetime.now(UTC)

    def size(entry: Entry, scenario: str) -> int:
        n = entry.sizes.get(scenario, SIZES[kind][scenario])
        return max(1, n // 10) if args.quick and n else n

    from rich.console import Console

    console = Console(stderr=True)
    raw = out_path.with_suffix(".json")
    done_reps = 0

    def write(facts: dict[str, str], finished: datetime) -> None:
        loads = [r["load1_before"] for c in cells.values() for r in c.runs if "load1_before" in r]
        facts = {
            **facts,
            "load": f"{statistics.mean(loads):.2f} mean, {max(loads):.2f} max" if loads else "?",
        }
        versions = collect_versions(kind, facts, cells)
        markdown = render(kind, entries, scenarios, cells, versions, args, started, finished, size, done_reps)
        out_path.write_text(markdown)
        raw.write_text(
            json.dumps(
                {
                    "store": kind,
                    "started": started.isoformat(),
                    "finished": finished.isoformat(),
                    "repeats_done": done_reps,
                    "versions": versions,
                    "runs": {f"{k[0]} / {k[1]}": v.runs for k, v in cells.items()},
                },
                indent=1,
            )
            + "\n"
        )

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # The peers are installed by pip, which compiles their bytecode; conveyor is installed
    # editable from src/, and with PYTHONDONTWRITEBYTECODE set (CI, some shells) each worker
    # spawned would compile it again (~70 ms of its start-up). Measure it as installed.
    compileall.compile_dir(REPO / "src", quiet=1)
    compileall.compile_dir(REPO / "bench", quiet=1)
    rc = 0
    with store(kind) as (location, found):
        server = found.pop("server", None)
        server_pid = found.pop("server_pid", None)
        facts: dict[str, str] = found
        try:
            for rep in range(args.repeat):
                for scenario in scenarios:
                    for entry in entries:
                        n = size(entry, scenario)
                        if n == 0:
                            continue
                        dbname = f"{entry.module}_{scenario}_{rep}"
                        if kind == "redis":
                            url = location
                        elif kind == "postgres":
                            url = server.create_database(dbname)
                        else:
                            db = Path(location) / f"{dbname}.db"
                            url = f"sqlite:///{db}"
                        t0 = time.perf_counter()
                        load = os.getloadavg()[0]
                        res = run_driver(entry, url, scenario, n, RATES[kind], args.timeout, server_pid)
                        res["load1_before"] = round(load, 2)
                        cells[(entry.label, scenario)].runs.append(res)
                        took = time.perf_counter() - t0
                        if "error" in res:
                            shown = res["error"]
                        else:
                            shown = f"{res['jobs_per_s']:,.0f} jobs/s"
                            if res.get("steady_per_s") is not None:
                                shown += f" (steady {res['steady_per_s']:,.0f})"
                            if res.get("p50_ms") is not None:
                                shown += f"  p50 {res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms"
                        console.print(
                            f"[dim]run {rep + 1}/{args.repeat}[/] {scenario:<12} {entry.label:<20} "
                            f"n={n:<7} {shown}  [dim]({took:.1f} s)[/]"
                        )
                        if kind == "sqlite":
                            for suffix in ("", "-wal", "-shm"):
                                Path(f"{db}{suffix}").unlink(missing_ok=True)
                        elif kind == "postgres":
                            server.drop_database(dbname)
                done_reps = rep + 1
                write(facts, datetime.now(UTC))  # after every repeat, so a cut-short run leaves figures
        except KeyboardInterrupt:
            console.print(f"[red]interrupted after {done_reps} complete repeat(s); partial runs kept[/]")
            write(facts, datetime.now(UTC))
            rc = 130
    show(kind, entries, scenarios, cells, console)
    console.print(f"wrote {out_path} and {raw}")
    return rc


# --------------------------------------------------------------------------- reporting


def collect_versions(kind: str, facts: dict[str, str], cells: dict[tuple[str, str], Cell]) -> dict[str, str]:
    versions = {"Python": platform.python_version(), **facts}
    if kind == "redis":
        versions["sqlite"] = sqlite3.sqlite_version
    for lib in LIBRARIES[kind]:
        try:
            versions[lib] = dist_version(lib)
        except PackageNotFoundError:
            versions[lib] = "not installed"
    # the peers outside this virtualenv say their version (and their runtime's) in each result
    for (label, _), cell in cells.items():
        if label.startswith(("sidekiq", *NODE_PEERS)):
            for run in cell.runs:
                if run.get("version") and run["version"] != "?":
                    runtime = "ruby" if label.startswith("sidekiq") else "node"
                    versions[f"{label} / {runtime}"] = str(run["version"])
    if kind == "sqlite":
        versions.pop("sqlite", None)
        versions["sqlite (Python's sqlite3)"] = sqlite3.sqlite_version
    return versions


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def cell_text(cell: Cell | None, key: str) -> str:
    if cell is None:
        return ""
    err = cell.error()
    if err is not None:
        return "n/a" if err.startswith("not measured") else "error"
    value = cell.median(key)
    return fmt_ms(value) if key.endswith("_ms") else fmt_rate(value)


COLUMNS = [
    ("enqueue_one", "jobs_per_s", "enqueue one (jobs/s)"),
    ("enqueue_bulk", "jobs_per_s", "enqueue bulk (jobs/s)"),
    ("drain", "jobs_per_s", "drain 20k, spawn to last (jobs/s)"),
    ("drain", "steady_per_s", "drain 20k, steady (jobs/s)"),
    ("drain_100k", "jobs_per_s", "drain 100k, spawn to last (jobs/s)"),
    ("drain_100k", "steady_per_s", "drain 100k, steady (jobs/s)"),
    ("latency", "p50_ms", "latency p50 (ms)"),
    ("latency", "p99_ms", "latency p99 (ms)"),
]
DRAIN_FIGURES = [
    ("drain", "jobs_per_s", "20k spawn to last"),
    ("drain", "steady_per_s", "20k steady"),
    ("drain_100k", "jobs_per_s", "100k spawn to last"),
    ("drain_100k", "steady_per_s", "100k steady"),
]


def best_peer(
    entries: list[Entry], cells: dict[tuple[str, str], Cell], scenario: str, key: str, only: str | None = None
) -> tuple[float, str] | None:
    found: list[tuple[float, str]] = []
    for e in entries:
        if e.system == "conveyor" or (only is not None and e.system != only):
            continue
        cell = cells.get((e.label, scenario))
        value = cell.median(key) if cell else None
        if value is not None:
            found.append((value, e.label))
    if not found:
        return None
    return min(found) if key.endswith("_ms") else max(found)


def python_peer(
    entries: list[Entry], cells: dict[tuple[str, str], Cell], scenario: str, key: str
) -> tuple[float, str] | None:
    others = ("sidekiq", *NODE_PEERS)
    return best_peer([e for e in entries if e.system not in others], cells, scenario, key)


def conveyor_value(cells: dict[tuple[str, str], Cell], scenario: str, key: str) -> float | None:
    cell = cells.get(("conveyor", scenario))
    return cell.median(key) if cell else None


def targets(
    kind: str, entries: list[Entry], cells: dict[tuple[str, str], Cell]
) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) rows."""
    rows: list[tuple[str, str, str]] = []

    def check(
        name: str, value: float | None, goal: float | None, higher: bool, unit: str, goal_text: str
    ) -> None:
        if value is None or goal is None:
            rows.append((name, "—" if value is None else f"{value:,.2f} {unit}", "not measured"))
            return
        ok = value >= goal if higher else value <= goal
        rows.append((name, f"{value:,.2f} {unit} (goal {goal_text})", "**met**" if ok else "**missed**"))

    def drain_vs(what: str, peers: tuple[str, ...], factor: float) -> None:
        """conveyor's drain against the fastest of ``peers``, for each drain figure."""
        for scenario, key, figure in DRAIN_FIGURES:
            mine = conveyor_value(cells, scenario, key)
            found = [b for b in (best_peer(entries, cells, scenario, key, only=peer) for peer in peers) if b]
            best = max(found) if found else None
            which = f" ({best[1]})" if best and len(peers) > 1 else ""
            check(
                f"drain ({figure}) ≥ {factor:g}x {what}{which}",
                None if mine is None or best is None else mine / best[0],
                factor,
                True,
                "x",
                f"{factor:g}x",
            )

    if kind == "postgres":
        drain_vs("the fastest of graphile-worker and PgQueuer", ("graphile-worker", "pgqueuer"), 2.0)
        return rows

    one = conveyor_value(cells, "enqueue_one", "jobs_per_s")
    bulk = conveyor_value(cells, "enqueue_bulk", "jobs_per_s")
    drain = conveyor_value(cells, "drain", "jobs_per_s")
    p50 = conveyor_value(cells, "latency", "p50_ms")
    p99 = conveyor_value(cells, "latency", "p99_ms")
    if kind == "sqlite":
        huey_one = best_peer(entries, cells, "enqueue_one", "jobs_per_s", only="huey")
        huey_drain = best_peer(entries, cells, "drain", "jobs_per_s", only="huey")
        check("bulk enqueue ≥ 50,000 jobs/s", bulk, 50_000, True, "jobs/s", "50,000")
        check(
            "enqueue one at a time ≥ 2x SqliteHuey",
            None if one is None or huey_one is None else one / huey_one[0],
            2.0,
            True,
            "x",
            "2x",
        )
        check("drain ≥ 10,000 jobs/s", drain, 10_000, True, "jobs/s", "10,000")
        check(
            "drain ≥ 5x SqliteHuey",
            None if drain is None or huey_drain is None else drain / huey_drain[0],
            5.0,
            True,
            "x",
            "5x",
        )
        check("idle latency p50 ≤ 10 ms", p50, 10.0, False, "ms", "10 ms")
        return rows

    py_drain = python_peer(entries, cells, "drain", "jobs_per_s")
    all_one = best_peer(entries, cells, "enqueue_one", "jobs_per_s")
    sk_bulk = best_peer(entries, cells, "enqueue_bulk", "jobs_per_s", only="sidekiq")
    drain_vs("Sidekiq", ("sidekiq",), 2.0)
    drain_vs("the fastest Node peer", NODE_PEERS, 1.0)
    check("drain (20k spawn to last) ≥ 20,000 jobs/s", drain, 20_000, True, "jobs/s", "20,000")
    check(
        f"drain (20k spawn to last) ≥ 10x fastest Python peer ({py_drain[1] if py_drain else '?'})",
        None if drain is None or py_drain is None else drain / py_drain[0],
        10.0,
        True,
        "x",
        "10x",
    )
    check(
        f"enqueue one at a time ≥ 1.3x fastest of all ({all_one[1] if all_one else '?'})",
        None if one is None or all_one is None else one / all_one[0],
        1.3,
        True,
        "x",
        "1.3x",
    )
    check(
        "bulk enqueue ≥ Sidekiq push_bulk",
        None if bulk is None or sk_bulk is None else bulk / sk_bulk[0],
        1.0,
        True,
        "x",
        "1x",
    )
    check("bulk enqueue ≥ 100,000 jobs/s", bulk, 100_000, True, "jobs/s", "100,000")
    check("idle latency p50 ≤ 1 ms", p50, 1.0, False, "ms", "1 ms")
    check("idle latency p99 ≤ 5 ms", p99, 5.0, False, "ms", "5 ms")
    return rows


def render(
    kind: str,
    entries: list[Entry],
    scenarios: list[str],
    cells: dict[tuple[str, str], Cell],
    versions: dict[str, str],
    args: argparse.Namespace,
    started: datetime,
    finished: datetime,
    size: Any,
    done_reps: int,
) -> str:
    title = {"sqlite": "SQLite (embedded)", "redis": "Redis", "postgres": "PostgreSQL"}[kind]
    load_note = versions.get("load", "?")
    raw_name = args.out.with_suffix(".json").name if args.out else f"RESULTS-{kind}.json"
    cols = [c for c in COLUMNS if c[0] in scenarios]
    lines = [
        f"# conveyor benchmark: {title}",
        "",
        f"Reproduce: `make bench-{kind}` (= `.venv/bin/python bench/run.py --store {kind} "
        f"--repeat {args.repeat}{' --quick' if args.quick else ''}"
        f"{f' --systems {args.systems}' if args.systems else ''}`). "
        f"Run {started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC on {machine()}.",
        "",
        f"1-minute load average before each run: {load_note} (on {os.cpu_count()} CPUs; other "
        "processes on the machine add noise, so compare rows of the same run only).",
        "",
        f"Median of {done_reps} run(s) per cell (of {args.repeat} asked for). One worker process "
        "per system, configured as its own load test or benchmark runs it (logging quiet: see "
        '"How each system was run"); a no-op task. Drain: N jobs queued first, then the worker '
        "process is spawned; *spawn to last* is N / the time from its spawn (start-up included) "
        "to the last job run, *steady* is (N - 1,000) / the time from the 1,000th job run to the "
        "last. Latency: enqueue-to-start of jobs paced at "
        f"{RATES[kind]:.0f}/s into an idle worker. † = fewer jobs than the column says (a slow "
        'peer, to keep the run short: see "Sizes and spread"); — = not run.',
        "",
        "| system | " + " | ".join(c[2] for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for e in entries:
        row = []
        for s, k, _ in cols:
            text = cell_text(cells.get((e.label, s)), k)
            if text not in ("—", "n/a", "error") and size(e, s) != size(Entry("conveyor"), s):
                text += " †"
            row.append(text)
        name = f"**{e.label}**" if e.system == "conveyor" else e.label
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    figures = [f for f in DRAIN_FIGURES if f[0] in scenarios]
    if figures:
        lines += ["", "## conveyor's drain against each peer (conveyor / peer)", ""]
        lines += ["| peer | " + " | ".join(f[2] for f in figures) + " |", "|---|" + "---:|" * len(figures)]
        for e in entries:
            if e.system == "conveyor":
                continue
            ratios = []
            for s, k, _ in figures:
                mine = conveyor_value(cells, s, k)
                cell = cells.get((e.label, s))
                theirs = cell.median(k) if cell else None
                ratios.append("—" if mine is None or not theirs else f"{mine / theirs:.2f}x")
            lines.append(f"| {e.label} | " + " | ".join(ratios) + " |")
    lines += ["", "## conveyor against the best peer", ""]
    lines += ["| metric | conveyor | best peer | ratio |", "|---|---:|---:|---:|"]
    for s, k, header in cols:
        mine = conveyor_value(cells, s, k)
        best = best_peer(entries, cells, s, k)
        if mine is None or best is None:
            continue
        lower = k.endswith("_ms")
        ratio = best[0] / mine if lower else mine / best[0]
        fmt = fmt_ms if lower else fmt_rate
        word = "x lower" if lower else "x"
        lines.append(f"| {header} | {fmt(mine)} | {fmt(best[0])} ({best[1]}) | {ratio:.2f}{word} |")
    lines += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(kind, entries, cells)]
    lines += [
        "",
        "## Sizes and spread",
        "",
        "Drain extras: worker CPU (user + system, the worker's process tree) per job, and the "
        "worker's start-up (spawn to first job run), both medians; start-up is inside the drain "
        "time. Server CPU: what the store's server (redis-server, or PostgreSQL's postmaster and "
        "backends) spent per job from the worker's spawn to the end of the drain. The median and "
        "spread are of the spawn-to-last figure.",
        "",
        "| system | scenario | n | median | min - max | runs | worker CPU us/job | server CPU us/job "
        "| start-up s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in entries:
        for s in scenarios:
            cell = cells[(e.label, s)]
            key = "p50_ms" if s == "latency" else "jobs_per_s"
            spread = cell.spread(key)
            unit = " ms p50" if s == "latency" else "/s"
            fmt = fmt_ms if s == "latency" else fmt_rate
            n = size(e, s)
            if n == 0:
                lines.append(f"| {e.label} | {s} | — | not run | | 0 | | | |")
                continue
            if spread is None:
                err = (cell.error() or "no result")[:160].replace("|", "/")
                lines.append(f"| {e.label} | {s} | {n:,} | {err} | | 0 | | | |")
                continue
            cpu = startup = server_cpu = ""
            if s in DRAINS:
                cpus = [r["cpu_s"] / r["n"] * 1e6 for r in cell.ok() if r.get("cpu_s") is not None]
                servers = [
                    r["server_cpu_s"] / r["n"] * 1e6 for r in cell.ok() if r.get("server_cpu_s") is not None
                ]
                server_cpu = f"{statistics.median(servers):,.0f}" if servers else "—"
                ups = [r["startup_s"] for r in cell.ok() if r.get("startup_s") is not None]
                cpu = f"{statistics.median(cpus):,.0f}" if cpus else "?"
                startup = f"{statistics.median(ups):.2f}" if ups else "?"
            lines.append(
                f"| {e.label} | {s} | {n:,} | {fmt(cell.median(key))}{unit} | "
                f"{fmt(spread[0])} - {fmt(spread[1])} | {len(cell.ok())} | {cpu} | {server_cpu} | {startup} |"
            )
    lines += ["", "## How each system was run", ""]
    lines += [f"- **{e.label}**: {e.note}" for e in entries]
    lines += ["", "## Versions", "", "| component | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in versions.items() if k != "load"]
    lines += ["", f"Raw runs: `{raw_name}`.", ""]
    return "\n".join(lines)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} x {model}, Linux {platform.release()}"


def show(
    kind: str, entries: list[Entry], scenarios: list[str], cells: dict[tuple[str, str], Cell], console: Any
) -> None:
    from rich.table import Table

    cols = [c for c in COLUMNS if c[0] in scenarios]
    table = Table(title=f"conveyor benchmark: {kind} (medians)")
    table.add_column("system")
    for _, _, header in cols:
        table.add_column(header, justify="right")
    for e in entries:
        style = "bold green" if e.system == "conveyor" else None
        table.add_row(e.label, *[cell_text(cells.get((e.label, s)), k) for s, k, _ in cols], style=style)
    console.print(table)
    verdicts = Table(title="targets")
    for header in ("target", "measured", "verdict"):
        verdicts.add_column(header)
    for t, m, v in targets(kind, entries, cells):
        verdicts.add_row(t, m, v.replace("**", ""))
    console.print(verdicts)


if __name__ == "__main__":
    sys.exit(main())
