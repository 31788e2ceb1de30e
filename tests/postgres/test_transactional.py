"""Transactional enqueue: a job enqueued through the caller's connection exists only if the
caller's transaction commits."""

from __future__ import annotations

import psycopg
import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError
from tests.postgres.conftest import AppFactory


def _app(make_app: AppFactory) -> tuple[Conveyor, object]:
    app = make_app(namespace="tx")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app, add


def test_rollback_stores_nothing_commit_runs_the_job(make_app: AppFactory, db_url: str) -> None:
    app, add = _app(make_app)
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.commit()
        with pytest.raises(ZeroDivisionError), conn.transaction():
            conn.execute("INSERT INTO orders VALUES (1)")
            lost = add.using(connection=conn).enqueue(1, 2)  # type: ignore[attr-defined]
            assert app.get_job(lost.id) is None  # not visible outside the transaction yet
            raise ZeroDivisionError
        assert app.get_job(lost.id) is None
        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (2)")
            kept = add.using(connection=conn).enqueue(2, 3)  # type: ignore[attr-defined]
    assert app.get_job(kept.id) is not None
    app.worker(burst=True, concurrency=2).run()
    assert kept.result(timeout=10) == 5


def test_large_batch_joins_the_transaction_too(make_app: AppFactory, db_url: str) -> None:
    app, add = _app(make_app)
    with psycopg.connect(db_url) as conn:
        bound = [add.using(connection=conn).job(i, i) for i in range(500)]  # type: ignore[attr-defined]
        app.enqueue_many(bound)  # COPY path, inside conn's open transaction
        conn.rollback()
        assert app.stats().total("pending") == 0
        app.enqueue_many(bound)
        conn.commit()
    assert app.stats().total("pending") == 500


def test_sqlalchemy_session_and_connection(make_app: AppFactory, db_url: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    app, add = _app(make_app)
    engine = sqlalchemy.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with Session(engine) as session:
            session.execute(sqlalchemy.text("SELECT 1"))
            dropped = add.using(connection=session).enqueue(1, 1)  # type: ignore[attr-defined]
            session.rollback()
        with Session(engine) as session, session.begin():
            kept = add.using(connection=session).enqueue(2, 2)  # type: ignore[attr-defined]
            raw = session.connection().connection.dbapi_connection
            also = add.using(connection=raw).enqueue(3, 3)  # type: ignore[attr-defined]
        with engine.begin() as connection:
            third = add.using(connection=connection).enqueue(4, 4)  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    assert app.get_job(dropped.id) is None
    app.worker(burst=True, concurrency=2).run()
    assert [kept.result(timeout=10), also.result(timeout=10), third.result(timeout=10)] == [4, 6, 8]


def test_other_connection_types_are_refused(make_app: AppFactory, db_url: str) -> None:
    app, add = _app(make_app)
    with pytest.raises(ConfigurationError, match="psycopg 3"):
        add.using(connection=object()).enqueue(1, 1)  # type: ignore[attr-defined]
    assert app.stats().total("pending") == 0


def test_after_joins_the_transaction(make_app: AppFactory, db_url: str) -> None:
    """A chain step or a job with after= enqueued through the caller's connection: it and its
    edges exist only if the transaction commits, and a dependency that completes while the
    transaction is open is waited for (its row is locked), then releases the job."""
    app, add = _app(make_app)
    first = add.enqueue(1, 1)  # type: ignore[attr-defined]
    with psycopg.connect(db_url) as conn:
        lost = add.using(connection=conn, after=[first]).enqueue(0, 0)  # type: ignore[attr-defined]
        conn.rollback()
        assert app.get_job(lost.id) is None and app.dependents(first.id) == []
        kept = add.using(connection=conn, after=[first]).enqueue(2, 2)  # type: ignore[attr-defined]
        chained = app.chain(add.using(connection=conn).job(3, 3), add.using(connection=conn).job(4, 4))  # type: ignore[attr-defined]
        assert app.get_job(kept.id) is None  # not visible outside the transaction yet
        conn.commit()
    assert [j.id for j in app.dependents(first.id)] == [kept.id]
    assert app.get_job(kept.id).state == "waiting"  # type: ignore[union-attr]
    app.worker(burst=True, concurrency=2).run()
    assert kept.result(timeout=10) == 4 and chained[1].result(timeout=10) == 8
