"""Limits as an operator sees them: ``conveyor info`` (table and --json), ``conveyor top``,
the dashboard's queues page and /metrics, each showing every limit, its slots in use and the
jobs waiting on it."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from conveyor.job import WorkerInfo
from tests.cli.helpers import cli
from tests.dashboard.conftest import ClientFactory
from tests.dashboard.helpers import PASSWORD, Demo, log_in

from .test_pages import HTML, _metrics


def _limited(demo: Demo) -> None:
    app = demo.app

    @app.task(name="api.call", queue="api", concurrency=2, limit_key=lambda account: account)
    def call(account: str) -> None: ...

    app.limit_queue("api", rate="100/m")
    app.define_limits()
    for account in ("a", "a", "a", "b"):
        call.enqueue(account)
    app.backend.fetch(["api"], 10, "w", 30, time.time() + 0.05)
    app.backend.heartbeat(WorkerInfo("w", "h", 1, ("api",), 4, time.time()), 30, time.time())


def test_info_top_dashboard_and_metrics_show_each_limit(
    make_client: ClientFactory, demo: Demo, tmp_path: Path
) -> None:
    _limited(demo)
    env = {"CONVEYOR_URL": demo.app.url}
    info = orjson.loads(cli("info", "--json", env=env, cwd=tmp_path).stdout)
    by_limit = {u["limit"]: u for u in info["limits"]}
    assert by_limit["api.call"] == {
        "queue": "api", "limit": "api.call", "concurrency": 2, "rate": None, "per": None, "burst": None,
        "active": 3, "waiting": 1, "keys": 2,
    }  # fmt: skip
    assert by_limit[None]["rate"] == 100 and by_limit[None]["burst"] == 10 and by_limit[None]["active"] == 3
    assert info["queues"]["api"] == {"active": 3, "pending": 1}

    table = cli("info", env=env, cwd=tmp_path).stdout
    assert "api.call\tapi\tconcurrency 2\t3/2 per key\t1\t2" in table
    assert "queue api\tapi\trate 100/m (burst 10)\t3\t1\t-" in table

    top = cli("top", env=env, cwd=tmp_path).stdout
    assert "api.call" in top and "3/2 per key" in top and "rate 100/m (burst 10)" in top

    client = make_client()
    log_in(client)
    page = client.get("/queues", headers=HTML).text
    assert '<tr data-limit="api.call">' in page and "3/2 per key" in page and "rate 100/m (burst 10)" in page
    values = _metrics(client.get("/metrics", headers={"authorization": f"Bearer {PASSWORD}"}).text)
    labels = (("limit", "api.call"), ("queue", "api"))
    assert values[("conveyor_limit_running", labels)] == 3
    assert values[("conveyor_limit_waiting", labels)] == 1
    assert values[("conveyor_limit_concurrency", labels)] == 2
    assert values[("conveyor_limit_keys", labels)] == 2
    assert values[("conveyor_limit_rate_per_second", (("limit", "queue api"), ("queue", "api")))] == 100 / 60
