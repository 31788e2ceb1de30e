"""Fixtures every test directory shares, and the rule that CI never skips.

Servers: ``redis_server``, ``redis_cluster``, ``postgres_server`` start on first use and stop
at the end of the session. Tests that restart or kill a server start their own instance
(``with RedisServer() as server: ...``) rather than disturb the shared one.

Stores: ``store`` is each kind in turn (``sqlite``, ``redis``, ``postgres``) and ``store_url``
a real store of that kind; a test that takes either runs once per store. A directory may
override ``store_url`` (``tests/redis`` points it at a Redis Cluster).

Skips: on a developer machine a missing server binary, extra or browser skips the tests that
need it, with the reason. Under ``CI=true`` every skip is turned into a failure carrying that
reason, so CI can never pass by silently leaving a store or a page untested.

Files: a test writes into its ``tmp_path``, or into ``build/`` (ignored by git), never
elsewhere in the work tree; ``bash scripts/test.sh`` leaves ``git status`` clean.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.harness import ROOT, in_ci, start_server
from tests.servers import PostgresServer, RedisCluster, RedisServer

STORES = ("sqlite", "redis", "postgres")

# Tests write nothing into the work tree but build/ (ignored): Hypothesis keeps its examples
# and caches there, not in ./.hypothesis.
set_hypothesis_home_dir(ROOT / "build" / "hypothesis")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server with AOF (fsync always) for the whole session; ``.url``, ``.port``."""
    server = start_server(RedisServer)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster for the whole session; ``.url`` (first node), ``.nodes``."""
    cluster = start_server(RedisCluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server (fsync off) for the whole session; ``.url``, ``.create_database()``."""
    server = start_server(PostgresServer)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    """The kind of store: each of ``STORES`` in turn."""
    return str(request.param)


@pytest.fixture
def store_url(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real store of each kind: a fresh SQLite file, or the session's shared Redis or
    PostgreSQL server (tests keep apart by namespace; none restarts these servers)."""
    if store == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    if store == "redis":
        return str(request.getfixturevalue("redis_server").url)
    return str(request.getfixturevalue("postgres_server").url)


# -- CI: a skip is a failure -----------------------------------------------------------------
_CI_RULE = "CI=true allows no skip (a server, extra or browser CI cannot start is an error)"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{_CI_RULE}: {item.nodeid} would have skipped: {_skip_reason(report)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if in_ci() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{_CI_RULE}: {collector.nodeid} would have skipped: {_skip_reason(report)}"
    return report
