"""Issue 19's size comparisons with a real worker process (``make bench-scale``).

    python bench/scale_drain.py --store sqlite|postgres|redis [--jobs 1000000] [--backlog 1000000]

Each measure gets a fresh store (a new SQLite file, PostgreSQL database or Redis namespace):

* drain: ``--jobs`` pending no-op jobs, one worker process (``--burst``, 10 threads). The
  worker writes the jobs it has run and its RSS every 0.2 s; the rate of each tenth of the
  drain and the RSS after the first 100,000 jobs (or tenth, if fewer) against the most it
  reached later are printed. Targets: the last tenth within 10% of the first, RSS within 20%.
* beside: 20,000 pending jobs drained alone (a fresh store each time) and beside ``--backlog``
  scheduled jobs (due in an hour, written by one INSERT on SQL stores, by enqueue_many on
  Redis; one store for every round), ``--rounds`` times interleaved, medians. Target: >= 90%.
* idle: the worker's CPU over 10 s beside the backlog with nothing due. Target: under 2%.
* first job: from the worker's spawn to its first job's start, beside the backlog. Target:
  under 0.5 s.

Everything runs on this machine: figures of a loaded machine are noisy; repeat and compare.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor import Conveyor

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the worker process ----------------------------------------------------------------------
def _worker(url: str, namespace: str, out: Path, burst: bool) -> int:
    """A worker whose no-op task counts its runs; a thread writes ``time runs rss`` lines."""
    app = Conveyor(url, namespace=namespace)
    runs = [0]
    first = [0.0]

    @app.task(name="noop")
    def noop() -> None:
        if not runs[0]:
            first[0] = time.time()
        runs[0] += 1

    stop = threading.Event()

    sqlite_memory = _sqlite_memory_reader() if url.startswith("sqlite") else lambda: 0

    def report() -> None:
        with out.open("w") as f:
            while not stop.wait(0.2):
                rss = int(Path("/proc/self/statm").read_text().split()[1]) * PAGE
                f.write(f"{time.time()} {runs[0]} {rss} {first[0]} {sqlite_memory()}\n")
                f.flush()

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        return app.worker(concurrency=10, burst=burst).run()
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join()


def _sqlite_memory_reader() -> Any:
    """A function giving the bytes SQLite's library holds in this process (page caches, up
    to ``cache_size`` per connection, and prepared statements, 128 per connection at most),
    read with ``sqlite3_status64``, so that a growing RSS can be told apart from them."""
    import _sqlite3
    import ctypes

    status = ctypes.CDLL(_sqlite3.__file__).sqlite3_status64
    current, highest = ctypes.c_int64(), ctypes.c_int64()

    def read() -> int:
        status(0, ctypes.byref(current), ctypes.byref(highest), 0)  # SQLITE_STATUS_MEMORY_USED
        return current.value

    return read


def _spawn(url: str, namespace: str, out: Path, burst: bool = True) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--worker", url, namespace, str(out)]
    if burst:
        command.append("--burst")
    return subprocess.Popen(command, cwd=REPO)


def _lines(out: Path) -> list[tuple[float, int, int, float]]:
    return [(t, n, rss, first) for t, n, rss, first, _ in _samples(out)]


def _samples(out: Path) -> list[tuple[float, int, int, float, int]]:
    """(time, jobs run, RSS, first job's start, SQLite's own memory) every 0.2 s."""
    rows = []
    for line in out.read_text().splitlines():
        t, n, rss, first, lib = line.split()
        rows.append((float(t), int(n), int(rss), float(first), int(lib)))
    return rows


# -- stores ----------------------------------------------------------------------------------
class Store:
    """Fresh namespaces (or files, or databases) of one kind of store."""

    def __init__(self, kind: str, stack: contextlib.ExitStack) -> None:
        self.kind = kind
        self.n = 0
        if kind == "redis":
            from tests.servers import RedisServer

            self.server: Any = stack.enter_context(RedisServer(appendonly=False))
        elif kind == "postgres":
            from tests.servers import PostgresServer

            self.server = stack.enter_context(PostgresServer())
        else:
            self.folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conveyor-scale-")))

    def fresh(self) -> tuple[str, str]:
        self.n += 1
        if self.kind == "redis":
            return self.server.url, f"scale{self.n}"
        if self.kind == "postgres":
            return self.server.create_database(f"scale{self.n}"), "scale"
        return f"sqlite:///{self.folder}/scale{self.n}.db", "scale"

    def backlog(self, url: str, namespace: str, count: int) -> None:
        """``count`` scheduled no-op jobs, due in an hour or later."""
        app = Conveyor(url, namespace=namespace)

        @app.task(name="noop")
        def noop() -> None: ...

        if self.kind == "redis":
            for i in range(0, count, 50_000):
                app.enqueue_many(
                    [noop.using(delay=3600 + i % 1000).job() for _ in range(min(50_000, count - i))]
                )
            app.close()
            return
        app.backend  # noqa: B018 - opening makes the schema
        app.close()
        from tests.scale.backlog import fill_postgres, fill_sqlite

        if self.kind == "sqlite":
            fill_sqlite(url.removeprefix("sqlite:///"), count, payload=b'{"t":"noop","a":[],"k":{}}')
        else:
            fill_postgres(url, namespace, count, payload=b'{"t":"noop","a":[],"k":{}}')

    def pending(self, url: str, namespace: str, count: int) -> None:
        app = Conveyor(url, namespace=namespace)

        @app.task(name="noop")
        def noop() -> None: ...

        for i in range(0, count, 50_000):
            app.enqueue_many([noop.job() for _ in range(min(50_000, count - i))])
        app.close()


@contextlib.contextmanager
def opened(kind: str) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        yield Store(kind, stack)


# -- measures --------------------------------------------------------------------------------
def drain(store: Store, jobs: int, backlog: int = 0, into: tuple[str, str] | None = None) -> dict[str, Any]:
    """A drain of ``jobs`` pending jobs in a fresh store (beside ``backlog`` scheduled ones),
    or in the store ``into`` (url, namespace) as it is."""
    url, ns = into or store.fresh()
    if backlog and into is None:
        store.backlog(url, ns, backlog)
    store.pending(url, ns, jobs)
    out = Path(tempfile.mktemp(prefix="conveyor-drain-"))
    _spawn(url, ns, out).wait()
    samples = _samples(out)
    rows = [(t, n, rss, first) for t, n, rss, first, _ in samples]
    out.unlink()
    tenth = jobs / 10
    crossed = [next(t for t, n, _, _ in rows if n >= k * tenth) for k in range(1, 11)]
    start = next(t for t, n, _, _ in rows if n > 0)
    tenths = [tenth / (b - a) for a, b in zip([start, *crossed[:-1]], crossed, strict=True) if b > a]
    early = min(100_000, int(tenth))
    rss_early = next(rss for _, n, rss, _ in rows if n >= early)
    rss_later = max(rss for _, n, rss, _ in rows if n >= early)
    # The same without SQLite's own memory (0 on the other stores): what Python holds.
    own_early = next(rss - lib for _, n, rss, _, lib in samples if n >= early)
    own_later = max(rss - lib for _, n, rss, _, lib in samples if n >= early)
    # RSS as each tenth is crossed: a slow leak shows as a slope, a warm-up as a step.
    rss_tenths = [next(rss for t, _, rss, _ in rows if t >= at) / 2**20 for at in crossed]
    return {
        "tenths": tenths,
        "rss_tenths": rss_tenths,
        "sqlite_mb": max(lib for *_, lib in samples) / 2**20,
        "own_early_mb": own_early / 2**20,
        "own_most_mb": own_later / 2**20,
        "rate": jobs / (crossed[-1] - start),
        "first_tenth": tenths[0],
        "last_tenth": tenths[-1],
        "rss_early_mb": rss_early / 2**20,
        "rss_most_mb": rss_later / 2**20,
    }


def idle_and_first(store: Store, backlog: int) -> dict[str, float]:
    url, ns = store.fresh()
    store.backlog(url, ns, backlog)
    store.pending(url, ns, 1)
    out = Path(tempfile.mktemp(prefix="conveyor-idle-"))
    spawned = time.time()
    worker = _spawn(url, ns, out, burst=False)
    try:
        time.sleep(3.0)  # started, ran its one job, now idle
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        before, at = cpu(), time.monotonic()
        time.sleep(10.0)
        idle = (cpu() - before) / (time.monotonic() - at)
    finally:
        worker.terminate()
        worker.wait()
    first = max(f for _, _, _, f in _lines(out))
    out.unlink()
    return {"idle_cpu_percent": idle * 100, "first_job_s": first - spawned}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis"))
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved alone/beside drains")
    parser.add_argument("--only-drain", action="store_true", help="the long drain alone")
    parser.add_argument("--worker", nargs=3, metavar=("URL", "NAMESPACE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--burst", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        url, namespace, out = options.worker
        sys.exit(_worker(url, namespace, Path(out), options.burst))
    if options.store is None:
        parser.error("--store is required")
    with opened(options.store) as store:
        print(f"{options.store}: {options.jobs:,} jobs, backlog {options.backlog:,}", flush=True)
        long = drain(store, options.jobs)
        print(
            f"drain {options.jobs:,}: {long['rate']:.0f} jobs/s; first tenth {long['first_tenth']:.0f}/s,"
            f" last tenth {long['last_tenth']:.0f}/s ({long['last_tenth'] / long['first_tenth']:.2f}x);"
            f" RSS {long['rss_early_mb']:.1f} MB early, at most {long['rss_most_mb']:.1f} MB"
            f" ({long['rss_most_mb'] / long['rss_early_mb']:.2f}x)",
            flush=True,
        )
        print(f"  tenths (jobs/s): {', '.join(f'{r:.0f}' for r in long['tenths'])}", flush=True)
        print(f"  RSS at each tenth (MB): {', '.join(f'{m:.1f}' for m in long['rss_tenths'])}", flush=True)
        if options.store == "sqlite":
            print(
                f"  without SQLite's own memory (caches, statements: at most {long['sqlite_mb']:.1f} MB):"
                f" {long['own_early_mb']:.1f} MB early, at most {long['own_most_mb']:.1f} MB"
                f" ({long['own_most_mb'] / long['own_early_mb']:.2f}x)",
                flush=True,
            )
        if options.only_drain:
            return
        # Single drains of 20k jobs swing 2x from one to the next on a shared machine: the
        # two are interleaved, each in a fresh store or in the one store that keeps the backlog.
        crowded = store.fresh()
        store.backlog(*crowded, options.backlog)
        alone: list[float] = []
        beside: list[float] = []
        for _ in range(options.rounds):
            alone.append(drain(store, 20_000)["rate"])
            beside.append(drain(store, 20_000, into=crowded)["rate"])
        print(
            f"20k pending, medians of {options.rounds}: alone {statistics.median(alone):.0f} jobs/s,"
            f" beside {options.backlog:,} scheduled {statistics.median(beside):.0f} jobs/s"
            f" ({statistics.median(beside) / statistics.median(alone):.2f}x);"
            f" alone {', '.join(f'{r:.0f}' for r in alone)}; beside {', '.join(f'{r:.0f}' for r in beside)}",
            flush=True,
        )
        idle = idle_and_first(store, options.backlog)
        print(
            f"beside {options.backlog:,} scheduled: idle worker {idle['idle_cpu_percent']:.2f}% of a core,"
            f" first job {idle['first_job_s']:.2f} s after spawn",
            flush=True,
        )


if __name__ == "__main__":
    main()
