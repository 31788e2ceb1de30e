"""The PostgreSQL store: jobs in the app's own database, enqueued in the app's own transaction.

Layout: every namespace is a PostgreSQL schema of that name (``conveyor`` by default) holding
the tables ``jobs``, ``queues``, ``workers``, ``counters`` and ``migrations``. The migrations
in ``migrations/NNNN_name.sql`` are applied automatically the first time a database is used
(unless the app says ``migrate=False``, the choice for hardened deployments) and by
``conveyor migrate`` (``PostgresBackend.migrate``), which creates nothing that exists, so a
schema made by a DBA (``CREATE SCHEMA conveyor AUTHORIZATION app``) needs no CREATE on the
database; a database whose schema is newer than this code raises ``SchemaError`` and a
worker refuses to start on it. docs/production/postgres.md has the roles and grants.

Every operation is one statement in autocommit mode (one round-trip): the claim is
``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`` ``RETURNING``, acknowledgements are
``UPDATE … FROM unnest(arrays)`` for a whole batch. Enqueue ``NOTIFY``\\s the namespace's
channel in the same statement, so an idle worker blocked in ``wait()`` on its ``LISTEN``
connection wakes as soon as the job commits; polling is only the fallback.

URL: ``postgresql://user:password@host:5432/dbname`` (``postgres://`` too; any libpq
parameter may be added as a query parameter). These parameters are conveyor's own and are
removed before connecting: ``pool_min_size`` (default 1) and ``pool_max_size`` (default 16),
the size of the connection pool each process keeps (a worker uses about four at once: fetch,
acks, heartbeat, admin; tasks that enqueue use more); ``pgbouncer=1`` (or psycopg's
``prepare_threshold=0``) and ``listen_url`` (see PgBouncer below). ``wait()`` keeps one more
connection for ``LISTEN``.

Reconnection. After a lost connection (server restart, failover, network) each call takes a
fresh connection from the pool and tries again, for up to ``RETRY_FOR`` (30) seconds in a
worker's calls and ``CALLER_RETRY_FOR`` (3) in enqueue and admin calls, where someone waits,
before raising ``StoreUnavailable``. That is safe for every call, including writes, because
each one is idempotent:

* ``enqueue`` inserts with ``ON CONFLICT (id) DO NOTHING``: if the first try committed but
  its answer was lost, the second inserts nothing, so a job is stored exactly once;
* ``complete``, ``fail``, ``release`` and ``heartbeat`` only touch jobs the worker still
  holds as ``active``, so a repeat changes nothing (and counts nothing);
* ``fetch`` first looks for a claim of the same call that committed unseen (jobs active,
  held by this worker, started at the same ``now``) and returns those instead of claiming
  more, so no job is left held by a worker that does not know about it;
* admin calls and reads repeat harmlessly.

``enqueue_in`` (the caller's connection) never retries: the caller owns that transaction.

Transactional enqueue
---------------------

Pass your own connection and the job becomes part of your transaction: it exists only if
that transaction commits, and the ``NOTIFY`` that wakes workers is sent on commit too::

    import psycopg

    with psycopg.connect(DATABASE_URL) as conn:            # psycopg 3, sync
        with conn.transaction():
            conn.execute("INSERT INTO orders (id, total) VALUES (%s, %s)", (order_id, total))
            send_receipt.using(connection=conn).enqueue(order_id)
        # committed: the order and its job exist together; on an exception, neither does

The connection must reach the same database as the app's URL, whose conveyor schema must
already exist (the app's first use, unless ``migrate=False``, or ``conveyor migrate`` creates
it). If the connection is in autocommit mode the job commits at once, like any other statement
on it.

SQLAlchemy (2.x, with the ``postgresql+psycopg`` dialect): pass the ``Session`` itself, or
its ``Connection``; conveyor enqueues through the session's current transaction::

    with Session(engine) as session, session.begin():
        session.add(Order(id=order_id, total=total))
        send_receipt.using(connection=session).enqueue(order_id)
    # or explicitly: session.connection().connection.dbapi_connection

Django (4.2+ with psycopg 3): pass ``django.db.connection`` (or ``connections["alias"]``)
inside ``transaction.atomic()``::

    from django.db import connection, transaction

    with transaction.atomic():
        order = Order.objects.create(total=total)
        send_receipt.using(connection=connection).enqueue(order.id)

PgBouncer. Session pooling needs nothing. Transaction pooling breaks two things a session
relies on: prepared statements (psycopg prepares a statement after its fifth run; PgBouncer
1.18 does not track them, so another server connection answers "does not exist", "already
exists", or binds another client's statement) and ``LISTEN``. Add ``pgbouncer=1`` to the URL
(a pooler on another port than the server's is also detected at open, which turns prepared
statements off): nothing is prepared and no session setting is made, so enqueue, fetch,
acknowledgements and migrations work; idle workers poll every ``POOLER_POLL`` (0.25 s, a
job's longest wait for an idle worker), or ``LISTEN`` on ``listen_url``, a direct
(percent-encoded) URL, if given.

psycopg 2 and async connections are refused with a clear error: the job would not join
the transaction you think it joins. (With an async stack, run the enqueue in your sync
transaction, or enqueue after commit with ``transaction.on_commit``.)
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from importlib import resources
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson
import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg import sql
from psycopg_pool import ConnectionPool

from ..errors import ConfigurationError, QueueFull, SchemaError, StoreFull, StoreUnavailable
from ..job import (
    ACTIVE,
    BAD_RUN_AT,
    CANCELLED,
    CANCELLED_NOTE,
    COMPLETED,
    DEAD,
    EXPIRED,
    FAR_FUTURE,
    LOST,
    PENDING,
    RETRY,
    SCHEDULED,
    WAITING,
    Failure,
    JobRecord,
    ScheduleState,
    Stats,
    Tick,
    WorkerInfo,
)
from ..limits import SEP, Limit, ahead_allowed, bucket_range, split
from ..redaction import redact_url
from . import postgres_workflows as workflows
from .aio import AsyncStore
from .base import Explained, check_action, translate_errors
from .listing import Listings, cursor_float, cursor_int, cursor_parts, make_cursor
from .postgres_batches import PostgresBatches
from .prune import prune_batches as prune_completed

log = logging.getLogger("conveyor.postgres")

_T = TypeVar("_T")
Conn = psycopg.Connection[Any]

WORKER_EXPIRY = 60.0  # seconds of silence after which a worker is forgotten
RETRY_FOR = 30.0  # seconds a worker's call keeps trying to reach the server before it raises
#: The same for enqueue and admin calls, where an application or a person is waiting: they
#: should hear of an outage in seconds, not after the half-minute a worker rides out.
CALLER_RETRY_FOR = 3.0
POOL_TIMEOUT = 10.0  # seconds to wait for a pooled connection on one try
BURY_BATCH = 10000  # jobs with an impossible run_at buried per recover(), so one call stays short
#: Seconds between fetches of an idle worker behind a pooler without ``listen_url``.
POOLER_POLL = 0.25
COPY_FROM = 100  # batches of this many jobs or more are stored with COPY

#: What a claim returns: the fields a worker needs (the lifecycle columns keep their defaults
#: in a claimed record: the worker reads a job's expiry from its payload).
_CLAIMED = (
    "id, queue, payload, priority, state, run_at, attempts, max_attempts, timeout, created_at,"
    " started_at, finished_at, result, last_error, traceback, locked_by, lease_until, progress, cancel"
)
_COLUMNS = _CLAIMED + ", expires_at, unique_key, unique_until, snoozes, batch_id, task"
_T_COLUMNS = ", ".join("t." + c.strip() for c in _CLAIMED.split(","))
_COPY_TYPES = ["text", "text", "bytea", "int4", "text", "float8", "int4", "float8", "float8", "text"]
_WAITING = "('scheduled','pending','retry')"
#: States an expiry cancels: not started yet, waiting for other jobs included (whose own
#: dependents the triggers of migration 0011 cancel in the same statement).
_EXPIRING = "('scheduled','pending','retry','waiting')"
#: The states in which a job holds its unique key.
_LIVE_STATES = frozenset(("scheduled", "pending", "retry", "active"))
_ENDED = "('dead','cancelled')"
#: The states app.cancel ends at once: waiting for a time, a worker, or other jobs.
_CANCELLABLE = "('scheduled','pending','retry','waiting')"
_LATER = "('scheduled','retry')"
#: The states whose jobs the task index holds (migration 0009): not pending and active, so
#: that a claim writes no entry into it.
_TASK_STATES = ("pending", "scheduled", "retry", "dead", "cancelled")
_TASK_LISTED = "(" + ",".join(f"'{state}'" for state in _TASK_STATES) + ")"
#: What a search's listing reads in place of the columns it does not need (all but the sort
#: key: id, priority, run_at, finished_at), in JobRecord's order.
_UNREAD = (
    "NULL::int AS attempts, NULL::int AS max_attempts, NULL::float8 AS timeout,"
    " NULL::float8 AS created_at, NULL::float8 AS started_at"
)
#: Due scheduled and retry jobs a claim turns pending per queue, at most: a backlog that came
#: due at once is promoted over several claims instead of in one long statement.
PROMOTE_BATCH = 2000
#: Seconds a process trusts its copy of the limit definitions (see the SQLite store).
LIMITS_TTL = 1.0


# -- migrations -----------------------------------------------------------------------------
def _load_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for each ``migrations/NNNN_name.sql``, in version order."""
    found: list[tuple[int, str, str]] = []
    for entry in (resources.files(__package__) / "migrations").iterdir():
        match = re.fullmatch(r"(\d+)_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"conveyor's PostgreSQL migrations are not numbered 1..n: {versions}")
    return found


MIGRATIONS = _load_migrations()
SCHEMA_VERSION = MIGRATIONS[-1][0]


# -- helpers --------------------------------------------------------------------------------
def _configure(conn: Conn) -> None:
    """Every pooled connection, once: no JIT. Its compile step (~0.25 s) fires on the cost
    estimates of the small recursive and lateral reads of stats() and housekeeping, which
    then run in a millisecond; a job store's statements never gain from it. A setting, not a
    startup option, so that PgBouncer (which refuses unknown startup options) passes it."""
    conn.execute("SET jit = off")


class UrlOptions:
    """conveyor's own parameters of a PostgreSQL URL (libpq would refuse them)."""

    def __init__(self) -> None:
        self.pool_min_size = 1
        self.pool_max_size = 16
        #: PgBouncer (or another pooler) in transaction mode: no prepared statements, no
        #: session state, and LISTEN only on ``listen_url``.
        self.pooler = False
        #: ``pgbouncer=0``: no pooler, whatever the ports say (a proxy or a port mapping).
        self.detect_pooler = True
        self.listen_url: str | None = None


def _split_url(url: str) -> tuple[str, UrlOptions]:
    """The libpq URL without conveyor's own query parameters, and those parameters."""
    parts = urlsplit(url)
    query: list[tuple[str, str]] = []
    options = UrlOptions()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("pool_min_size", "pool_max_size"):
            try:
                setattr(options, key, int(value))
            except ValueError:
                raise ConfigurationError(f"{key}={value!r} in the store URL must be an integer") from None
        elif key in ("pgbouncer", "prepare_threshold"):
            # psycopg's prepare_threshold is not a libpq parameter; 0 (or "none") means
            # "behind a pooler": conveyor then never prepares a statement.
            flag = value.strip().lower()
            if key == "pgbouncer" and flag not in ("1", "true", "yes", "0", "false", "no"):
                raise ConfigurationError(f"pgbouncer={value!r} in the store URL must be 1 or 0")
            if key == "prepare_threshold" and flag not in ("0", "none", ""):
                raise ConfigurationError(
                    f"prepare_threshold={value!r} in the store URL: conveyor accepts 0 (or none) "
                    "only, meaning no prepared statements (a pooler in transaction mode)"
                )
            options.pooler = options.pooler or key == "prepare_threshold" or flag in ("1", "true", "yes")
            options.detect_pooler = options.detect_pooler and not (
                key == "pgbouncer" and flag in ("0", "false", "no")
            )
        elif key == "listen_url":
            options.listen_url = value
        else:
            query.append((key, value))
    if not any(k == "connect_timeout" for k, _ in query):
        # libpq waits for ever by default; a blackholed server must not hang a worker.
        query.append(("connect_timeout", "10"))
    scheme = "postgresql" if parts.scheme.lower() in ("postgres", "postgresql") else parts.scheme
    query_text = urlencode(query, quote_via=quote)  # %20, not +: libpq does not read + as a space
    if options.listen_url is not None:
        options.listen_url = _split_url(options.listen_url)[0]
    return urlunsplit((scheme, parts.netloc, parts.path, query_text, parts.fragment)), options


def _record(row: Sequence[Any]) -> JobRecord:
    """The store's one way from a row to a record: every statement that reads jobs returns
    ``_COLUMNS``, JobRecord's fields in order, whose types PostgreSQL enforces."""
    return JobRecord(*row)


def _minute(now: float) -> int:
    return int(now // 60) * 60


def _advisory_key(text: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _unwrap_connection(connection: Any) -> Conn:
    """The psycopg 3 connection behind what the caller passed: a psycopg connection, a
    SQLAlchemy Session or Connection, or a Django connection wrapper."""
    conn = connection
    for _ in range(5):
        if isinstance(conn, psycopg.Connection):
            return conn
        if isinstance(conn, psycopg.AsyncConnection):
            break
        if hasattr(conn, "ensure_connection"):  # Django's DatabaseWrapper
            conn.ensure_connection()
            conn = conn.connection
        elif hasattr(conn, "get_bind") and callable(getattr(conn, "connection", None)):
            conn = conn.connection()  # SQLAlchemy Session -> its Connection in this transaction
        elif hasattr(conn, "dbapi_connection"):
            conn = conn.dbapi_connection  # SQLAlchemy's pooled connection proxy
        elif hasattr(conn, "connection"):
            conn = conn.connection  # SQLAlchemy Connection -> the pooled connection proxy
        else:
            break
    raise ConfigurationError(
        f"using(connection=...) needs a sync psycopg 3 connection (or a SQLAlchemy Session/"
        f"Connection or Django connection over psycopg 3); got {type(connection).__name__}"
    )


class Waits(NamedTuple):
    """The statements of a wait for a job to end (migration 0007): LISTEN on the namespace's
    ``ended`` channel, then mark the job waited for, unless it ended already.

    Marking locks the job's row for an instant: a claim passing it then (SKIP LOCKED) leaves
    it, and an idle worker woken for it would sleep on. So a waiter that marked a job not yet
    running NOTIFYs its queue's channel after the mark committed, as an enqueue does, and
    the workers look again."""

    listen: str
    unlisten: str
    watch: str

    @classmethod
    def of(cls, schema: str, namespace: str) -> Waits:
        channel = sql.Identifier(f"conveyor_{namespace}_ended")
        return cls(
            sql.SQL("LISTEN {}").format(channel).as_string(),
            sql.SQL("UNLISTEN {}").format(channel).as_string(),
            f"UPDATE {schema}.jobs SET waited = true WHERE id = %(id)s"
            f" AND state NOT IN ('completed', 'dead', 'cancelled') RETURNING state, queue",
        )


#: Seconds a waiter for a job blocks before it marks the job again and looks: what a job moved
#: or a notification lost costs it at most.
RECHECK = 5.0


class _Statements:
    """Every statement of the store, with the schema name filled in once."""

    def __init__(self, schema: str, channel: str) -> None:
        s = schema
        # A statement given the ids of a worker's jobs (an acknowledgement, a hand-back) finds
        # them by primary key; its check that each is still that worker's active job says
        # "(state = 'active') IS TRUE", which the planner cannot match with jobs_active's
        # predicate. With "state = 'active'" it walked jobs_active by worker instead whenever
        # the last ANALYZE had sampled no active row (an estimate of 1 row), over every dead
        # entry the worker's finished jobs left there until vacuum: in a 10M drain every
        # acknowledgement took 0.14 s instead of 0.015 s for a minute (session 16). An
        # acknowledgement's batch comes from acked(), failed_runs() or snoozed_runs() (migration
        # 19), estimated at one row, so the join is driven by the batch: with unnest() the
        # planner expected one job to pass that check, read the whole table and compared every
        # job with every id (63 ms instead of 5 for 500 ids among 20,000 jobs, session 17).
        mine = "t.locked_by = %(worker)s AND (t.state = 'active') IS TRUE"
        # Migrations: the version table first, then each file with the schema as search_path.
        self.migrations_table = f"SELECT to_regclass('{s}.migrations')"
        #: At open: the version table, and the port the server listens on (another than the
        #: one connected to means a pooler or proxy in between).
        self.first_look = f"SELECT to_regclass('{s}.migrations'), inet_server_port()"
        self.lock = "SELECT pg_advisory_xact_lock(%(key)s)"
        self.create_schema = f"CREATE SCHEMA IF NOT EXISTS {s}"
        self.schema_exists = "SELECT 1 FROM pg_namespace WHERE nspname = %(ns)s"
        self.create_migrations = (
            f"CREATE TABLE IF NOT EXISTS {s}.migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.search_path = f"SET LOCAL search_path TO {s}"
        self.applied = f"INSERT INTO {s}.migrations (version, name) VALUES (%(version)s, %(name)s)"
        self.listen = sql.SQL("LISTEN {}").format(sql.Identifier(channel)).as_string()
        # Enqueue, one statement: the queue names (skipped once this process knows they
        # exist), the jobs, and a pg_notify per queue, which PostgreSQL delivers on commit and
        # drops on rollback. ON CONFLICT (id) DO NOTHING makes a retry after a lost answer
        # harmless. One job binds scalars (psycopg dumps arrays in Python, ~10 us each).
        columns = "id, queue, payload, priority, state, run_at, max_attempts, timeout, created_at, task"
        add_queues = (
            f"new_queues AS (INSERT INTO {s}.queues (name) SELECT unnest(%(queues)s::text[])"
            f" ON CONFLICT DO NOTHING), "
        )
        one = (
            f"new_jobs AS (INSERT INTO {s}.jobs ({columns}) VALUES (%(id)s, %(queue)s,"
            f" %(payload)s, %(priority)s, %(state)s, %(run_at)s, %(max_attempts)s,"
            f" %(timeout)s::float8, %(created_at)s, %(task)s::text) ON CONFLICT (id) DO NOTHING)"
            f" SELECT pg_notify(%(channel)s, %(queue)s)"
        )
        many = (
            f"new_jobs AS (INSERT INTO {s}.jobs ({columns})"
            f" SELECT * FROM unnest(%(id)s::text[], %(queue)s::text[], %(payload)s::bytea[],"
            f" %(priority)s::int[], %(state)s::text[], %(run_at)s::float8[],"
            f" %(max_attempts)s::int[], %(timeout)s::float8[], %(created_at)s::float8[],"
            f" %(task)s::text[]) ON CONFLICT (id) DO NOTHING)"
            f" SELECT pg_notify(%(channel)s, q) FROM unnest(%(queues)s::text[]) AS q"
        )
        #: (one job?, queues known to exist?) -> statement
        self.enqueue = {
            (True, True): f"WITH {one}",
            (True, False): f"WITH {add_queues}{one}",
            (False, True): f"WITH {many}",
            (False, False): f"WITH {add_queues}{many}",
        }
        self.copy_jobs = (
            f"COPY {s}.jobs (id, queue, payload, priority, state, run_at, max_attempts, timeout,"
            f" created_at, task) FROM STDIN (FORMAT BINARY)"
        )
        self.enqueue_queues = (
            f"WITH new_queues AS ("
            f" INSERT INTO {s}.queues (name) SELECT unnest(%(queues)s::text[]) ON CONFLICT DO NOTHING"
            f") SELECT pg_notify(%(channel)s, q) FROM unnest(%(queues)s::text[]) AS q"
        )
        self.exists = f"SELECT 1 FROM {s}.jobs WHERE id = %(id)s"
        # Jobs per queue and state: the folded counts plus the deltas appended since
        # (count_deltas holds a few housekeeping intervals' worth of statements at most).
        all_counts = (
            f"(SELECT queue, state, n FROM {s}.counts UNION ALL SELECT queue, state, n FROM {s}.count_deltas)"
        )
        self.waiting_counts = (
            f"SELECT queue, sum(n) FROM {all_counts} AS c"
            f" WHERE queue = ANY(%(queues)s::text[]) AND state IN {_WAITING} GROUP BY queue"
        )
        # The claim: queues in order (a nested loop over an ordered list), in each one an
        # index walk that stops at LIMIT, and the outer LIMIT stops the loop as soon as it
        # has enough, so later queues are not even read (or locked) when earlier ones fill
        # the batch. SKIP LOCKED lets concurrent workers pass each other's rows instead of
        # queueing behind them. The paused list is one InitPlan, a plain filter that keeps
        # the order (an anti-join could be planned as a merge join that sorts by name).
        # Per queue, one walk of the ready index in claim order: a pending job is due by
        # definition, and the promotion (sent just before the claim, in the same round trip)
        # has made pending the scheduled and retry jobs that came due.
        lateral = (
            f" CROSS JOIN LATERAL ("
            f"  SELECT id FROM {s}.jobs WHERE queue = q.name AND state = 'pending'"
            f"  ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            f" ) j"
        )
        # Scheduled and retry jobs that came due become pending, the earliest first, at most
        # PROMOTE_BATCH a queue: the start of each queue's range in the due index, nothing to
        # read when none is due, however many wait for later. (Claiming them from the due
        # index directly would claim by time, not priority, whenever several came due.) This
        # is the UPDATE promote_due() below runs when a job is due; it is kept here for the
        # checks of its plan (tests/scale/test_postgres_size.py). The ids go to the UPDATE as
        # an array looked up by primary key: as "id IN (...)" the planner expected up to
        # PROMOTE_BATCH rows a queue and hash-joined them with a scan of every job (2,000 due
        # among 200,000 jobs: 55 ms against 34; migration 21).
        self.promote = (
            f"UPDATE {s}.jobs SET state = 'pending' WHERE id = ANY(ARRAY(SELECT d.id FROM {s}.queues q"
            f" CROSS JOIN LATERAL (SELECT id FROM {s}.jobs WHERE queue = q.name AND state IN {_LATER}"
            f" AND run_at <= %(now)s ORDER BY run_at LIMIT {PROMOTE_BATCH} FOR UPDATE SKIP LOCKED) d))"
        )
        # What every claim runs first (migration 0017): the UPDATE above only when a queue has
        # a job due, which one probe of jobs_due per queue says first (an UPDATE fires the
        # statement triggers even when it changes nothing: ~0.15 ms a claim).
        self.promote_due = f"SELECT {s}.promote_due(%(now)s, {PROMOTE_BATCH})"
        paused = f"ARRAY(SELECT name FROM {s}.queues WHERE paused)"
        given = (
            f"SELECT name FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS g(name, ord)"
            f" WHERE NOT (name = ANY({paused})) ORDER BY ord"
        )
        every = f"SELECT name FROM {s}.queues WHERE NOT paused ORDER BY name <> 'default', name"
        update = (
            f" UPDATE {s}.jobs AS t SET state = 'active', attempts = t.attempts + 1, progress = NULL,"
            f" locked_by = %(worker)s, lease_until = %(until)s, started_at = %(now)s,"
            f" finished_at = NULL"
            # An array of ids, looked up by primary key: a join with the claim could be
            # planned as a hash join over every job when the claim's size is misjudged.
            f" WHERE t.id = ANY(ARRAY(SELECT id FROM claim)) RETURNING {_T_COLUMNS}"
        )
        self.fetch_given = (
            f"WITH claim AS MATERIALIZED (SELECT j.id FROM ({given}) q{lateral} LIMIT %(limit)s)" + update
        )
        self.fetch_every = (
            f"WITH claim AS MATERIALIZED (SELECT j.id FROM ({every}) q{lateral} LIMIT %(limit)s)" + update
        )
        self.reclaim = (
            f"SELECT {_COLUMNS} FROM {s}.jobs"
            f" WHERE locked_by = %(worker)s AND state = 'active' AND started_at = %(now)s"
        )
        count_runs = (
            f" INSERT INTO {s}.counters AS c (minute, processed, failed)"
            f" SELECT %(minute)s, count(*), {{failed}} FROM changed HAVING count(*) > 0"
            f" ON CONFLICT (minute) DO UPDATE SET processed = c.processed + excluded.processed,"
            f" failed = c.failed + excluded.failed"
        )
        self.complete = (
            f"WITH changed AS ("
            f" UPDATE {s}.jobs AS t SET state = 'completed', result = d.result,"
            f" finished_at = %(now)s, locked_by = NULL, lease_until = NULL, last_error = NULL,"
            f" traceback = NULL"
            f" FROM {s}.acked(%(ids)b::text[], %(results)b::bytea[]) AS d"
            f" WHERE t.id = d.id AND {mine}"
            f" RETURNING 1)" + count_runs.format(failed="0")
        )
        self.fail = (
            f"WITH changed AS ("
            f" UPDATE {s}.jobs AS t SET state = d.state, run_at = coalesce(d.retry_at, t.run_at),"
            f" last_error = d.error, traceback = d.traceback, finished_at = %(now)s,"
            f" locked_by = NULL, lease_until = NULL"
            f" FROM {s}.failed_runs(%(ids)s::text[], %(states)s::text[], %(retry_at)s::float8[],"
            f" %(errors)s::text[], %(tracebacks)s::text[]) AS d"
            f" WHERE t.id = d.id AND {mine}"
            f" RETURNING 1)" + count_runs.format(failed="count(*)")
        )
        self.release = (
            f"UPDATE {s}.jobs AS t SET state = 'pending', attempts = greatest(attempts - 1, 0),"
            f" locked_by = NULL, lease_until = NULL, started_at = NULL"
            f" WHERE t.id = ANY(%(ids)s::text[]) AND {mine}"
        )
        # SKIP LOCKED: a lease being acknowledged right now is passed over rather than
        # waited for. Waiting, the heartbeat (every active job of the worker, in index order)
        # and an ack batch (in its own order) could deadlock; the job is about to leave
        # 'active', and if its ack fails the next beat, a third of a lease later, extends it.
        extend = (
            f"WITH extended AS (UPDATE {s}.jobs SET lease_until = %(until)s"
            f" WHERE id IN (SELECT id FROM {s}.jobs WHERE locked_by = %(id)s AND state = 'active'"
            f" FOR UPDATE SKIP LOCKED))"
        )
        self.heartbeat = (
            extend + f" INSERT INTO {s}.workers (id, host, pid, queues, concurrency, started_at,"
            f" last_seen, running) VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s,"
            f" %(started_at)s, %(now)s, %(running)s)"
            f" ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            f" queues = excluded.queues, concurrency = excluded.concurrency,"
            f" started_at = excluded.started_at, last_seen = excluded.last_seen,"
            f" running = excluded.running"
        )
        self.unregister = extend + f" DELETE FROM {s}.workers WHERE id = %(id)s"
        self.recover = (
            f"WITH changed AS ("
            f" UPDATE {s}.jobs SET"
            f" state = CASE WHEN cancel IS NOT NULL THEN 'cancelled'"
            f" WHEN attempts >= max_attempts THEN 'dead' ELSE 'retry' END,"
            f" run_at = %(now)s, finished_at = %(now)s, locked_by = NULL, lease_until = NULL,"
            f" last_error = coalesce(cancel, %(lost)s), traceback = NULL"
            # The expired leases locked first, in id order, passing over any row locked now:
            # one an ack of its (late) worker is writing, which is then left to that ack.
            # Waiting instead, recover (in index order) and an ack batch (in its own order)
            # deadlocked in a 1M drain whose leases had expired. Acks lock in id order too.
            f" WHERE id = ANY(ARRAY(SELECT id FROM {s}.jobs WHERE state = 'active'"
            f" AND lease_until < %(now)s ORDER BY id FOR UPDATE SKIP LOCKED))"
            f" AND state = 'active' AND lease_until < %(now)s RETURNING 1"
            f"), counted AS ({count_runs.format(failed='count(*)')}"
            # NaN sorts above every number in PostgreSQL, so this also buries a NaN run_at:
            # the end of each queue's range in the due index. (A pending job is claimed
            # whatever its run_at says, and then runs.) The ids as an array, by primary key:
            # as "id IN (...)", a generic plan hash-joined them with a scan of every job.
            f"), buried AS (UPDATE {s}.jobs SET state = 'dead', finished_at = %(now)s,"
            f" last_error = %(bad)s WHERE id = ANY(ARRAY(SELECT b.id FROM {s}.queues q CROSS JOIN LATERAL"
            f" (SELECT id FROM {s}.jobs WHERE queue = q.name AND state IN {_LATER}"
            f" AND run_at > %(far)s ORDER BY run_at DESC LIMIT {BURY_BATCH}) b))"
            # The counts the triggers appended since the last fold, folded. A concurrent
            # fold waits for these rows' locks, then finds them gone: each delta counts once.
            f"), folded AS (DELETE FROM {s}.count_deltas RETURNING queue, state, n"
            f"), summed AS (INSERT INTO {s}.counts AS c (queue, state, n)"
            f" SELECT queue, state, sum(n) FROM folded GROUP BY queue, state"
            f" ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n"
            f"), forgotten AS (DELETE FROM {s}.workers WHERE last_seen < %(silent)s"
            f"), expired AS (DELETE FROM {s}.counters WHERE minute < %(day_ago)s"
            f") SELECT count(*) FROM changed"
        )
        self.version = f"SELECT coalesce(max(version), 0) FROM {s}.migrations"
        self.notify = "SELECT pg_notify(%(channel)s, %(queue)s)"
        self.get = f"SELECT {_COLUMNS} FROM {s}.jobs WHERE id = %(id)s"
        self.by_id_list = f"SELECT {_COLUMNS} FROM {s}.jobs WHERE id = ANY(%(ids)s::text[])"
        self.queues = f"SELECT name, paused FROM {s}.queues"
        # Listings, a keyset per state (see backends/listing.py). Per queue, as a LATERAL
        # read of each queue's range of an index, merged by the outer ORDER BY: one statement,
        # a few index entries per queue, never a sort of a whole state. {select} is the
        # columns read: a whole job, or for a search its sort key and whether it matched.
        # The state is written into the statement, not bound: psycopg prepares a statement
        # run often, and a generic plan cannot prove a partial index's predicate from a
        # parameter. For the same reason the queue filter is there or not, never
        # "= %(queue)s OR %(queue)s IS NULL". Filled per call: {select} {state} {waiting}
        # {which}. (tests/scale/test_listing_size.py checks the generic plans.)
        # The queues, and the limit buckets of limited queues (never in the registry): every
        # name that holds jobs is counted (a few rows per queue and state).
        names = (
            f"(SELECT name FROM {s}.queues UNION SELECT queue FROM {s}.counts"
            f" UNION SELECT queue FROM {s}.count_deltas) q (name)"
        )
        by_queue = f"SELECT j.* FROM {names} CROSS JOIN LATERAL ({{read}}) j{{which}}"
        self.page_by_id = (
            by_queue.replace(
                "{read}",
                f"SELECT {{select}} FROM {s}.jobs WHERE state = '{{state}}' AND queue = q.name{{waiting}}"
                " AND id < %(after)s ORDER BY id DESC LIMIT %(limit)s",
            )
            + " ORDER BY id DESC LIMIT %(limit)s"
        )
        # Active jobs: the few rows of the jobs_active index, read whole (MATERIALIZED keeps
        # the planner from walking the primary key backwards for the ORDER BY id).
        self.page_active = (
            f"WITH a AS MATERIALIZED (SELECT {{select}} FROM {s}.jobs WHERE state = 'active')"
            " SELECT * FROM a WHERE (queue = %(queue)s OR %(queue)s IS NULL) AND id < %(after)s"
            " ORDER BY id DESC LIMIT %(limit)s"
        )
        claim_order = " ORDER BY priority DESC, run_at, id LIMIT %(limit)s"
        ready = f"SELECT {{select}} FROM {s}.jobs WHERE queue = q.name AND state = 'pending'"
        # Pending: per queue, the rest of the cursor's priority, then the lower priorities
        # (two ranges of jobs_ready); then due scheduled and retry jobs not yet made pending
        # (none while a worker claims: each claim promotes them), from jobs_due.
        cursor_rest = "priority = %(priority)s AND (run_at, id) > (%(run_at)s, %(after)s)"
        due = (
            f"SELECT {{select}} FROM {s}.jobs"
            f" WHERE queue = q.name AND state IN {_LATER} AND run_at <= %(now)s"
        )
        self.page_pending = (
            by_queue.replace(
                "{read}",
                f"({ready} AND {cursor_rest}{claim_order})"
                f" UNION ALL ({ready} AND priority < %(priority)s{claim_order})"
                f" UNION ALL ({due} AND (priority < %(priority)s OR ({cursor_rest})){claim_order})",
            )
            + claim_order
        )
        # A task's jobs of one state, newest first: a range of jobs_task from the cursor on.
        # The queue and the texts are tested in {select} on each job read (a search counts
        # them), never used to pass over jobs uncounted.
        self.page_task = (
            f"SELECT {{select}} FROM {s}.jobs WHERE task = %(task)s AND task IS NOT NULL"
            f" AND state = '{{state}}' AND state IN {_TASK_LISTED}{{waiting}} AND id < %(after)s"
            " ORDER BY id DESC LIMIT %(limit)s"
        )
        # Pending jobs of a task, newest first: its pending range of jobs_task, and the
        # scheduled and retry jobs already due (they list as pending; none while a worker
        # claims: each claim promotes them), per queue from jobs_due, merged.
        self.page_task_pending = (
            f"SELECT * FROM (({self.page_task.replace('{state}', 'pending').replace('{waiting}', '')})"
            f" UNION ALL (SELECT j.* FROM {names} CROSS JOIN LATERAL (SELECT {{select}} FROM {s}.jobs"
            f" WHERE queue = q.name AND state IN {_LATER} AND run_at <= %(now)s AND task = %(task)s"
            " AND id < %(after)s) j)) t ORDER BY id DESC LIMIT %(limit)s"
        )
        self.snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        self.counts = f"SELECT queue, state, sum(n) FROM {all_counts} AS c GROUP BY 1, 2 HAVING sum(n) > 0"
        # Per queue: scheduled and retry jobs already due (they count as pending), a range
        # of the due index; and the earliest run_at of the ready jobs, one index probe per
        # distinct priority (a loose index scan: a handful of probes, never a scan).
        self.due = (
            f"SELECT q.name, d.state, d.count, d.first FROM {s}.queues q CROSS JOIN LATERAL"
            f" (SELECT state, count(*) AS count, min(run_at) AS first FROM {s}.jobs"
            f"  WHERE queue = q.name AND state IN {_LATER} AND run_at <= %(now)s GROUP BY state) d"
        )
        self.oldest = (
            f"SELECT q.name, (WITH RECURSIVE levels (priority, run_at) AS ("
            f"  (SELECT priority, run_at FROM {s}.jobs WHERE queue = q.name AND state = 'pending'"
            f"   ORDER BY priority DESC, run_at, id LIMIT 1)"
            f"  UNION ALL"
            f"  SELECT next.priority, next.run_at FROM levels CROSS JOIN LATERAL"
            f"  (SELECT priority, run_at FROM {s}.jobs WHERE queue = q.name AND state = 'pending'"
            f"   AND priority < levels.priority ORDER BY priority DESC, run_at, id LIMIT 1) next"
            f" ) SELECT min(run_at) FROM levels) FROM {s}.queues q"
        )
        self.history = (
            f"SELECT minute, processed, failed FROM {s}.counters WHERE minute >= %(since)s ORDER BY minute"
        )
        self.totals = f"SELECT coalesce(sum(processed), 0), coalesce(sum(failed), 0) FROM {s}.counters"
        self.workers = (
            f"SELECT id, host, pid, queues, concurrency, started_at, last_seen, running"
            f" FROM {s}.workers ORDER BY started_at"
        )
        # A dead or cancelled job brought back no longer holds its unique key: another job
        # may hold it by now.
        self.act_retry = (
            f"UPDATE {s}.jobs SET state = 'pending', run_at = %(now)s, attempts = 0, finished_at = NULL,"
            f" progress = NULL, cancel = NULL,"
            f" unique_key = CASE WHEN state IN {_ENDED} THEN NULL ELSE unique_key END"
            f" WHERE {{where}} AND state IN ('dead', 'cancelled', 'retry', 'scheduled')"
        )
        self.act_cancel = (
            f"UPDATE {s}.jobs SET state = 'cancelled', finished_at = %(now)s, last_error = %(note)s"
            f" WHERE {{where}} AND state IN {_CANCELLABLE}"
        )
        # By id: waiting jobs end cancelled with the note; running ones are asked to stop.
        self.cancel_ids = (
            f"WITH waiting AS (UPDATE {s}.jobs SET state = 'cancelled', finished_at = %(now)s,"
            f" last_error = %(note)s WHERE id = ANY(%(ids)s::text[]) AND state IN {_CANCELLABLE} RETURNING 1"
            f"), running AS (UPDATE {s}.jobs SET cancel = %(note)s"
            f" WHERE id = ANY(%(ids)s::text[]) AND state = 'active' AND cancel IS NULL RETURNING 1"
            f") SELECT (SELECT count(*) FROM waiting) + (SELECT count(*) FROM running)"
        )
        # A job's progress, by its id: with "state = 'active'" each report walked jobs_active
        # through every job of the worker (1,000 held: 1,000 entries read for one row).
        self.set_progress = (
            f"UPDATE {s}.jobs SET progress = %(progress)s"
            f" WHERE id = %(id)s AND locked_by = %(worker)s AND (state = 'active') IS TRUE"
        )
        self.cancel_requests = (
            f"SELECT id, cancel FROM {s}.jobs"
            f" WHERE locked_by = %(worker)s AND state = 'active' AND cancel IS NOT NULL"
        )
        self.act_delete = f"DELETE FROM {s}.jobs WHERE {{where}}"
        # -- limits (conveyor.limits) ------------------------------------------------------
        self.limits = f"SELECT queue, name, definition FROM {s}.limits"
        self.set_limit = (
            f"INSERT INTO {s}.limits (queue, name, definition) VALUES (%(queue)s, %(name)s, %(definition)s)"
            f" ON CONFLICT (queue, name) DO UPDATE SET definition = excluded.definition"
        )
        self.drop_limit = f"DELETE FROM {s}.limits WHERE queue = %(queue)s AND name = %(name)s"
        self.serve_given = given
        self.serve_every = every
        self.drop_tokens = f"DELETE FROM {s}.limit_tokens WHERE stamp < %(before)s"
        # The claim of a limited queue, and of the jobs taken ahead in its buckets: one call of
        # claim_limited (migration 13), which takes the queue's advisory lock, counts, meters
        # and claims, and lets go at the commit of the call's own transaction.
        self.claim_limited = (
            f"SELECT {', '.join('(c.claimed_job).' + c.strip() for c in _CLAIMED.split(','))}, c.ahead_of"
            f" FROM {s}.claim_limited(%(queue)s::text, %(key)s::int8, %(worker)s::text, %(until)s::float8,"
            f" %(now)s::float8, %(limit)s::int4, %(turn)s::int8, %(d_names)s::text[], %(d_conc)s::int4[],"
            f" %(d_rate)s::int4[], %(d_per)s::float8[], %(a_buckets)s::text[], %(a_ids)s::text[],"
            f" %(a_attempts)s::int4[]) AS c"
        )
        # The jobs taken ahead in a queue's buckets, with what settles them (_settle_ahead).
        # Each job looked up by its id (OFFSET 0 keeps the lookup a nested loop): as joins,
        # a few hundred rows were merge-joined with a walk of jobs_pkey from the least of
        # their ids to the greatest, every job enqueued in between.
        self.ahead_rows = (
            f"SELECT a.bucket, a.id, a.claimed, CASE WHEN y.started_at = a.claimed THEN y.state END,"
            f" y.locked_by = a.worker,"
            f" x.state = 'active' AND x.locked_by = a.worker AND x.attempts = a.attempt, x.finished_at"
            f" FROM {s}.limit_ahead a"
            f" LEFT JOIN LATERAL (SELECT state, locked_by, started_at FROM {s}.jobs"
            f"  WHERE id = a.id OFFSET 0) y ON true"
            f" LEFT JOIN LATERAL (SELECT state, locked_by, attempts, finished_at FROM {s}.jobs"
            f"  WHERE id = a.after OFFSET 0) x ON true"
            f" WHERE a.bucket > %(low)s AND a.bucket < %(high)s"
        )
        # The batch from settled() (migration 21), estimated at one row: one jobs_pkey lookup
        # per id, never a hash join over a scan of every job (the batch large against jobs).
        self.settle_ahead = (
            f"WITH d AS (SELECT * FROM {s}.settled(%(buckets)s::text[], %(ids)s::text[],"
            f" %(starts)s::float8[], %(claims)s::float8[])),"
            f" gone AS (DELETE FROM {s}.limit_ahead a USING d WHERE a.bucket = d.bucket AND a.id = d.id)"
            f" UPDATE {s}.jobs AS t SET started_at = d.start FROM d"
            f" WHERE t.id = d.id AND t.started_at = d.claimed AND d.start IS NOT NULL"
        )
        # A claim sent again whose first answer was lost: the jobs it took ahead say so.
        self.reclaim_ahead = (
            f"SELECT {', '.join('t.' + c.strip() for c in _COLUMNS.split(','))}, a.after FROM {s}.jobs t"
            f" LEFT JOIN {s}.limit_ahead a"
            f" ON a.id = t.id AND a.worker = t.locked_by AND a.claimed = t.started_at"
            f" WHERE t.locked_by = %(worker)s AND t.state = 'active' AND t.started_at = %(now)s"
        )
        self.by_ids = "id = ANY(%(ids)s::text[])"
        # -- a job's life (issue 15) -----------------------------------------------------
        # A holder that ended, or whose unique_for is over (it keeps running), lets go.
        self.unique_free = f"UPDATE {s}.jobs SET unique_key = NULL WHERE id = %(id)s AND unique_key = %(key)s"
        # One statement per job: the insert, and when it inserted nothing because a job holds
        # the key (jobs_unique; ON CONFLICT without a target also covers a retry whose answer
        # was lost, by the id), that holder, its unique_until and its state. The holder is
        # read in the statement's snapshot: one that committed while the insert waited for it
        # is not seen, and the caller tries again.
        self.enqueue_each = (
            f"WITH new_jobs AS (INSERT INTO {s}.jobs ({columns}, expires_at, unique_key, unique_until)"
            f" VALUES (%(id)s, %(queue)s, %(payload)s, %(priority)s, %(state)s, %(run_at)s,"
            f" %(max_attempts)s, %(timeout)s::float8, %(created_at)s, %(task)s::text,"
            f" %(expires_at)s::float8, %(key)s::text, %(until)s::float8) ON CONFLICT DO NOTHING"
            f" RETURNING id, queue),"
            f" notified AS MATERIALIZED (SELECT id, pg_notify(%(channel)s, queue) FROM new_jobs)"
            f" SELECT id, true, NULL::float8, NULL::text FROM notified"
            f" UNION ALL SELECT id, false, unique_until, state FROM {s}.jobs WHERE %(key)s::text IS NOT NULL"
            f" AND queue = %(queue)s AND unique_key = %(key)s AND NOT EXISTS (SELECT 1 FROM new_jobs)"
        )
        self.snooze = (
            f"WITH changed AS ("
            f" UPDATE {s}.jobs AS t SET state = 'scheduled', run_at = d.run_at,"
            f" attempts = greatest(t.attempts - 1, 0), snoozes = t.snoozes + 1,"
            f" locked_by = NULL, lease_until = NULL, progress = NULL"
            f" FROM {s}.snoozed_runs(%(ids)s::text[], %(run_at)s::float8[]) AS d"
            f" WHERE t.id = d.id AND {mine}"
            f" RETURNING 1)" + count_runs.format(failed="0")
        )
        self.change = (
            f"UPDATE {s}.jobs SET"
            f" state = CASE WHEN %(run_at)s::float8 IS NULL THEN state"
            f" WHEN %(run_at)s::float8 <= %(now)s THEN 'pending' WHEN state = 'retry' THEN 'retry'"
            f" ELSE 'scheduled' END,"
            f" run_at = coalesce(%(run_at)s::float8, run_at),"
            f" priority = coalesce(%(priority)s::int, priority),"
            f" queue = coalesce(%(queue)s::text, queue), payload = coalesce(%(payload)s::bytea, payload)"
            f" WHERE id = %(id)s AND state IN {_WAITING}"
        )
        self.add_queue = f"INSERT INTO {s}.queues (name) VALUES (%(queue)s) ON CONFLICT DO NOTHING"
        # Sweeps, each at most %(limit)s jobs found by their partial index, the oldest first.
        # SKIP LOCKED: a job a claim is taking this instant is left for the next sweep. The
        # ids go to the outer statement as an array looked up by primary key: as a join, a
        # LIMIT the planner cannot read (an expression) was planned as a hash join over a
        # scan of every job (0.8 s beside 700,000 dead jobs, instead of 15 ms).
        # The expired, whatever their state: the waiting ones end cancelled, and every one
        # leaves jobs_expires (a job that ran before its expiry keeps no entry there).
        self.expire = (
            f"WITH due AS (SELECT id, state IN {_EXPIRING} AS waiting FROM {s}.jobs"
            f" WHERE expires_at IS NOT NULL AND expires_at <= %(now)s ORDER BY expires_at"
            f" LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            f" cancelled AS (UPDATE {s}.jobs SET state = 'cancelled', finished_at = %(now)s,"
            f" last_error = %(expired)s, expires_at = NULL"
            f" WHERE id = ANY(ARRAY(SELECT id FROM due WHERE waiting)) RETURNING 1),"
            f" dropped AS (UPDATE {s}.jobs SET expires_at = NULL"
            f" WHERE id = ANY(ARRAY(SELECT id FROM due WHERE NOT waiting)))"
            f" SELECT count(*) FROM cancelled"
        )
        # Completed jobs past result_ttl, a batch (see prune.py): the oldest first, a range
        # of jobs_finished read in its order up to the LIMIT (a plan through jobs_state, or
        # a bitmap and a sort, would read every expired job to delete a batch of them).
        self.prune_completed = (
            f"DELETE FROM {s}.jobs WHERE id = ANY(ARRAY(SELECT id FROM {s}.jobs WHERE state = 'completed'"
            f" AND finished_at < %(before)s ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
        )
        self.prune_before = (
            f"DELETE FROM {s}.jobs WHERE id = ANY(ARRAY(SELECT id FROM {s}.jobs WHERE state IN {_ENDED}"
            f" AND finished_at < %(before)s ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED))"
        )
        self.prune_beyond = (
            f"DELETE FROM {s}.jobs WHERE id = ANY(ARRAY(SELECT id FROM {s}.jobs WHERE state IN {_ENDED}"
            f" ORDER BY finished_at LIMIT greatest(0, least(%(limit)s, (SELECT coalesce(sum(n), 0)"
            f" FROM {all_counts} AS c WHERE state IN {_ENDED}) - %(max)s)) FOR UPDATE SKIP LOCKED))"
        )
        self.set_paused = (
            f"INSERT INTO {s}.queues (name, paused) VALUES (%(queue)s, %(paused)s)"
            f" ON CONFLICT (name) DO UPDATE SET paused = excluded.paused"
        )

        # Periodic ticks, one statement: each tick moves its schedule's last_at forward only
        # if it is later (a catch-up only where a row exists), and the jobs of the ticks that
        # did are inserted, all in one statement. Concurrent offers of one tick meet at the
        # row lock and the loser's WHERE then sees the winner's last_at. The final SELECT adds
        # ticks recorded by an earlier try of this call whose answer was lost. The arrays go
        # in binary (%b): psycopg's text format scans every string for characters to quote,
        # which took longer than the statement (1,000 ticks: 100 ms against 50 ms).
        state = "queue = {q}.queue, last_at = {q}.last_at, next_at = {q}.next_at, job_id = {q}.job_id"
        self.enqueue_ticks = (
            f"WITH input AS MATERIALIZED (SELECT * FROM unnest(%(name)b::text[], %(at)b::float8[],"
            f" %(next_at)b::float8[], %(catch_up)b::bool[], %(id)b::text[], %(queue)b::text[],"
            f" %(payload)b::bytea[], %(priority)b::int[], %(state)b::text[], %(run_at)b::float8[],"
            f" %(max_attempts)b::int[], %(timeout)b::float8[], %(created_at)b::float8[],"
            f" %(task)b::text[])"
            f" AS i(name, at, next_at, catch_up, id, queue, payload, priority, state, run_at,"
            f" max_attempts, timeout, created_at, task)"
            f"), offered AS (INSERT INTO {s}.periodic AS p"
            f" (name, queue, last_at, next_at, job_id, enqueued_at)"
            f" SELECT name, queue, at, next_at, id, %(now)s FROM input WHERE NOT catch_up"
            f" ON CONFLICT (name) DO UPDATE SET {state.format(q='excluded')},"
            f" enqueued_at = excluded.enqueued_at WHERE p.last_at < excluded.last_at RETURNING p.job_id"
            f"), caught AS (UPDATE {s}.periodic AS p SET queue = i.queue, last_at = i.at,"
            f" next_at = i.next_at, job_id = i.id, enqueued_at = %(now)s FROM input i"
            f" WHERE i.catch_up AND p.name = i.name AND p.last_at < i.at RETURNING p.job_id"
            f"), won AS (SELECT job_id FROM offered UNION ALL SELECT job_id FROM caught"
            f"), new_queues AS (INSERT INTO {s}.queues (name) SELECT DISTINCT queue FROM input"
            f" WHERE id IN (SELECT job_id FROM won) ON CONFLICT DO NOTHING"
            f"), new_jobs AS (INSERT INTO {s}.jobs (id, queue, payload, priority, state, run_at,"
            f" max_attempts, timeout, created_at, task) SELECT id, queue, payload, priority, state,"
            f" run_at, max_attempts, timeout, created_at, task FROM input"
            f" WHERE id IN (SELECT job_id FROM won)"
            f" ON CONFLICT (id) DO NOTHING RETURNING id, queue"
            f") SELECT id, pg_notify(%(channel)s, queue) FROM new_jobs"
            f" UNION ALL SELECT job_id, NULL FROM {s}.periodic WHERE job_id = ANY(%(id)b::text[])"
        )
        self.schedules = (
            f"SELECT name, queue, last_at, next_at, job_id, enqueued_at FROM {s}.periodic ORDER BY name"
        )
        # A schedule enqueued meanwhile has a later next_at: the DELETE re-reads the row it
        # waited for and leaves it.
        self.forget_schedules = (
            f"DELETE FROM {s}.periodic WHERE next_at < %(before)s AND NOT (name = ANY(%(keep)s::text[]))"
        )

    @staticmethod
    def matching(state: str | None, queue: str | None, now: float, params: dict[str, Any]) -> str:
        """The WHERE clause of an admin action by state (and queue), its parameters added to
        ``params``. ``pending`` includes scheduled and retry
        jobs that are due; ``scheduled`` and ``retry`` only those still waiting."""
        params["now"] = now
        where = "true"
        if state == PENDING:
            where = f"state IN {_WAITING} AND run_at <= %(now)s"
        elif state in (SCHEDULED, RETRY):
            where = "state = %(state)s AND run_at > %(now)s"
        elif state is not None:
            where = "state = %(state)s"
        if state is not None:
            params["state"] = state
        if queue is not None and params.pop("_limited", False):
            # A queue with limits: its buckets' jobs too (a range of the same index).
            where += " AND (queue = %(queue)s OR (queue > %(low)s AND queue < %(high)s))"
            params["queue"] = queue
            params["low"], params["high"] = bucket_range(queue)
        elif queue is not None:
            where += " AND queue = %(queue)s"
            params["queue"] = queue
        return where


def explain(store: PostgresBackend, exc: BaseException) -> Explained | None:
    """The real cause of a psycopg error, with what to run, for ``translate_errors``."""
    if not isinstance(exc, psycopg.Error):
        return None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    ns, role = store.ns, store.role
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) or "permission denied" in text:
        if "for database" in text:
            grant = (
                f"conveyor migrate creates its tables in schema {ns!r}, which does not exist, "
                f"and role {role} may not create schemas. As the database owner run "
                f"`CREATE SCHEMA {ns} AUTHORIZATION {role};` (then `conveyor migrate` works), or "
                f"`GRANT CREATE ON DATABASE <db> TO {role};`"
            )
        elif "for schema" in text and store.migrating:
            grant = (
                f"`conveyor migrate` must run as a role that may create in schema {ns!r}: its "
                f"owner (`ALTER SCHEMA {ns} OWNER TO {role};`) or `GRANT CREATE ON SCHEMA {ns} "
                f"TO {role};`"
            )
        else:
            grant = (
                f"role {role} needs data grants on schema {ns!r}; as its owner run `GRANT USAGE "
                f"ON SCHEMA {ns} TO {role}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES "
                f"IN SCHEMA {ns} TO {role}; GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {ns} "
                f"TO {role};` (again after each `conveyor migrate`, or once with ALTER DEFAULT "
                "PRIVILEGES)"
            )
        return StoreUnavailable, f"permission denied ({text}): {grant}"
    if isinstance(exc, (psycopg.errors.DiskFull, psycopg.errors.OutOfMemory)):
        return StoreFull, f"the database server is out of space ({text}); nothing of this call was stored"
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreUnavailable, (
            f"the server or role is read-only ({text}): point the URL at the primary (with "
            "several hosts, add target_session_attrs=read-write), and check the role's "
            "default_transaction_read_only"
        )
    if (
        "authentication failed" in text
        or "no password supplied" in text
        or (isinstance(exc, psycopg.errors.InvalidAuthorizationSpecification))
    ):
        return StoreUnavailable, f"authentication failed ({text}): check the user and password in the URL"
    if "must be owner of" in text:
        return StoreUnavailable, f"{text}: run `conveyor migrate` as the owner of schema {ns!r}"
    if "prepared statement" in text:
        return StoreUnavailable, (
            f"{text}: a pooler in transaction mode (PgBouncer) is between conveyor and the "
            "database; add pgbouncer=1 to the URL so that no statement is prepared"
        )
    return None


def recover_params(now: float, completed_before: float) -> dict[str, Any]:
    """The parameters of ``Statements.recover`` at ``now`` (its plan checks use them too)."""
    return {
        "now": now,
        "minute": _minute(now),
        "before": completed_before,
        "silent": now - WORKER_EXPIRY,
        "day_ago": now - 86400,
        "far": now + FAR_FUTURE,
        "bad": BAD_RUN_AT,
        "lost": LOST,
    }


@translate_errors("PostgreSQL", (psycopg.OperationalError,), explain=explain)
class PostgresBackend(PostgresBatches, Listings):
    """Jobs in a PostgreSQL schema, shared by any number of threads, processes and hosts."""

    #: Workers take limited jobs ahead here, but not in a queue where any limit (a task's or
    #: the queue's) has a rate: threads busy with chains of jobs ahead claim less often, and
    #: a rated bucket that no claim reaches for longer than its burst lasts loses starts
    #: (session 14: test_limits_workers[postgres], whose queue mixes both, started 42-45 of
    #: at least 54 rated jobs in 3 s in about 1 run of 8 under CPU load with them, none in
    #: 12 without). Jobs ahead cut a limited drain's CPU per job by a sixth (bench/LIMITS.md).
    takes_jobs_ahead = True
    #: ``fetch_ahead`` takes a run listed k times k jobs ahead, each after the one before
    #: (claim_limited, migration 18): a worker fills a run's chain in one claim.
    chains_jobs_ahead = True
    #: A claim passes over a row another connection holds for an instant (SKIP LOCKED): a
    #: waiter marking the job for ``result()``, an admin call changing it. Workers are woken
    #: again (see ``Waits``); a caller that stops at the first empty claim looks once more.
    passes_locked_jobs = True
    #: A worker's acknowledgements and its claims run at once, each on a pooled connection
    #: (a server process) of its own, so a worker claims while its last batch's outcomes
    #: are written (worker.Worker._room).
    acks_beside_claims = True

    def __init__(self, url: str, namespace: str, migrate: bool | None = True) -> None:
        """``migrate``: True applies missing migrations on open; False raises
        ``SchemaError`` naming ``conveyor migrate`` when the schema is missing or behind
        (hardened deployments: the app's role has data grants only); None opens the store
        as it is (``conveyor migrate`` itself, which then says what it applied)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", namespace) or namespace.lower().startswith("pg_"):
            raise ConfigurationError(
                f"namespace {namespace!r} must be letters, digits and _ (not starting with pg_) "
                "for the PostgreSQL store: it names a schema"
            )
        self.url = url
        self.ns = namespace
        self.conninfo, options = _split_url(url)
        self.min_size = options.pool_min_size
        self.max_size = max(self.min_size, options.pool_max_size)
        self.pooler = options.pooler
        self.detect_pooler = options.detect_pooler and not options.pooler
        self.role = psycopg.conninfo.conninfo_to_dict(self.conninfo).get("user") or "<your role>"
        self.migrating = False
        self.listen_conninfo = options.listen_url or (None if self.pooler else self.conninfo)
        # Behind a pooler in transaction mode, two statements of one client may reach two
        # server connections: a statement prepared on one is unknown (or another client's)
        # on the other. psycopg prepares after 5 runs unless told not to.
        self.connect_kwargs: dict[str, Any] = {"autocommit": True}
        self.session_settings = True
        if self.pooler:
            self.pooler_detected()
        self.schema = sql.Identifier(namespace).as_string()
        self.channel = f"conveyor_{namespace}"
        self.sql = _Statements(self.schema, self.channel)
        self.workflow_sql = workflows.Statements(self.schema)
        self.waits = Waits.of(self.schema, namespace)
        self._pool_lock = threading.Lock()
        self._pool_obj: ConnectionPool[Conn] | None = None
        self._pool_pid = 0
        self._listen_lock = threading.Lock()
        self._listen_conn: Conn | None = None
        self._listen_pid = 0
        self._heard = threading.Condition()
        self._closed = False
        self._known_queues: set[str] = set()
        # Limit definitions by queue and name, and when they were read (monotonic).
        self._limits: dict[str, dict[str, Limit]] = {}
        self._limits_read = -1e9
        self._turns = itertools.count()  # which keys a claim starts at, when many have room (rooms)
        self._lock_keys: dict[str, int] = {}
        self.auto_migrate = migrate
        try:
            self._ensure_schema()
        except BaseException:
            self.close()  # no pool left behind for the garbage collector to stop
            raise

    # -- connections ----------------------------------------------------------------------
    def _pool(self) -> ConnectionPool[Conn]:
        pool = self._pool_obj
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_lock:
            # A forked child must not share its parent's sockets: it opens its own pool.
            if self._pool_obj is None or self._pool_pid != os.getpid():
                self._pool_obj = ConnectionPool(
                    self.conninfo,
                    kwargs=self.connect_kwargs,
                    # A SET would stay on whichever server connection a pooler picked.
                    configure=_configure if self.session_settings else None,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    timeout=POOL_TIMEOUT,
                    name=f"conveyor-{self.ns}",
                    open=True,
                )
                self._pool_pid = os.getpid()
            return self._pool_obj

    def _run(self, work: Callable[[Conn], _T], retry: bool = True, retry_for: float = RETRY_FOR) -> _T:
        """Run ``work`` on a pooled connection; on a lost connection, try again on a fresh
        one for up to ``retry_for`` seconds (every caller's ``work`` is idempotent), then
        raise (``translate_errors`` makes that ``StoreUnavailable``)."""
        deadline = time.monotonic() + retry_for
        pause = 0.05
        while True:
            try:
                wait = max(0.1, min(POOL_TIMEOUT, deadline - time.monotonic()))
                with self._pool().connection(timeout=wait) as conn:
                    return work(conn)
            except psycopg.OperationalError as exc:
                if not retry or self._closed or time.monotonic() + pause > deadline:
                    raise
                log.warning("PostgreSQL call failed, retrying in %.2f s: %s", pause, exc)
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                # Replace every broken idle connection now, rather than fail on each in turn.
                with suppress(Exception):
                    self._pool().check()

    def _direct(self, work: Callable[[Conn], _T]) -> _T:
        """Run ``work`` on a connection of its own, without retries: at startup a wrong
        password, a missing database or a bad option must fail at once with the server's
        own message (the pool would only report a timeout, after retrying for a while)."""
        with psycopg.Connection.connect(self.conninfo, **self.connect_kwargs) as conn:
            return work(conn)

    def _ensure_schema(self) -> None:
        def check(conn: Conn) -> int | None:
            row = conn.execute(self.sql.first_look).fetchone()
            if (
                self.detect_pooler
                and row is not None
                and row[1] is not None
                and int(row[1]) != conn.info.port
            ):
                # The server listens on another port than the one we reached: a pooler
                # (PgBouncer) or a proxy is in between. Prepared statements break under
                # transaction pooling and gain little here: off. LISTEN is still tried
                # (pgbouncer=1 or listen_url say more).
                log.info(
                    "PostgreSQL answers on port %s but listens on %s: a pooler or proxy is in "
                    "between; prepared statements off (pgbouncer=0 in the URL keeps them)",
                    conn.info.port,
                    row[1],
                )
                self.pooler_detected()
            if row is None or row[0] is None:
                return None
            found = conn.execute(self.sql.version).fetchone()
            return int(found[0]) if found else 0

        version = self._direct(check)
        if version is not None:
            self._check_version(version)
        if (version is not None and version >= SCHEMA_VERSION) or self.auto_migrate is None:
            return
        if not self.auto_migrate:
            found = "does not exist" if version is None else f"is at version {version}"
            raise SchemaError(
                f"PostgreSQL schema {self.ns!r} at {redact_url(self.url)} {found}; this conveyor "
                f"needs version {SCHEMA_VERSION} and was told not to migrate (migrate=False): run "
                f"`conveyor migrate --url URL --namespace {self.ns}` as a role that may change the "
                "schema (its owner), then start again"
            )
        self.migrate()

    def pooler_detected(self) -> None:
        """Connections opened from now on prepare no statement and set nothing per session."""
        self.connect_kwargs["prepare_threshold"] = None
        self.session_settings = False

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"PostgreSQL schema {self.ns!r} at {redact_url(self.url)} has conveyor schema "
                f"version {version}, newer than this conveyor knows ({SCHEMA_VERSION}); "
                "upgrade conveyor on this machine before running it against that database"
            )

    def migrate(self) -> list[int]:
        """Bring the namespace's schema up to date; returns the versions applied (empty when
        it already was). Safe to run from many processes at once: an advisory lock makes
        them take turns, and each applies only what is still missing."""

        def apply(conn: Conn) -> list[int]:
            applied: list[int] = []
            with conn.transaction():
                key = _advisory_key(f"conveyor.migrate.{self.ns}")
                conn.execute(self.sql.lock, {"key": key})
                # Nothing is created that exists: CREATE ... IF NOT EXISTS still needs the
                # privilege to create, which a data-only role, or the owner of a schema a
                # DBA made (CREATE SCHEMA conveyor AUTHORIZATION app), does not have on
                # the database.
                if conn.execute(self.sql.schema_exists, {"ns": self.ns}).fetchone() is None:
                    conn.execute(self.sql.create_schema)
                if conn.execute(self.sql.migrations_table).fetchone() in (None, (None,)):
                    conn.execute(self.sql.create_migrations)
                row = conn.execute(self.sql.version).fetchone()
                current = int(row[0]) if row else 0
                self._check_version(current)
                for version, name, text in MIGRATIONS:
                    if version <= current:
                        continue
                    # The files name tables without a schema; this puts them in ours.
                    conn.execute(self.sql.search_path)
                    conn.execute(text.encode())
                    conn.execute(self.sql.applied, {"version": version, "name": name})
                    applied.append(version)
            if applied:
                log.info("migrated PostgreSQL schema %r to version %d", self.ns, applied[-1])
            return applied

        self.migrating = True
        try:
            return self._direct(apply)
        finally:
            self.migrating = False

    def close(self) -> None:
        self._closed = True
        with self._pool_lock:
            pool, self._pool_obj = self._pool_obj, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()
        listener, self._listen_conn = self._listen_conn, None
        if listener is not None and self._listen_pid == os.getpid():
            with suppress(Exception):
                listener.close()
        self._closed = False  # a closed backend reopens on next use, like the SQLite store

    def open_async(self) -> AsyncStore:
        from .postgres_aio import AsyncPostgresStore

        return AsyncPostgresStore(self)

    # -- the hot path ---------------------------------------------------------------------
    def _enqueue_params(self, records: Sequence[JobRecord]) -> dict[str, Any]:
        if len(records) == 1:
            r = records[0]
            return {
                "id": r.id,
                "queue": r.queue,
                "payload": r.payload,
                "priority": r.priority,
                "state": r.state,
                "run_at": r.run_at,
                "max_attempts": r.max_attempts,
                "timeout": r.timeout,
                "created_at": r.created_at,
                "task": r.task,
                "queues": [split(r.queue)[0] if SEP in r.queue else r.queue],
                "channel": self.channel,
            }
        return {
            "id": [r.id for r in records],
            "queue": [r.queue for r in records],
            "payload": [r.payload for r in records],
            "priority": [r.priority for r in records],
            "state": [r.state for r in records],
            "run_at": [r.run_at for r in records],
            "max_attempts": [r.max_attempts for r in records],
            "timeout": [r.timeout for r in records],
            "created_at": [r.created_at for r in records],
            "task": [r.task for r in records],
            "queues": sorted({split(q)[0] for q in {r.queue for r in records}}),
            "channel": self.channel,
        }

    def _check_length(self, conn: Conn, records: Sequence[JobRecord], limit: int, queues: list[str]) -> None:
        """Raise QueueFull if the batch would take a queue past ``limit`` waiting jobs. Runs in
        the enqueue's transaction, after a lock per queue, so two enqueues cannot both pass."""
        for queue in queues:  # sorted: two batches lock in the same order, never deadlock
            conn.execute(self.sql.lock, {"key": _advisory_key(f"conveyor.{self.ns}.{queue}")})
        waiting = dict(conn.execute(self.sql.waiting_counts, {"queues": queues}).fetchall())
        for queue in queues:
            adding = sum(1 for r in records if r.queue == queue)
            have = int(waiting.get(queue, 0))
            if have + adding > limit:
                raise QueueFull(
                    f"queue {queue!r} holds {have} waiting jobs; adding {adding} "
                    f"would pass its limit of {limit}"
                )

    def _insert(
        self, conn: Conn, records: Sequence[JobRecord], params: dict[str, Any], known: bool = False
    ) -> None:
        """Insert the jobs on ``conn`` in its current transaction. A small batch is one
        statement; a large one is a binary COPY (several times faster than INSERT from
        arrays, whose parameters psycopg dumps in Python) followed by one statement for the
        queue list and the NOTIFY."""
        if len(records) < COPY_FROM:
            conn.execute(self.sql.enqueue[len(records) == 1, known], params)
            return
        with conn.cursor().copy(self.sql.copy_jobs) as copy:
            copy.set_types(_COPY_TYPES)
            for r in records:
                copy.write_row(
                    (
                        r.id,
                        r.queue,
                        r.payload,
                        r.priority,
                        r.state,
                        r.run_at,
                        r.max_attempts,
                        r.timeout,
                        r.created_at,
                        r.task,
                    )
                )
        conn.execute(self.sql.enqueue_queues, params)

    def enqueue(self, records: Sequence[JobRecord], max_queue_length: int | None = None) -> None:
        if not records:
            return
        params = self._enqueue_params(records)
        # Queues are never deleted, so one this process has committed need not be inserted
        # again. (Not learnt from enqueue_in: the caller's transaction may roll back.)
        known = self._known_queues.issuperset(params["queues"])
        tries = 0

        def insert(conn: Conn) -> None:
            nonlocal tries
            tries += 1
            if len(records) < COPY_FROM and max_queue_length is None:
                self._insert(conn, records, params, known)  # idempotent: ON CONFLICT DO NOTHING
                return
            if tries > 1 and conn.execute(self.sql.exists, {"id": records[0].id}).fetchone():
                return  # the previous try committed (the batch is all or none) and lost its answer
            with conn.transaction():
                if max_queue_length is not None:
                    self._check_length(conn, records, max_queue_length, params["queues"])
                self._insert(conn, records, params, known)

        # An app waiting to enqueue should hear of an outage in seconds, not after the
        # half-minute a worker's calls ride out a restart.
        self._run(insert, retry_for=CALLER_RETRY_FOR)
        if not known:
            self._known_queues.update(params["queues"])

    def enqueue_after(
        self,
        records: Sequence[JobRecord],
        after: dict[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
        max_queue_length: int | None = None,
    ) -> None:
        if records:
            workflows.enqueue_after(
                self, records, after, now, pruned_before, max_queue_length, CALLER_RETRY_FOR
            )

    def enqueue_after_in(
        self,
        connection: Any,
        records: Sequence[JobRecord],
        after: dict[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
        max_queue_length: int | None = None,
    ) -> None:
        """``enqueue_after`` through the caller's connection, inside its transaction (as
        ``enqueue_in``): the jobs and their edges exist only if it commits."""
        if records:
            workflows.enqueue_after(
                self,
                records,
                after,
                now,
                pruned_before,
                max_queue_length,
                0.0,
                _unwrap_connection(connection),
            )

    def dependencies(self, job_id: str) -> list[str]:
        return workflows.dependencies(self, job_id)

    def dependents(self, job_id: str, limit: int = 100) -> list[str]:
        return workflows.dependents(self, job_id, limit)

    def enqueue_in(
        self, connection: Any, records: Sequence[JobRecord], max_queue_length: int | None = None
    ) -> None:
        """Store jobs through the caller's connection, inside the caller's transaction, and
        do not commit: the jobs exist only if that transaction commits. Workers are woken by
        a NOTIFY that PostgreSQL delivers on that commit."""
        if not records:
            return
        conn = _unwrap_connection(connection)
        params = self._enqueue_params(records)
        if max_queue_length is not None:
            self._check_length(conn, records, max_queue_length, params["queues"])
        self._insert(conn, records, params)

    def fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float
    ) -> list[JobRecord]:
        if limit <= 0 or (queues is not None and not queues):
            return []
        params: dict[str, Any] = {
            "queues": None if queues is None else list(queues),
            "limit": limit,
            "worker": worker,
            "until": now + lease,
            "now": now,
        }
        limits = self._limits_now()
        if limits and (queues is None or not limits.keys().isdisjoint(queues)):
            return self._fetch_limited(queues, limits, params)
        statement = self.sql.fetch_every if queues is None else self.sql.fetch_given
        tries = 0

        def claim(conn: Conn) -> list[tuple[Any, ...]]:
            nonlocal tries
            tries += 1
            if tries > 1:
                # The previous try may have committed its claim and lost only the answer:
                # hand those jobs over instead of leaving them held by nobody who knows.
                rows = conn.execute(self.sql.reclaim, params).fetchall()
                if rows:
                    return rows
            # Never a prepared statement: after five runs PostgreSQL may switch a prepared
            # statement to a generic plan, and the generic plan of the claim (LIMIT and now
            # unknown) sorts the whole queue instead of walking the index: 170 ms instead of
            # 1 ms at 200,000 queued. Planning it afresh costs about 0.1 ms. The promotion of
            # due jobs goes first, in one pipeline: one round trip for both.
            with conn.pipeline():
                conn.execute(self.sql.promote_due, params)
                cursor = conn.execute(statement, params, prepare=False, binary=True)
            return cursor.fetchall()

        records = [_record(row) for row in self._run(claim)]
        if queues is None:
            rank: dict[str, int] = {"default": -1}
            records.sort(key=lambda r: (rank.get(r.queue, 0), r.queue, -r.priority, r.run_at, r.id))
        else:
            rank = {q: i for i, q in enumerate(queues)}
            records.sort(key=lambda r: (rank.get(r.queue, 0), -r.priority, r.run_at, r.id))
        return records

    # -- limits ---------------------------------------------------------------------------
    def _limits_now(self) -> dict[str, dict[str, Limit]]:
        """The stored limit definitions by queue, read again at most every LIMITS_TTL: one
        round-trip a second, not one per claim."""
        if time.monotonic() - self._limits_read > LIMITS_TTL:
            found: dict[str, dict[str, Limit]] = {}
            for (queue, name), limit in self.limits().items():
                found.setdefault(queue, {})[name] = limit
            self._limits, self._limits_read = found, time.monotonic()
        return self._limits

    def limits(self) -> dict[tuple[str, str], Limit]:
        rows = self._run(lambda conn: conn.execute(self.sql.limits).fetchall(), retry_for=CALLER_RETRY_FOR)
        found: dict[tuple[str, str], Limit] = {}
        for queue, name, text in rows:
            definition = Limit.decode(text)
            if definition is not None:
                found[(queue, name)] = definition
        return found

    def set_limit(self, queue: str, name: str, limit: Limit | None) -> None:
        params = {"queue": queue, "name": name, "definition": None if limit is None else limit.encode()}
        statement = self.sql.drop_limit if limit is None else self.sql.set_limit
        self._run(lambda conn: conn.execute(statement, params), retry_for=CALLER_RETRY_FOR)
        self._limits_read = -1e9

    def fetch_ahead(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease: float,
        now: float,
        runs: Sequence[tuple[str, str, int]],
    ) -> tuple[list[JobRecord], dict[str, str]]:
        params: dict[str, Any] = {
            "queues": None if queues is None else list(queues),
            "limit": limit,
            "worker": worker,
            "until": now + lease,
            "now": now,
        }
        after: dict[str, str] = {}
        limits = self._limits_now()
        if not (limits and (queues is None or not limits.keys().isdisjoint(queues))):
            return (self.fetch(queues, limit, worker, lease, now) if limit > 0 else []), after
        return self._fetch_limited(queues, limits, params, runs, after), after

    def _fetch_limited(
        self,
        queues: Sequence[str] | None,
        limits: dict[str, dict[str, Limit]],
        params: dict[str, Any],
        runs: Sequence[tuple[str, str, int]] = (),
        after: dict[str, str] | None = None,
    ) -> list[JobRecord]:
        """The claim when a served queue has limits: queue by queue, in order, a limited one
        in one call of claim_limited (see _claim_limited), a plain one as the plain claim."""
        tries = 0
        limit = params["limit"]
        found: dict[str, str] = {}

        def claim(conn: Conn) -> list[tuple[Any, ...]]:
            nonlocal tries
            tries += 1
            found.clear()
            if tries > 1:
                # The previous try may have committed its claim and lost only the answer:
                # hand those jobs over (and say which were taken ahead of which run).
                rows = conn.execute(self.sql.reclaim_ahead, params).fetchall()
                if rows:
                    found.update((row[0], row[-1]) for row in rows if row[-1] is not None)
                    return [row[:-1] for row in rows]
            promoted = False
            if queues is None:
                # One round-trip for the queues to serve and the promotion of due jobs.
                with conn.pipeline():
                    listed = conn.execute(self.sql.serve_every, params)
                    conn.execute(self.sql.promote_due, params)
                serve = [name for (name,) in listed.fetchall()]
                promoted = True
            else:
                # Paused queues are passed over by each claim below (claim_limited and
                # fetch_given both look), and claim_limited promotes its queue's due jobs
                # itself: a worker of one limited queue claims in one round-trip.
                serve = list(queues)
            got: list[tuple[Any, ...]] = []
            served = set(serve)
            for queue in serve:
                left = max(0, limit - len(got))
                # No jobs ahead in a queue with a rate anywhere in it (see takes_jobs_ahead).
                rated = any(other.rate for other in limits.get(queue, {}).values())
                ahead = (
                    []
                    if rated
                    else [
                        run
                        for run in runs
                        if split(run[0])[0] == queue and ahead_allowed(run[0], served, limits)
                    ]
                )
                if left <= 0 and not ahead:
                    continue
                if queue in limits:
                    got += self._claim_limited(
                        conn, queue, limits[queue], {**params, "limit": left}, ahead, found
                    )
                elif left > 0:
                    one = {**params, "queues": [queue], "limit": left}
                    if promoted:
                        got += conn.execute(self.sql.fetch_given, one, prepare=False).fetchall()
                        continue
                    with conn.pipeline():
                        conn.execute(self.sql.promote_due, params)
                        cursor = conn.execute(self.sql.fetch_given, one, prepare=False)
                    got += cursor.fetchall()
                    promoted = True
            return got

        records = [_record(row) for row in self._run(claim)]
        if after is not None:
            after.update(found)
        rank: dict[str, int] = {"default": -1} if queues is None else {q: i for i, q in enumerate(queues)}
        records.sort(key=lambda r: (rank.get(split(r.queue)[0], 0), -r.priority, r.run_at, r.id))
        return records

    @staticmethod
    def _settle_ahead(rows: Any, now: float) -> tuple[dict[str, int], dict[str, Any] | None]:
        """(per bucket, the jobs taken ahead that hold no slot yet: active, held by that
        worker from that claim, their run still active at its attempt; the parameters of
        settle_ahead for every other row, or None). A settled job holds a slot like any
        started one; it started when its run ended (on the same worker): its started_at."""
        waiting: dict[str, int] = {}
        settle: dict[str, list[Any]] = {"buckets": [], "ids": [], "starts": [], "claims": []}
        for bucket, job_id, claimed, state, mine, run_ok, run_end in rows.fetchall():
            if state == "active" and mine and run_ok:
                waiting[bucket] = waiting.get(bucket, 0) + 1
                continue
            ran = state is not None and state != PENDING
            settle["buckets"].append(bucket)
            settle["ids"].append(job_id)
            settle["starts"].append((run_end if run_end is not None else now) if ran else None)
            settle["claims"].append(claimed)
        return waiting, (settle if settle["ids"] else None)

    def _claim_limited(
        self,
        conn: Conn,
        queue: str,
        limits: dict[str, Limit],
        params: dict[str, Any],
        ahead: Sequence[tuple[str, str, int]] = (),
        after: dict[str, str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """One call of claim_limited (migration 13): under the queue's advisory lock, its
        running jobs counted, its tokens read and spent, the jobs claimed, in one statement
        and its own transaction, so the lock is held while the server runs it, never across
        a round-trip. ``ahead``: runs of this worker whose bucket's next job it takes ahead
        (noted in ``after``: job -> the run it follows)."""
        names = list(limits)
        if after is None:
            ahead = ()
        claim = {
            **params,
            "queue": queue,
            "key": self._limits_lock(queue),
            "turn": next(self._turns),
            "d_names": names,
            "d_conc": [limits[n].concurrency for n in names],
            "d_rate": [limits[n].rate for n in names],
            "d_per": [limits[n].per for n in names],
            "a_buckets": [run[0] for run in ahead],
            "a_ids": [run[1] for run in ahead],
            "a_attempts": [run[2] for run in ahead],
        }
        rows = conn.execute(self.sql.claim_limited, claim).fetchall()
        if after is not None:
            after.update((row[0], row[-1]) for row in rows if row[-1] is not None)
        return [row[:-1] for row in rows]

    def _limits_lock(self, queue: str) -> int:
        """The advisory lock the limited claims of ``queue`` take turns under."""
        key = self._lock_keys.get(queue)
        if key is None:
            key = self._lock_keys[queue] = _advisory_key(f"conveyor.{self.ns}.limits.{queue}")
        return key

    def complete(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        if not results:
            return
        # In id order: every statement that waits for job rows takes them in one order.
        results = sorted(results, key=lambda r: r[0])
        params = {
            "ids": [job_id for job_id, _ in results],
            "results": [result for _, result in results],
            "worker": worker,
            "now": now,
            "minute": _minute(now),
        }
        self._run(lambda conn: conn.execute(self.sql.complete, params))

    def fail(self, failures: Sequence[Failure], worker: str, now: float) -> None:
        if not failures:
            return
        snoozed = [f for f in failures if f.snoozed]
        if snoozed:
            self._snooze(snoozed, worker, now)
            failures = [f for f in failures if not f.snoozed]
            if not failures:
                return
        failures = sorted(failures, key=lambda f: f.id)  # in id order, as complete
        params = {
            "ids": [f.id for f in failures],
            "states": [CANCELLED if f.cancelled else DEAD if f.retry_at is None else RETRY for f in failures],
            "retry_at": [f.retry_at for f in failures],
            "errors": [f.error for f in failures],
            "tracebacks": [f.traceback for f in failures],
            "worker": worker,
            "now": now,
            "minute": _minute(now),
        }
        self._run(lambda conn: conn.execute(self.sql.fail, params))

    def _snooze(self, snoozed: Sequence[Failure], worker: str, now: float) -> None:
        """Snoozed runs: back to scheduled, the attempt not counted (a rare path, its own
        statement, so the failure statement stays as it was)."""
        params = {
            "ids": [f.id for f in snoozed],
            "run_at": [f.retry_at for f in snoozed],
            "worker": worker,
            "minute": _minute(now),
        }
        self._run(lambda conn: conn.execute(self.sql.snooze, params))

    def enqueue_each(
        self, records: Sequence[JobRecord], now: float, max_queue_length: int | None = None
    ) -> list[str | None]:
        holders: list[str | None] = [None] * len(records)
        todo = list(range(len(records)))
        new_queues = sorted({r.queue for r in records} - self._known_queues)
        for _ in range(10):
            # A job whose holder ended between its insert and the look for that holder is
            # tried again (a holder found is the answer; an insert that stored it too).
            store = functools.partial(
                self._store_each,
                records=records,
                todo=todo,
                holders=holders,
                now=now,
                max_queue_length=max_queue_length,
                new_queues=new_queues,
            )
            todo = self._run(store, retry_for=CALLER_RETRY_FOR)
            new_queues = []
            if not todo:
                break
        else:
            raise RuntimeError(f"unique jobs kept racing their holders; not stored: {todo}")
        self._known_queues.update(r.queue for r in records)
        return holders

    def _store_each(
        self,
        conn: Conn,
        records: Sequence[JobRecord],
        todo: list[int],
        holders: list[str | None],
        now: float,
        max_queue_length: int | None,
        new_queues: list[str],
    ) -> list[int]:
        """``enqueue_each`` of ``records[n]`` for each n of ``todo``, in one round trip
        (three statements per unique job); fills ``holders``; returns the n to try again."""
        for queue in new_queues:
            conn.execute(self.sql.add_queue, {"queue": queue})
        # Keys in one order in every call: two batches waiting on each other's inserts in
        # opposite orders would deadlock.
        todo = sorted(todo, key=lambda n: (records[n].queue, records[n].unique_key or ""))
        sent: list[tuple[int, Any]] = []
        if max_queue_length is None and len(todo) == 1:
            sent = [(todo[0], self._send_each(conn, records[todo[0]], now))]
        elif max_queue_length is None:
            with conn.pipeline():  # one round trip for the lot
                sent = [(n, self._send_each(conn, records[n], now)) for n in todo]
        rows = [(n, cursor.fetchone()) for n, cursor in sent]
        if max_queue_length is not None:
            for n in todo:
                # The insert first, then the count under the queue's lock, which sees every
                # committed job and this one: a duplicate is never refused as over the limit.
                with conn.transaction():
                    row = self._send_each(conn, records[n], now).fetchone()
                    if row is not None and row[1]:
                        self._check_length(conn, [], max_queue_length, [records[n].queue])
                rows.append((n, row))
        again: list[int] = []
        for n, row in rows:
            if row is None:
                again.append(n)  # the holder ended, or committed unseen: decide it again
            elif row[1] or row[0] == records[n].id:
                holders[n] = None  # stored (perhaps by a try whose answer was lost)
            elif row[3] not in _LIVE_STATES or (row[2] is not None and row[2] <= now):
                # The holder ended, or its time is up: it lets go, and this job tries again.
                conn.execute(self.sql.unique_free, {"id": row[0], "key": records[n].unique_key})
                again.append(n)
            else:
                holders[n] = str(row[0])
        return again

    def _send_each(self, conn: Conn, r: JobRecord, now: float) -> Any:
        params = {
            **self._enqueue_params([r]),
            "expires_at": r.expires_at,
            "key": r.unique_key,
            "until": r.unique_until,
        }
        return conn.execute(self.sql.enqueue_each, params)

    def release(self, ids: Sequence[str], worker: str) -> None:
        if not ids:
            return
        params = {"ids": list(ids), "worker": worker}

        def hand_back(conn: Conn) -> None:
            if conn.execute(self.sql.release, params).rowcount:
                conn.execute(self.sql.notify, {"channel": self.channel, "queue": ""})

        self._run(hand_back)

    def heartbeat(self, info: WorkerInfo, lease: float, now: float) -> None:
        params = {
            "id": info.id,
            "until": now + lease,
            "host": info.host,
            "pid": info.pid,
            "queues": orjson.dumps(info.queues).decode(),
            "concurrency": info.concurrency,
            "started_at": info.started_at,
            "now": now,
            "running": orjson.dumps(info.running).decode(),
        }
        statement = self.sql.heartbeat if info.alive else self.sql.unregister
        self._run(lambda conn: conn.execute(statement, params))

    def recover(self, now: float, completed_before: float) -> int:
        params = recover_params(now, completed_before)

        def housekeeping(conn: Conn) -> int:
            row = conn.execute(self.sql.recover, params).fetchone()
            recovered = int(row[0]) if row else 0
            if recovered:
                conn.execute(self.sql.notify, {"channel": self.channel, "queue": ""})
            # A token bucket unused for an hour is full again: its row need not be kept.
            conn.execute(self.sql.drop_tokens, {"before": now - 3600})
            # Jobs taken ahead whose runs ended, in queues no claim has looked at since.
            settle = self._settle_ahead(
                conn.execute(self.sql.ahead_rows, {"low": "", "high": "\U0010ffff"}), now
            )[1]
            if settle is not None:
                conn.execute(self.sql.settle_ahead, settle)
            workflows.cascade(conn, self.workflow_sql, now)
            self.prune_batches(conn, completed_before)
            return recovered

        recovered = self._run(housekeeping)
        prune = self.sql.prune_completed

        # Completed jobs past result_ttl: batches, each a transaction of its own (prune.py).
        def batch(limit: int) -> int:
            params = {"before": completed_before, "limit": limit}
            return self._run(lambda conn: conn.execute(prune, params).rowcount)

        prune_completed(batch)
        return recovered

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        if timeout <= 0:
            return
        if self.listen_conninfo is None:
            # Behind a pooler in transaction mode LISTEN cannot work (the next statement
            # may run on another server connection) and no listen_url was given: poll.
            # A job then waits at most POOLER_POLL for an idle worker.
            time.sleep(min(timeout, POOLER_POLL))
            return
        if not self._listen_lock.acquire(blocking=False):
            # Another thread of this process holds the LISTEN connection; it wakes us
            # whenever it returns, which is early when something arrived.
            with self._heard:
                self._heard.wait(timeout)
            return
        try:
            self._listen(None if queues is None else set(queues), timeout)
        finally:
            self._listen_lock.release()
            with self._heard:
                self._heard.notify_all()

    def _listen(self, wanted: set[str] | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            conn = self._listener()
            while (remaining := deadline - time.monotonic()) > 0:
                for note in conn.notifies(timeout=remaining, stop_after=1):
                    # An empty payload (release, retry, resume) may concern any queue.
                    if wanted is None or not note.payload or note.payload in wanted:
                        return
        except psycopg.Error as exc:
            log.debug("LISTEN connection lost, polling until it is back: %s", exc)
            listener, self._listen_conn = self._listen_conn, None
            if listener is not None:
                with suppress(Exception):
                    listener.close()
            # The caller polls on return, so this wait must still last its time.
            time.sleep(max(0.0, deadline - time.monotonic()))

    def _listener(self) -> Conn:
        conn = self._listen_conn
        if conn is None or conn.closed or self._listen_pid != os.getpid():
            assert self.listen_conninfo is not None  # wait() polls without one
            conn = psycopg.Connection.connect(self.listen_conninfo, autocommit=True)
            conn.execute(self.sql.listen)
            self._listen_conn = conn
            self._listen_pid = os.getpid()
        return conn

    def wait_ended(self, job_id: str, queue: str | None, timeout: float | None) -> JobRecord | None:
        """LISTEN, mark the job waited for, and block until its trigger notifies (a pooled
        connection is held meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def wait(conn: Conn) -> JobRecord | None:
            conn.execute(self.waits.listen)
            try:
                while (marked := conn.execute(self.waits.watch, {"id": job_id}).fetchone()) is not None:
                    if marked[0] != ACTIVE:  # see Waits
                        conn.execute(self.sql.notify, {"channel": self.channel, "queue": split(marked[1])[0]})
                    left = RECHECK if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        break
                    for note in conn.notifies(timeout=min(left, RECHECK)):
                        if note.payload == job_id:
                            break
            finally:
                conn.execute(self.waits.unlisten)
            row = conn.execute(self.sql.get, {"id": job_id}).fetchone()
            return None if row is None else _record(row)

        return self._run(wait, retry_for=CALLER_RETRY_FOR)

    # -- admin ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        row = self._run(
            lambda conn: conn.execute(self.sql.get, {"id": job_id}).fetchone(), retry_for=CALLER_RETRY_FOR
        )
        return None if row is None else _record(row)

    def _which(self, queue: str | None, params: dict[str, Any]) -> str:
        """The listing's filter on queue names: none, the queue, or the queue and its limit
        buckets (a range of names)."""
        if queue is None:
            return ""
        if queue not in self._limits_now():
            return " WHERE q.name = %(queue)s"
        params["low"], params["high"] = bucket_range(queue)
        return " WHERE q.name = %(queue)s OR (q.name > %(low)s AND q.name < %(high)s)"

    def _page(
        self,
        state: str,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        needles: Sequence[bytes] = (),
        task: str | None = None,
    ) -> list[tuple[str, JobRecord | None]]:
        params: dict[str, Any] = {"queue": queue, "limit": limit, "now": now, "state": state}
        if state == PENDING:
            # Past the cursor, or from the top: above every priority and before every id.
            params.update(priority=2**31 - 1, run_at=float("-inf"), after="")
            if after:
                priority, run_at, last = cursor_parts(after, state, 3)
                params.update(priority=cursor_int(priority, after), run_at=cursor_float(run_at, after))
                params["after"] = last
            statement = self.sql.page_pending
        else:
            params["after"] = cursor_parts(after, state, 1)[0] if after else "\U0010ffff"
            if state == ACTIVE:
                statement = self.sql.page_active
            elif state in (SCHEDULED, RETRY, WAITING, DEAD, CANCELLED, COMPLETED):
                statement = self.sql.page_by_id
            else:
                return []
        select = _COLUMNS
        tests = [f"position(%(needle{i})s::bytea in payload) > 0" for i in range(len(needles))]
        params.update({f"needle{i}": needle for i, needle in enumerate(needles)})
        which = self._which(queue, params)
        if task is not None:
            params["task"] = task
            if state in _TASK_STATES:
                statement = self.sql.page_task
                if state == PENDING:  # newest first, as every state by task
                    statement = self.sql.page_task_pending
                    params["after"] = params["after"] or "\U0010ffff"
                if queue is not None:
                    tests.append("(" + which.removeprefix(" WHERE ").replace("q.name", "queue") + ")")
                which = ""
            else:
                tests.append("task = %(task)s")
        searching = bool(tests)
        # A task's jobs of a state tested only for their queue mostly match: read whole at
        # once, as they are without a test.
        whole_rows = (
            searching and not needles and statement in (self.sql.page_task, self.sql.page_task_pending)
        )
        if whole_rows:
            select = f"{_COLUMNS}, ({' AND '.join(tests)}) AS hit"
        elif searching:
            # A search reads the sort key and whether the job matches (its payload holds
            # every text, it is of the task); the jobs that do are read whole afterwards
            # (a page at most).
            select = (
                f"id, queue, NULL::bytea AS payload, priority, NULL AS state, run_at, {_UNREAD},"
                f" finished_at, ({' AND '.join(tests)}) AS hit"
            )
        statement = statement.format(
            select=select,
            state=state,  # one of the states checked above: a literal, see _Statements
            waiting=" AND run_at > %(now)s" if state in (SCHEDULED, RETRY) else "",
            which=which,
        )
        rows = self._run(lambda conn: conn.execute(statement, params).fetchall(), retry_for=CALLER_RETRY_FOR)
        if state == PENDING:
            cursors = [make_cursor(state, row[3], repr(row[5]), row[0]) for row in rows]
        else:
            cursors = [make_cursor(state, row[0]) for row in rows]
        if not searching:
            return [(position, _record(row)) for position, row in zip(cursors, rows, strict=True)]
        hits = [] if whole_rows else [row[0] for row in rows if row[-1]]
        whole = {row[0]: _record(row[:-1]) for row in rows if row[-1]} if whole_rows else {}
        if hits:
            read = self.sql.by_id_list
            for full in self._run(lambda conn: conn.execute(read, {"ids": hits}).fetchall()):
                whole[full[0]] = _record(full)
        return [
            (position, whole.get(row[0]) if row[-1] else None)
            for position, row in zip(cursors, rows, strict=True)
        ]

    def stats(self, now: float) -> Stats:
        def read(conn: Conn) -> Stats:
            # One snapshot for every read: counts and the due ranges must agree.
            with conn.transaction():
                conn.execute(self.sql.snapshot)
                return read_in(conn)

        def read_in(conn: Conn) -> Stats:
            queues: dict[str, dict[str, int]] = {}
            paused: set[str] = set()
            for name, is_paused in conn.execute(self.sql.queues):
                queues[name] = {}
                if is_paused:
                    paused.add(name)
            for queue, state, count in conn.execute(self.sql.counts):
                queues.setdefault(queue, {})[state] = int(count)
            firsts: dict[str, float] = {}
            for queue, state, count, first in conn.execute(self.sql.due, {"now": now}):
                counts = queues.setdefault(queue, {})
                counts[PENDING] = counts.get(PENDING, 0) + int(count)
                left = counts.get(state, 0) - int(count)
                if left > 0:
                    counts[state] = left
                else:
                    counts.pop(state, None)
                firsts[queue] = min(firsts.get(queue, first), first)
            for queue, first in conn.execute(self.sql.oldest):
                if first is not None:
                    firsts[queue] = min(firsts.get(queue, first), first)
            oldest = {queue: max(0.0, now - first) for queue, first in firsts.items()}
            history = [
                (float(minute), int(processed), int(failed))
                for minute, processed, failed in conn.execute(self.sql.history, {"since": now - 3600})
            ]
            row = conn.execute(self.sql.totals).fetchone()
            processed, failed = (int(row[0]), int(row[1])) if row else (0, 0)
            return Stats(
                queues=queues,
                paused=frozenset(paused),
                processed=processed,
                failed=failed,
                oldest_pending=oldest,
                history=history,
            )

        return self._run(read, retry_for=CALLER_RETRY_FOR)

    def workers(self) -> list[WorkerInfo]:
        rows = self._run(lambda conn: conn.execute(self.sql.workers).fetchall(), retry_for=CALLER_RETRY_FOR)
        return [
            WorkerInfo(
                id=row[0],
                host=row[1],
                pid=row[2],
                queues=tuple(orjson.loads(row[3])),
                concurrency=row[4],
                started_at=row[5],
                last_seen=row[6],
                running=tuple(orjson.loads(row[7])),
            )
            for row in rows
        ]

    def act(
        self,
        action: str,
        ids: Sequence[str] | None,
        now: float,
        state: str | None = None,
        queue: str | None = None,
        note: str | None = None,
        limit: int | None = None,
    ) -> int:
        check_action(action)
        if action == "cancel" and ids is not None:
            cancel = {"now": now, "ids": list(ids), "note": note or CANCELLED_NOTE}

            def request(conn: Conn) -> int:
                row = conn.execute(self.sql.cancel_ids, cancel).fetchone()
                return int(row[0]) if row else 0

            return self._run(request, retry_for=CALLER_RETRY_FOR)
        templates = {
            "retry": self.sql.act_retry,
            "cancel": self.sql.act_cancel,
            "delete": self.sql.act_delete,
        }
        params: dict[str, Any] = {"now": now, "note": note or CANCELLED_NOTE}
        if ids is not None:
            where = self.sql.by_ids
            params["ids"] = list(ids)
        else:
            params["_limited"] = queue is not None and queue in self._limits_now()
            where = self.sql.matching(state, queue, now, params)
            if limit is not None:
                where = f"id IN (SELECT id FROM {self.schema}.jobs WHERE {where} LIMIT {int(limit)})"
        statement = templates[action].format(where=where)

        def change(conn: Conn) -> int:
            changed = conn.execute(statement, params).rowcount
            if changed and action == "retry":
                conn.execute(self.sql.notify, {"channel": self.channel, "queue": ""})
            return changed

        return self._run(change, retry_for=CALLER_RETRY_FOR)

    def change(
        self,
        job_id: str,
        now: float,
        run_at: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        payload: bytes | None = None,
    ) -> bool:
        params = {
            "id": job_id,
            "now": now,
            "run_at": run_at,
            "priority": priority,
            "queue": queue,
            "payload": payload,
            "channel": self.channel,
        }

        def move(conn: Conn) -> bool:
            if queue is not None:
                conn.execute(self.sql.add_queue, params)
            if not conn.execute(self.sql.change, params).rowcount:
                return False
            conn.execute(self.sql.notify, {"channel": self.channel, "queue": queue or ""})
            return True

        return self._run(move, retry_for=CALLER_RETRY_FOR)

    def sweep(self, now: float, dead_before: float | None, dead_max: int | None, limit: int) -> int:
        params = {"now": now, "expired": EXPIRED, "limit": limit, "before": dead_before, "max": dead_max}

        def sweep(conn: Conn) -> int:
            # Up to three statements in one round trip (a pipeline: one short implicit
            # transaction, row locks only, the rows found by index, at most limit each).
            with conn.pipeline():
                expired = conn.execute(self.sql.expire, params)
                pruned = []
                if dead_before is not None:
                    pruned.append(conn.execute(self.sql.prune_before, params))
                if dead_max is not None:
                    pruned.append(conn.execute(self.sql.prune_beyond, params))
            row = expired.fetchone()
            return (int(row[0]) if row else 0) + sum(max(0, cursor.rowcount) for cursor in pruned)

        return self._run(sweep)

    # -- periodic jobs ----------------------------------------------------------------------
    def enqueue_ticks(self, ticks: Sequence[Tick], now: float) -> list[bool]:
        if not ticks:
            return []
        # By name: concurrent offers lock the schedules' rows in one order, never a deadlock.
        ordered = sorted(ticks, key=lambda t: t.name)
        records = [t.record for t in ordered]
        params: dict[str, Any] = {
            "name": [t.name for t in ordered],
            "at": [t.at for t in ordered],
            "next_at": [t.next_at for t in ordered],
            "catch_up": [t.catch_up for t in ordered],
            "id": [r.id for r in records],
            "queue": [r.queue for r in records],
            "payload": [r.payload for r in records],
            "priority": [r.priority for r in records],
            "state": [r.state for r in records],
            "run_at": [r.run_at for r in records],
            "max_attempts": [r.max_attempts for r in records],
            "timeout": [r.timeout for r in records],
            "created_at": [r.created_at for r in records],
            "task": [r.task for r in records],
            "now": now,
            "channel": self.channel,
        }

        def offer(conn: Conn) -> set[str]:
            return {row[0] for row in conn.execute(self.sql.enqueue_ticks, params).fetchall()}

        stored = self._run(offer)
        return [t.record.id in stored for t in ticks]

    def schedules(self) -> list[ScheduleState]:
        rows = self._run(lambda conn: conn.execute(self.sql.schedules).fetchall())
        return [ScheduleState(*row) for row in rows]

    def forget_schedules(self, keep: Sequence[str], abandoned_before: float) -> int:
        params = {"before": abandoned_before, "keep": list(keep)}
        return self._run(lambda conn: conn.execute(self.sql.forget_schedules, params).rowcount)

    def set_progress(self, job_id: str, worker: str, progress: bytes) -> bool:
        params = {"id": job_id, "worker": worker, "progress": progress}
        return self._run(lambda conn: conn.execute(self.sql.set_progress, params).rowcount > 0)

    def cancel_requests(self, worker: str, queues: Sequence[str]) -> list[tuple[str, str]]:
        rows = self._run(lambda conn: conn.execute(self.sql.cancel_requests, {"worker": worker}).fetchall())
        return [(str(job_id), str(note)) for job_id, note in rows]

    def set_paused(self, queue: str, paused: bool) -> None:
        def change(conn: Conn) -> None:
            conn.execute(self.sql.set_paused, {"queue": queue, "paused": paused})
            if not paused:
                conn.execute(self.sql.notify, {"channel": self.channel, "queue": queue})

        self._run(change, retry_for=CALLER_RETRY_FOR)
