"""Run one conveyor worker for the benchmark when the ``conveyor`` CLI is not available:
``python -m bench.drivers.conveyor_worker [--burst] [--concurrency 10]``."""

from __future__ import annotations

import argparse
import sys

from bench.drivers.conveyor_tasks import app


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--burst", action="store_true")
    args = parser.parse_args()
    return app.worker(concurrency=args.concurrency, burst=args.burst).run()


if __name__ == "__main__":
    sys.exit(main())
