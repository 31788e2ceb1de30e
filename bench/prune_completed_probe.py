"""Pruning completed jobs past result_ttl: how many housekeeping passes a backlog takes, per
store, this code against another (issue 19: one batch of 10,000 a pass kept up with ~1,000
jobs/s per worker at a beat every 10 s).

    python bench/prune_completed_probe.py [--jobs 200000] [--stores sqlite,postgres,redis]
        [--code /work/main/src --code src]

For each store and version of conveyor (``--code``, first on PYTHONPATH, in a child process
of its own): ``--jobs`` completed jobs finished long ago are written straight into a fresh
namespace (server-side where the store can), then the worker's housekeeping pass
(``recover``, as each beat runs it) is called until none is left. Printed: the passes, the
jobs each deleted, its seconds, and the rate (jobs deleted a second of pass). The beat comes
every ``lease / 3`` (10 s by default): a pass that deletes N jobs keeps pace with a drain of
N / 10 s per worker.
"""

from __future__ import annotations

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def fill(app: Any, store: str, count: int) -> None:
    backend: Any = app.backend
    if store == "sqlite":
        with backend._write() as conn:
            conn.execute(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                f" INSERT INTO {backend.t} (id, queue, payload, priority, state, run_at, max_attempts,"
                f" created_at, finished_at) SELECT printf('done-%09d', i), 'default', X'7B7D',"
                f" 0, 'completed', 0, 1, 0, i FROM n",
                (count,),
            )
    elif store == "postgres":
        schema = backend.schema
        backend._run(
            lambda conn: conn.execute(
                f"INSERT INTO {schema}.jobs (id, queue, payload, priority, state, run_at, max_attempts,"
                f" created_at, finished_at) SELECT 'done-' || lpad(g::text, 9, '0'), 'default',"
                f" '\\x7b7d'::bytea, 0, 'completed', 0, 1, 0, g FROM generate_series(1, %(n)s) g",
                {"n": count},
            )
        )
        backend._run(lambda conn: conn.execute(f"ANALYZE {schema}.jobs"))
    else:
        prefix = backend.keys.prefix("default")
        client = backend.client
        client.sadd(backend.keys.queues, "default")
        for start in range(1, count + 1, 10_000):
            pipe = client.pipeline(transaction=False)
            scored: dict[str, float] = {}
            for i in range(start, min(start + 10_000, count + 1)):
                job_id = f"done-{i:09d}"
                fields = {"p": b"{}", "m": "0|1||0", "s": "completed", "ra": "0", "a": "1", "fa": str(i)}
                pipe.hset(prefix + "j:" + job_id, mapping=fields)
                scored[job_id] = float(i)
            pipe.zadd(prefix + "done", scored)
            pipe.execute()


def left(app: Any, store: str) -> int:
    backend: Any = app.backend
    if store == "redis":
        return int(backend.client.zcard(backend.keys.prefix("default") + "done"))
    if store == "sqlite":
        with backend._write() as conn:
            return int(
                conn.execute(f"SELECT count(*) FROM {backend.t} WHERE state = 'completed'").fetchone()[0]
            )
    row = backend._run(lambda conn: conn.execute(f"SELECT count(*) FROM {backend.schema}.jobs").fetchone())
    return int(row[0])


def child(url: str, store: str, count: int) -> None:
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"pc{os.getpid()}")
    fill(app, store, count)
    passes: list[tuple[int, float]] = []
    remaining = left(app, store)
    while remaining and len(passes) < 100:
        began = time.perf_counter()
        app.backend.recover(time.time(), time.time() - 3600)
        took = time.perf_counter() - began
        now_left = left(app, store)
        passes.append((remaining - now_left, took))
        remaining = now_left
    app.close()
    print(json.dumps({"passes": passes, "left": remaining, "load": os.getloadavg()[0]}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    parser.add_argument("--code", action="append", help="a src/ folder to take conveyor from")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child[0], options.child[1], int(options.child[2]))
        return
    from tests.servers import PostgresServer, RedisServer

    codes = [str(Path(c).resolve()) for c in options.code] if options.code else [str(REPO / "src")]
    for store in options.stores.split(","):
        server: Any = None
        if store == "redis":
            server = RedisServer(appendonly=False).start()
        elif store == "postgres":
            server = PostgresServer().start()
        try:
            for code in codes:
                url = server.url if server else f"sqlite:///{tempfile.mkdtemp(prefix='prune-done-')}/jobs.db"
                env = dict(os.environ, PYTHONPATH=os.pathsep.join([code, str(REPO)]))
                out = subprocess.run(
                    [sys.executable, __file__, "--child", url, store, str(options.jobs)],
                    env=env, cwd=REPO, check=True, capture_output=True, text=True,
                )  # fmt: skip
                found = json.loads(out.stdout.strip().splitlines()[-1])
                passes = found["passes"]
                deleted = sum(n for n, _ in passes)
                spent = sum(t for _, t in passes)
                first = passes[0] if passes else (0, 0.0)
                print(
                    f"{store:8} {code:28} {options.jobs:,} expired: {len(passes)} passes, first deleted"
                    f" {first[0]:,} in {first[1]:.2f} s; {deleted:,} in {spent:.2f} s of passes"
                    f" ({deleted / spent if spent else 0:,.0f} jobs/s), left {found['left']:,},"
                    f" load {found['load']:.1f}",
                    flush=True,
                )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
