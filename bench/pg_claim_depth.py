"""Where conveyor's PostgreSQL drain time goes at depth: claim and ack straight on the store,
one thread, batches of 100, through a drain of N jobs (default 100,000) with no VACUUM but
PostgreSQL's own; the median claim and ack per tenth of the drain, then the live and dead
tuples left in the jobs table and its indexes.

    .venv/bin/python bench/pg_claim_depth.py [N]
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])

import statistics
import sys
import time

BATCH = 100


def main() -> int:
    from conveyor import Conveyor
    from tests.servers import PostgresServer

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with PostgresServer() as pg:
        app = Conveyor(pg.create_database("claim_depth"))

        @app.task(name="noop")
        def noop() -> None:
            pass

        for chunk in range(0, n, 10_000):
            app.enqueue_many([noop.job() for _ in range(min(10_000, n - chunk))])
        backend = app.backend
        claims: list[float] = []
        acks: list[float] = []
        for _ in range(n // BATCH):
            t0 = time.perf_counter()
            got = backend.fetch(None, BATCH, "bench", 30, time.time())
            t1 = time.perf_counter()
            backend.complete([(r.id, None) for r in got], "bench", time.time())
            claims.append((t1 - t0) * 1000)
            acks.append((time.perf_counter() - t1) * 1000)
        tenth = max(1, len(claims) // 10)
        for part in range(10):
            c = claims[part * tenth : (part + 1) * tenth]
            a = acks[part * tenth : (part + 1) * tenth]
            if c:
                print(
                    f"tenth {part + 1}: claim p50 {statistics.median(c):.2f} ms, "
                    f"ack p50 {statistics.median(a):.2f} ms per batch of {BATCH}"
                )
        sql = "SELECT n_live_tup, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs'"
        print("jobs live|dead:", pg.psql(sql, dbname="claim_depth").strip())
        print(pg.psql("SELECT indexdef FROM pg_indexes WHERE tablename = 'jobs'", dbname="claim_depth"))
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
