"""Benchmark driver for graphile-worker (Node, npm ``graphile-worker``, PostgreSQL): one ``node
graphile_worker.js`` process configured as graphile-worker's own perf test (10 concurrent jobs,
a local queue of 500, completions batched with no delay); enqueue from Node (``addJob`` one at a
time, ``addJobs`` 10,000 a call). Every run gets a fresh database. Scripts in
bench/drivers/node/."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import sys
from typing import Any

from bench.drivers import common, node

SYSTEM = "graphile-worker"


def version() -> str:
    return node.version("graphile-worker")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def run(args: Any) -> dict[str, Any]:
    return node.run_peer(args, SYSTEM, "graphile-worker", "graphile")


if __name__ == "__main__":
    sys.exit(main())
