"""What the admin calls and each dashboard page cost beside a backlog of N jobs (issue 19 §2).

    python bench/scale_admin.py --store sqlite 10000 1000000
    python bench/scale_admin.py --store postgres|redis|cluster 10000 1000000 [--json out.json]

For each N a store gets a backlog of every state (half completed, a quarter to a third
scheduled, a tenth dead, a tenth pending, a few retry and cancelled on the SQL stores),
written fast (one INSERT ... SELECT on SQL, streamed through the store's own scripts on
Redis). Then each call is timed (the median of five, or of one when a call takes seconds)
through the public API and the dashboard (Starlette's TestClient, a bearer token): stats, a
first page of every state, page 11 (a cursor where the app has one, an offset before), a
search that matches nothing, get, and the pages /, /jobs?state=..., /queues, /jobs/<id>,
/metrics. On Redis the SLOWLOG's slowest command of each kind is printed too (commands over
1 ms, one round: on a loaded machine a single entry may be noise; tests/scale has the
repeated check).

Runs against whichever conveyor is importable: ``PYTHONPATH=/path/to/other/src`` measures
another checkout (the "before" of bench/RESULTS-scale-admin.md) with the same backlogs.

A backlog of ten million takes from minutes (SQLite) to most of an hour (Redis, through its
scripts) to write, so it can be kept and measured again: ``--url URL --namespace NS
--fill-only N`` writes it into a store that outlives the run (a file, a server started by
hand), and ``--url URL --namespace NS --size N`` measures what is there.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import inspect
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import orjson

from conveyor import Conveyor
from tests.scale.backlog import fill_postgres, fill_redis, fill_sqlite

STATES = ("pending", "active", "scheduled", "retry", "dead", "completed", "cancelled")
SQL_MIX = {
    "completed": 0.5,
    "scheduled": 0.25,
    "dead": 0.1,
    "pending": 0.1,
    "retry": 0.025,
    "cancelled": 0.025,
}
REDIS_MIX = {"completed": 0.5, "dead": 0.1, "scheduled": 0.3, "pending": 0.1}
TOKEN = "bench-token"


def timed_ms(call: Callable[[], Any], times: int = 5) -> float:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
        if took[-1] > 2.0:  # seconds a call: once is enough to show it
            break
    return statistics.median(took) * 1000


def deep_page(app: Conveyor, state: str) -> Callable[[], Any]:
    """Page 11 of 50 jobs: from a cursor where the app pages by one, else by offset."""
    if hasattr(app, "jobs_page"):
        cursor = app.jobs_page(state, limit=500).next
        return lambda: app.jobs_page(state, limit=50, after=cursor)
    return lambda: app.jobs(state=state, limit=50, offset=500)


def deep_url(app: Conveyor, state: str) -> str:
    if hasattr(app, "jobs_page"):
        cursor = app.jobs_page(state, limit=500).next
        return f"/jobs?state={state}&limit=50" + (f"&after={cursor}" if cursor else "")
    return f"/jobs?state={state}&limit=50&offset=500"


def measure(app: Conveyor) -> dict[str, float]:
    from starlette.testclient import TestClient

    found: dict[str, float] = {}
    found["stats"] = timed_ms(app.stats)
    for state in STATES:
        found[f"jobs({state})"] = timed_ms(functools.partial(app.jobs, state=state, limit=50))
    for state in ("completed", "dead", "scheduled", "pending"):
        found[f"jobs({state}) page 11"] = timed_ms(deep_page(app, state))
    found["search, no match"] = timed_ms(lambda: app.jobs(state="completed", limit=50, search="nobody"), 3)
    by_task = "task" in inspect.signature(app.jobs_page).parameters
    if by_task:
        # One job in a thousand is of the task scale.rare (tests/scale/backlog.py).
        for state in ("completed", "dead", "pending"):
            found[f"search by task ({state})"] = timed_ms(
                functools.partial(app.jobs_page, state, limit=50, task="scale.rare"), 3
            )
    some = app.jobs(state="dead", limit=1)
    found["get"] = timed_ms(lambda: app.get_job(some[0].id)) if some else float("nan")
    client = TestClient(
        app.dashboard(token=TOKEN),
        base_url="http://127.0.0.1",
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    with client:
        pages = {"/": "/", "/queues": "/queues", "/metrics": "/metrics"}
        for state in STATES:
            pages[f"/jobs?state={state}"] = f"/jobs?state={state}"
        pages["/jobs?state=completed, page 11"] = deep_url(app, "completed")
        pages["/jobs?state=completed&q=nobody"] = "/jobs?state=completed&q=nobody"
        if by_task:
            for state in ("completed", "dead"):
                pages[f"/jobs?state={state}&task=scale.rare"] = f"/jobs?state={state}&task=scale.rare"
        if some:
            pages["/jobs/<id>"] = f"/jobs/{some[0].id}"
        for name, path in pages.items():
            first = client.get(path)
            if first.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {first.status_code}")
            found[name] = timed_ms(functools.partial(client.get, path), 3)
    return found


def slowlog(server: Any) -> dict[str, int]:
    """The slowest logged command of each kind (microseconds)."""
    from conveyor.backends.redis.wire import SCRIPTS, script_source

    names = {hashlib.sha1(script_source(n).encode()).hexdigest(): n for n in SCRIPTS}
    entries = server.command("SLOWLOG", "GET", "100000")
    worst: dict[str, int] = {}
    for entry in entries:
        args = [bytes(a) for a in entry[3]]
        kind = args[0].decode().upper()
        if kind == "EVALSHA":
            kind = names.get(args[1].decode(), args[1].decode()[:8])
        worst[kind] = max(worst.get(kind, 0), int(entry[2]))
    return worst


def fill(kind: str, app: Conveyor, count: int) -> None:
    """``count`` jobs of every state in the mix into ``app``'s store (``--url`` runs)."""
    backend: Any = app.backend
    if kind == "sqlite":
        for state, share in SQL_MIX.items():
            offset = -5_000 if state == "pending" else 3_600
            fill_sqlite(backend.path, int(count * share), state, offset=offset, namespace=app.namespace)
    elif kind == "postgres":
        for state, share in SQL_MIX.items():
            fill_postgres(app.url, app.namespace, int(count * share), state)
        import psycopg

        with psycopg.connect(app.url, autocommit=True) as conn:
            conn.execute(f"VACUUM (ANALYZE) {app.namespace}.jobs")  # as stores() does
    else:
        for state, share in REDIS_MIX.items():
            fill_redis(app, int(count * share), state)


def stores(kind: str, sizes: list[int], stack: ExitStack) -> Iterator[tuple[int, Conveyor, Any]]:
    """(size, app with its backlog, the Redis server or None) for each size."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="conveyor-scale-admin-"))
        for count in sizes:
            path = folder / f"{count}.db"
            app = Conveyor(f"sqlite:///{path}", namespace="scale")
            app.backend  # noqa: B018 - opening makes the schema
            for state, share in SQL_MIX.items():
                fill_sqlite(path, int(count * share), state, offset=-5_000 if state == "pending" else 3_600)
            yield count, app, None
            app.close()
            path.unlink()
        return
    from tests.servers import PostgresServer, RedisCluster, RedisServer

    if kind == "postgres":
        server = stack.enter_context(PostgresServer())
        for count in sizes:
            ns = f"scale_{count}"
            app = Conveyor(server.url, namespace=ns)
            app.backend  # noqa: B018
            for state, share in SQL_MIX.items():
                fill_postgres(server.url, ns, int(count * share), state)
            # As a store that has held its jobs a while: vacuumed, hint bits set. Fresh rows
            # make every first read write (hint bits) while autovacuum runs beside it.
            import psycopg

            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute(f"VACUUM (ANALYZE) {ns}.jobs")
            yield count, app, None
            app.close()
        return
    redis: Any = stack.enter_context(RedisServer(appendonly=False) if kind == "redis" else RedisCluster())
    url = redis.url if kind == "redis" else "redis+cluster://{}:{}".format(*redis.nodes[0])
    single = redis if kind == "redis" else None
    for count in sizes:
        app = Conveyor(url, namespace=f"scale{count}")
        for state, share in REDIS_MIX.items():
            fill_redis(app, int(count * share), state)
        if single is not None:
            single.command("CONFIG", "SET", "slowlog-log-slower-than", "1000")
            single.command("CONFIG", "SET", "slowlog-max-len", "100000")
            single.command("SLOWLOG", "RESET")
        yield count, app, single
        app.close()
        if single is not None:
            single.command("FLUSHALL")


def table(before: Path, after: Path, store: str) -> str:
    """A Markdown table of one store's figures: each call at each size, before and after."""
    runs: dict[tuple[str, int], dict[str, float]] = {}
    for label, path in (("before", before), ("after", after)):
        for line in path.read_text().splitlines():
            row = orjson.loads(line)
            if row["store"] == store:
                runs[label, row["size"]] = row["ms"]
    sizes = sorted({size for _, size in runs})
    columns = [(label, size) for size in sizes for label in ("before", "after") if (label, size) in runs]
    lines = [
        "| ms | " + " | ".join(f"{label} {size:,}" for label, size in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name in dict.fromkeys(name for figures in runs.values() for name in figures):
        cells = [runs[c].get(name) for c in columns]
        lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v:,.1f}" for v in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres", "redis", "cluster"), required=True)
    parser.add_argument("--json", type=Path, help="Append the figures to this file (JSON lines).")
    parser.add_argument(
        "--table", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="Print two runs' table."
    )
    parser.add_argument("--url", help="A store that outlives the run (with --namespace).")
    parser.add_argument("--namespace", help="The namespace of the backlog at --url.")
    parser.add_argument("--fill-only", type=int, metavar="N", help="Write N jobs at --url and stop.")
    parser.add_argument("--size", type=int, help="How many jobs the backlog at --url holds.")
    parser.add_argument("sizes", nargs="*", type=int)
    options = parser.parse_args()
    if options.table:
        print(table(options.table[0], options.table[1], options.store))
        return
    if options.url:
        kept = Conveyor(options.url, namespace=options.namespace or "scale")
        kept.backend  # noqa: B018 - opening makes the schema
        if options.fill_only:
            started = time.perf_counter()
            fill(options.store, kept, options.fill_only)
            print(f"filled {options.fill_only:,} in {time.perf_counter() - started:,.0f} s", flush=True)
            return
        with ExitStack() as stack:
            stack.callback(kept.close)
            server = None
            if options.store == "redis":
                from urllib.parse import urlsplit

                from tests.servers import resp_command

                port = urlsplit(options.url).port or 6379
                server = types.SimpleNamespace(command=functools.partial(resp_command, port))
                server.command("CONFIG", "SET", "slowlog-log-slower-than", "1000")
                server.command("CONFIG", "SET", "slowlog-max-len", "100000")
                server.command("SLOWLOG", "RESET")
            report(options, options.size or 0, kept, server)
        return
    with ExitStack() as stack:
        for count, app, server in stores(options.store, options.sizes, stack):
            report(options, count, app, server)


def report(options: argparse.Namespace, count: int, app: Conveyor, server: Any) -> None:
    """Measure one backlog and print (and append to --json) its figures."""
    import conveyor

    source = str(Path(conveyor.__file__).resolve().parents[1])
    started = time.perf_counter()
    figures = measure(app)
    row: dict[str, Any] = {
        "store": options.store,
        "size": count,
        "conveyor": source,
        "ms": {k: round(v, 2) for k, v in figures.items()},
        "measured_s": round(time.perf_counter() - started, 1),
        "load": os.getloadavg()[0],
    }
    if server is not None:
        row["slowlog_us"] = slowlog(server)
    print(orjson.dumps(row).decode(), flush=True)
    if options.json:
        with options.json.open("a") as out:
            out.write(orjson.dumps(row).decode() + "\n")


if __name__ == "__main__":
    main()
