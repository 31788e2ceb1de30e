"""The PgQueuer no-op worker for the benchmark: ``python -m bench.drivers.pgqueuer_tasks URL
drain|continuous``, configured as PgQueuer's own benchmark (tools/benchmark.py) runs it: asyncpg,
uvloop, five ``PgQueuer`` consumers in one process, each on its own connection, dequeuing
batches of 10; its logger at ERROR."""

from __future__ import annotations

import asyncio
import logging
import sys

from bench.drivers import sink

CONSUMERS = 5
BATCH_SIZE = 10


async def consume(url: str, mode_name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    mode = QueueExecutionMode.drain if mode_name == "drain" else QueueExecutionMode.continuous
    consumers = [PgQueuer(AsyncpgDriver(await asyncpg.connect(dsn=url))) for _ in range(CONSUMERS)]
    for pgq in consumers:

        @pgq.entrypoint("noop")
        async def noop(job: Job) -> None:
            sink.noop(float(job.payload) if job.payload else None)

    await asyncio.gather(*(pgq.run(batch_size=BATCH_SIZE, mode=mode) for pgq in consumers))


def main() -> int:
    import uvloop

    logging.getLogger("pgqueuer").setLevel(logging.ERROR)
    uvloop.run(consume(sys.argv[1], sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
