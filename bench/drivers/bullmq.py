"""Benchmark driver for BullMQ (Node, npm ``bullmq``): one ``node bullmq_worker.js`` process,
concurrency 50, finished jobs removed at once; enqueue from Node (``Queue.add`` one at a time,
``Queue.addBulk`` 10,000 a call). Scripts in bench/drivers/node/."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: import from the repo root, not this folder
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[2])

import sys
from typing import Any

from bench.drivers import common, node

SYSTEM = "bullmq"


def version() -> str:
    return node.version("bullmq")


def main() -> int:
    args = common.parse_args(SYSTEM, [])
    return common.run_main(SYSTEM, args.variant, version, lambda: run(args))


def run(args: Any) -> dict[str, Any]:
    common.flush_redis(args.url)
    return node.run_peer(args, SYSTEM, "bullmq", "bullmq")


if __name__ == "__main__":
    sys.exit(main())
