"""What the task column and its index cost the hot path: another checkout's conveyor against
this one's, in turn (A, B, A, B, ...), on SQLite and PostgreSQL.

    python bench/task_column_ab.py --other /path/to/main/src [--rounds 3]

Each side enqueues 20,000 no-op jobs (batches of 1,000), then claims and acknowledges them
100 at a time straight on the store, in a child process that imports the side's conveyor.
Printed per job: the child's CPU (SQLite: all of the work) and wall time of each phase, and on
PostgreSQL the server's CPU and the WAL it wrote (bytes a job: every index entry written shows
there, whatever the machine's load); the medians per side at the end. PostgreSQL runs on one
private server for both sides.
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

HERE = Path(__file__).resolve().parents[1]


def child(kind: str, url: str) -> None:
    from conveyor import Conveyor

    app = Conveyor(url, namespace=f"ab{time.monotonic_ns()}")

    @app.task(name="ab.noop")
    def noop(i: int) -> None: ...

    backend, n = app.backend, 20_000
    server = os.environ.get("AB_SERVER_PID")

    def server_side() -> tuple[float, float]:
        """PostgreSQL: its processes' CPU seconds and the WAL position (bytes)."""
        if kind != "postgres" or not server:
            return 0.0, 0.0
        from tests.servers import _descendants

        cpu = 0.0
        for pid in _descendants(int(server)):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        lsn = backend._run(
            lambda conn: conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        )
        return cpu, float(lsn[0])

    s0 = server_side()
    c0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, n, 1000):
        app.enqueue_many([noop.job(i) for i in range(start, start + 1000)])
    c1, w1 = time.process_time(), time.perf_counter()
    s1 = server_side()
    done = 0
    while done < n:
        got = backend.fetch(["default"], 100, "w", 30.0, time.time())
        backend.complete([(r.id, None) for r in got], "w", time.time())
        done += len(got)
    c2, w2 = time.process_time(), time.perf_counter()
    s2 = server_side()
    us = 1e6 / n
    figures = {"enqueue_cpu_us": (c1 - c0) * us, "drain_cpu_us": (c2 - c1) * us}
    figures |= {"enqueue_wall_us": (w1 - w0) * us, "drain_wall_us": (w2 - w1) * us}
    if kind == "postgres" and server:
        figures |= {"enqueue_server_us": (s1[0] - s0[0]) * us, "drain_server_us": (s2[0] - s1[0]) * us}
        figures |= {"enqueue_wal_b": (s1[1] - s0[1]) / n, "drain_wal_b": (s2[1] - s1[1]) / n}
    print(json.dumps({"store": kind, **figures, "load": os.getloadavg()[0]}))
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--other", required=True, help="The src folder of the other checkout.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return
    sys.path.insert(0, str(HERE))
    from tests.servers import PostgresServer

    sides = {"other": options.other, "this": str(HERE / "src")}
    found: dict[tuple[str, str], list[dict[str, float]]] = {}
    with PostgresServer() as server, tempfile.TemporaryDirectory() as folder:
        for n in range(options.rounds):
            for side, src in sides.items():
                for kind in ("sqlite", "postgres"):
                    url = f"sqlite:///{folder}/{side}{n}.db" if kind == "sqlite" else server.url
                    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(HERE)]))
                    assert server.proc is not None
                    env["AB_SERVER_PID"] = str(server.proc.pid)
                    out = subprocess.run(
                        [sys.executable, __file__, "--other", src, "--child", kind, url],
                        env=env, capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    row = json.loads(out.stdout)
                    print(side, json.dumps(row), flush=True)
                    found.setdefault((side, kind), []).append(row)
    for (side, kind), rows in sorted(found.items()):
        medians = {
            k: round(statistics.median(r[k] for r in rows), 1) for k in rows[0] if k.endswith(("_us", "_b"))
        }
        print(f"{kind:9} {side:6} medians (us a job): {medians}")


if __name__ == "__main__":
    main()
