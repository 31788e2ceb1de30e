"""The procrastinate no-op task and its worker for the benchmark: ``python -m
bench.drivers.procrastinate_tasks URL once|wait`` runs ``App.run_worker(concurrency=10,
listen_notify=True)`` (``wait=False`` with ``once``: it exits when the queue is empty). Run
through the Python API, procrastinate configures no logging: nothing is written per job."""

from __future__ import annotations

import sys
from typing import Any

from bench.drivers import sink


def make_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop(ts: float | None = None) -> None:
        sink.noop(ts)

    return app


def main() -> int:
    app = make_app(sys.argv[1])
    app.run_worker(concurrency=10, wait=sys.argv[2] != "once", listen_notify=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
