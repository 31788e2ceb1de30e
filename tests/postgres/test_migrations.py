"""Schema per namespace, versioned migrations, and refusing a schema newer than the code."""

from __future__ import annotations

import threading

import psycopg
import pytest

from conveyor.backends.postgres import SCHEMA_VERSION, PostgresBackend
from conveyor.errors import ConfigurationError, SchemaError
from tests.postgres.conftest import AppFactory


def _versions(url: str, schema: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".migrations ORDER BY version').fetchall()
    return [v for (v,) in rows]


def test_fresh_database_is_migrated_on_first_use(db_url: str) -> None:
    backend = PostgresBackend(db_url, "fresh")
    try:
        assert _versions(db_url, "fresh") == list(range(1, SCHEMA_VERSION + 1))
        with psycopg.connect(db_url) as conn:
            tables = {
                name
                for (name,) in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'fresh'"
                )
            }
        assert {"jobs", "queues", "workers", "counters", "migrations"} <= tables
        assert backend.migrate() == []  # already current: nothing to do
    finally:
        backend.close()


def test_namespaces_are_separate_schemas(make_app: AppFactory) -> None:
    one, two = make_app(namespace="one"), make_app(namespace="two")

    @one.task(name="t.noop")
    def noop() -> None: ...

    two.task(name="t.noop")(noop.fn)
    noop.enqueue()
    assert one.stats().total("pending") == 1
    assert two.stats().total("pending") == 0


def test_concurrent_first_use_does_not_race(db_url: str) -> None:
    backends: list[PostgresBackend] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        try:
            barrier.wait()
            backends.append(PostgresBackend(db_url, "racy"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for backend in backends:
        backend.close()
    assert errors == []
    assert _versions(db_url, "racy") == list(range(1, SCHEMA_VERSION + 1))


def test_newer_schema_is_refused_and_the_worker_does_not_start(db_url: str, make_app: AppFactory) -> None:
    PostgresBackend(db_url, "future").close()
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO future.migrations (version, name) VALUES (999, 'from_the_future')")
    with pytest.raises(SchemaError, match=r"version 999, newer than this conveyor knows .*upgrade conveyor"):
        PostgresBackend(db_url, "future")
    app = make_app(namespace="future")
    with pytest.raises(SchemaError):
        app.worker(burst=True)
    with pytest.raises(SchemaError):
        app.backend  # noqa: B018 - opening the store checks the schema version (no migrate to call)


def test_namespace_must_be_a_plain_identifier(db_url: str) -> None:
    for bad in ('x"; DROP TABLE jobs; --', "pg_catalog", "1abc", "a-b", ""):
        with pytest.raises(ConfigurationError):
            PostgresBackend(db_url, bad)
