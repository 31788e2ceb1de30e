"""PostgreSQL as it is deployed: hardened roles (a DBA-made schema, a data-only role,
``migrate=False``, ``conveyor migrate``), errors that name the GRANT to run, and Debian's
PgBouncer in transaction mode. Real servers throughout."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from conveyor import Conveyor, SchemaError, StoreUnavailable
from conveyor.backends.postgres import POOLER_POLL
from tests.cli.helpers import cli
from tests.faults import figures
from tests.harness import start_server
from tests.servers import HOST, PostgresServer
from tests.topology_servers import PgBouncer


def _db(postgres_server: PostgresServer, db_url: str) -> str:
    return db_url.rsplit("/", 1)[1]


def _role_url(postgres_server: PostgresServer, role: str, db: str) -> str:
    return f"postgresql://{role}@{HOST}:{postgres_server.port}/{db}"


@pytest.fixture
def roles(postgres_server: PostgresServer, db_url: str) -> Iterator[tuple[str, str]]:
    """An app role ``owner_<db>`` (no CREATE on the database) and a data-only role
    ``data_<db>``; dropped afterwards."""
    db = _db(postgres_server, db_url)
    owner, data = f"owner_{db}", f"data_{db}"
    for role in (owner, data):
        postgres_server.psql(f"CREATE ROLE {role} LOGIN")
    yield owner, data
    postgres_server.drop_database(db)
    for role in (owner, data):
        postgres_server.psql(f"DROP ROLE IF EXISTS {role}")


def test_a_dba_made_schema_is_migrated_by_its_owner_without_create_on_the_database(
    postgres_server: PostgresServer, db_url: str, roles: tuple[str, str], tmp_path: Path
) -> None:
    owner, data = roles
    db = _db(postgres_server, db_url)
    owner_url = _role_url(postgres_server, owner, db)
    # Without the schema, the owner role may not create one: the error says what to run.
    first = cli("migrate", "--url", owner_url, cwd=tmp_path)
    assert first.returncode == 1
    assert f"CREATE SCHEMA conveyor AUTHORIZATION {owner}" in first.stderr
    assert "Traceback" not in first.stderr and len(first.stderr.splitlines()) <= 3
    postgres_server.psql(f"CREATE SCHEMA conveyor AUTHORIZATION {owner}", dbname=db)
    done = cli("migrate", "--url", owner_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "applied migrations 1, 2" in done.stdout
    again = cli("migrate", "--url", owner_url, cwd=tmp_path)
    assert again.returncode == 0 and "up to date: nothing applied" in again.stdout

    # A data-only role: it may use the store, and `conveyor migrate` with nothing to do
    # succeeds; before its grants, the error names them.
    data_url = _role_url(postgres_server, data, db)
    with pytest.raises(StoreUnavailable, match=rf"GRANT USAGE ON SCHEMA conveyor TO {data}") as info:
        Conveyor(data_url, migrate=False).stats()
    assert "is the server running" not in str(info.value)
    postgres_server.psql(
        f"GRANT USAGE ON SCHEMA conveyor TO {data};"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA conveyor TO {data};"
        f" GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA conveyor TO {data}",
        dbname=db,
    )
    assert "up to date" in cli("migrate", "--url", data_url, cwd=tmp_path).stdout
    app = Conveyor(data_url, migrate=False)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    try:
        jobs = app.enqueue_many([add.job(i, i) for i in range(20)])
        app.worker(concurrency=4, burst=True).run()
        assert [j.result(timeout=5) for j in jobs] == [2 * i for i in range(20)]
    finally:
        app.close()


def test_a_read_only_connection_is_named(db_url: str, postgres_server: PostgresServer) -> None:
    # What a hot standby answers, here from a role whose transactions are read-only.
    db = _db(postgres_server, db_url)
    direct = Conveyor(db_url)
    direct.stats()  # migrated
    direct.close()
    role = f"ro_{db}"
    postgres_server.psql(
        f"CREATE ROLE {role} LOGIN; ALTER ROLE {role} SET default_transaction_read_only = on"
    )
    postgres_server.psql(
        f"GRANT USAGE ON SCHEMA conveyor TO {role}; GRANT ALL ON ALL TABLES IN SCHEMA conveyor TO {role}",
        dbname=db,
    )
    app = Conveyor(_role_url(postgres_server, role, db), migrate=False)

    @app.task(name="t.x")
    def x() -> None: ...

    try:
        with pytest.raises(StoreUnavailable, match=r"read-only.*target_session_attrs=read-write"):
            x.enqueue()
    finally:
        app.close()
        postgres_server.drop_database(db)
        postgres_server.psql(f"DROP ROLE {role}")


def test_migrate_false_never_migrates_and_names_the_command(
    db_url: str, postgres_server: PostgresServer
) -> None:
    with pytest.raises(SchemaError, match="conveyor migrate"):
        Conveyor(db_url, migrate=False).stats()
    db = _db(postgres_server, db_url)
    assert (
        postgres_server.psql(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'conveyor'", dbname=db
        ).strip()
        == "0"
    )


# -- PgBouncer in transaction mode -----------------------------------------------------------
@pytest.fixture(scope="module")
def bouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    server = start_server(lambda: PgBouncer(postgres_server))
    yield server
    server.stop()


def _hammer(app: Conveyor, jobs: int, threads: int = 4) -> tuple[int, list[str]]:
    """Enqueue ``jobs`` one by one from ``threads`` threads; (errors, first messages)."""

    @app.task(name="t.noop")
    def noop(i: int) -> None: ...

    errors: list[str] = []

    def run(part: int) -> None:
        for i in range(part, jobs, threads):
            try:
                noop.enqueue(i)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    return len(errors), errors[:3]


@pytest.mark.parametrize("option", ["pgbouncer=1", "prepare_threshold=0"])
def test_pgbouncer_transaction_mode_enqueue_fetch_ack_and_migrations(
    bouncer: PgBouncer, db_url: str, postgres_server: PostgresServer, option: str
) -> None:
    db = _db(postgres_server, db_url)
    # A fresh database: the migrations themselves run through PgBouncer.
    app = Conveyor(f"{bouncer.url(db)}?{option}", lease=5.0)
    try:
        failed, first = _hammer(app, 400)
        assert failed == 0, first
        app.enqueue_many([app.tasks["t.noop"].job(i) for i in range(300)])
        app.worker(concurrency=8, burst=True).run()
        stats = app.stats()
        assert stats.total("completed") == 700 and stats.total("pending") == 0
    finally:
        app.close()
    if option == "pgbouncer=1":
        figures.record("postgres", "pgbouncer transaction mode (pgbouncer=1)", jobs=700, kills=0, lost=0,
                       duplicates=0, recover_s="n/a", enqueue_errors=failed)  # fmt: skip


def test_pgbouncer_is_detected_without_the_option(
    bouncer: PgBouncer, db_url: str, postgres_server: PostgresServer
) -> None:
    # Before: psycopg prepared after 5 runs and PgBouncer 1.18 did not track it, so 4-32% of
    # enqueues failed. The server listening on another port than the one reached gives the
    # pooler away: prepared statements go off by themselves.
    db = _db(postgres_server, db_url)
    app = Conveyor(bouncer.url(db), lease=5.0)
    try:
        failed, first = _hammer(app, 400)
    finally:
        app.close()
    figures.record("postgres", "pgbouncer transaction mode (no option: detected)", jobs=400, kills=0,
                   lost=0, duplicates=0, recover_s="n/a", enqueue_errors=failed)  # fmt: skip
    assert failed == 0, first


def test_pgbouncer_worker_wakes_by_polling_or_by_listen_on_a_direct_url(
    bouncer: PgBouncer, db_url: str, postgres_server: PostgresServer
) -> None:
    db = _db(postgres_server, db_url)
    through = f"{bouncer.url(db)}?pgbouncer=1"
    latencies: dict[str, float] = {}
    started: dict[str, float] = {}
    for name, url in (("polling", through), ("listen", f"{through}&listen_url={quote(db_url, safe='')}")):
        app = Conveyor(url, lease=5.0)

        @app.task(name="t.stamp")
        def stamp(key: str) -> None:
            started[key] = time.time()

        worker = app.worker(concurrency=2)
        running = threading.Thread(target=worker.run, daemon=True)
        running.start()
        time.sleep(0.5)
        picks: list[float] = []
        for n in range(3):
            sent = time.time()
            stamp.enqueue(f"{name}{n}")
            deadline = time.monotonic() + 5
            while f"{name}{n}" not in started and time.monotonic() < deadline:
                time.sleep(0.002)
            picks.append(started[f"{name}{n}"] - sent)
            time.sleep(0.3)
        worker.stop()
        running.join(20)
        app.close()
        latencies[name] = statistics.median(picks)
    assert latencies["polling"] < POOLER_POLL + 0.2, latencies
    assert latencies["listen"] < 0.1, latencies


def test_pooler_url_options() -> None:
    from conveyor import ConfigurationError
    from conveyor.backends.postgres import _split_url

    conninfo, options = _split_url(
        "postgresql://a@h/db?pgbouncer=1&listen_url=postgresql%3A%2F%2Fa%40h%3A5432%2Fdb"
    )
    assert options.pooler and options.listen_url == "postgresql://a@h:5432/db?connect_timeout=10"
    assert "pgbouncer" not in conninfo and "listen_url" not in conninfo
    assert _split_url("postgresql://a@h/db?prepare_threshold=0")[1].pooler
    kept = _split_url("postgresql://a@h/db?pgbouncer=0")[1]
    assert not kept.pooler and not kept.detect_pooler
    with pytest.raises(ConfigurationError, match="prepare_threshold='5'"):
        _split_url("postgresql://a@h/db?prepare_threshold=5")
    with pytest.raises(ConfigurationError, match="pgbouncer='maybe'"):
        _split_url("postgresql://a@h/db?pgbouncer=maybe")
