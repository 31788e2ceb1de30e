"""The huey no-op task: SqliteHuey for a sqlite:/// URL, RedisHuey for redis://
(``$BENCH_URL``)."""

from __future__ import annotations

import os

from huey import Huey, RedisHuey, SqliteHuey  # type: ignore[import-untyped]

from bench.drivers import sink

_url = os.environ.get("BENCH_URL", "sqlite:///huey-bench.db")

huey: Huey
if _url.startswith("sqlite:///"):
    huey = SqliteHuey("bench", filename=_url[len("sqlite:///") :])
else:
    huey = RedisHuey("bench", url=_url)


@huey.task(name="noop")  # type: ignore[untyped-decorator]
def noop(ts: float | None = None) -> None:
    sink.noop(ts)
