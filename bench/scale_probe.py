"""What idle store calls cost beside a backlog of N scheduled jobs (issue 19's probe).

    python bench/scale_probe.py --store sqlite 10000 1000000
    python bench/scale_probe.py --store postgres 10000 1000000

For each N: the jobs are written with one INSERT ... SELECT (as a backlog that grew over time
would be), ANALYZE runs (so the statistics say "every job is scheduled"), then each call is
timed five times and its median printed: a claim that finds nothing due, recover, stats and
two listings. Costs that do not grow with N are the goal; ``tests/scale/`` holds the same
calls to a work count (SQLite VM steps, PostgreSQL pages) at small sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conveyor import Conveyor
from tests.scale.backlog import fill_postgres, fill_sqlite


def _median_ms(call: Callable[[], Any], times: int = 5) -> float:
    took = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(time.perf_counter() - start)
    return statistics.median(took) * 1000


def probe(app: Conveyor) -> dict[str, float]:
    backend = app.backend
    return {
        "fetch, nothing due": _median_ms(lambda: backend.fetch(None, 10, "probe", 30.0, time.time())),
        "recover": _median_ms(lambda: backend.recover(time.time(), time.time() - 3600)),
        "stats": _median_ms(lambda: backend.stats(time.time())),
        "jobs(dead)": _median_ms(lambda: backend.jobs("dead", limit=50)),
        "jobs(scheduled)": _median_ms(lambda: backend.jobs("scheduled", limit=50)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), required=True)
    parser.add_argument("sizes", nargs="+", type=int)
    options = parser.parse_args()
    if options.store == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="conveyor-scale-"))
        for count in options.sizes:
            path = folder / f"{count}.db"
            app = Conveyor(f"sqlite:///{path}", namespace="scale")
            app.backend  # noqa: B018 - opening makes the schema
            fill_sqlite(path, count)
            print(count, {k: round(v, 2) for k, v in probe(app).items()})
            app.close()
        return
    from tests.servers import PostgresServer

    with PostgresServer() as server:
        for count in options.sizes:
            ns = f"scale_{count}"
            app = Conveyor(server.url, namespace=ns)
            app.backend  # noqa: B018 - opening makes the schema
            fill_postgres(server.url, ns, count)
            print(count, {k: round(v, 2) for k, v in probe(app).items()})
            app.close()


if __name__ == "__main__":
    main()
