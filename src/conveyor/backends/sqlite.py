"""The embedded SQLite store: one table of jobs, in the spirit of Delayed Job.

Every write runs in ``BEGIN IMMEDIATE`` so that concurrent writers (threads and worker
processes on one file) queue on SQLite's busy handler instead of failing with "database is
locked" when a read transaction tries to upgrade. WAL mode lets readers run beside the one
writer. ``synchronous=NORMAL`` keeps every committed job across a crash of any process; only
a power loss can drop the last transactions.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import chain
from typing import Any
from urllib.parse import unquote, urlsplit

try:
    import fcntl
except ImportError:  # (Windows: writers meet at SQLite's busy handler alone)
    fcntl = None  # type: ignore[assignment]

import orjson

from ..errors import ConfigurationError, QueueFull, SchemaError
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
    STATES,
    WAITING_STATES,
    Failure,
    JobRecord,
    ScheduleState,
    Stats,
    Tick,
    WorkerInfo,
)
from ..limits import Limit, Tokens, ahead_allowed, bucket_range, rated, rooms, spent, split
from . import sqlite_workflows as workflows
from .aio import AsyncStore
from .base import check_action, translate_errors
from .listing import Listings, cursor_float, cursor_int, cursor_parts, make_cursor
from .prune import prune_batches as prune_completed
from .sqlite_batches import SQLiteBatches, batch_schema, prune_batches
from .sqlite_lists import IN_CHUNK, in_chunks
from .sqlite_lists import in_list as _in_list

SCHEMA_VERSION = 7
#: Due scheduled and retry jobs turned pending by one claim, at most: a backlog that all came
#: due at once is promoted over several claims instead of in one long write transaction.
PROMOTE_BATCH = 2000
WORKER_EXPIRY = 60.0  # seconds of silence after which a worker is forgotten
#: Seconds a process trusts its copy of the limit definitions: a limit defined meanwhile
#: (a limited task's first enqueue) is enforced at once, its jobs wait in their buckets until
#: a claim reads it (the plain claim never takes them), so this delays them, never frees them.
LIMITS_TTL = 1.0
#: Seconds between two looks at data_version in an idle wait: at first, and at most (see wait).
BUSY_POLL = 0.002
IDLE_POLL = 0.01
#: Seconds between two passes of a process's limited claims over every row of {ns}_ahead
#: (see _pick_buckets), and the most runs it remembers having taken jobs ahead for.
AHEAD_SETTLE = 1.0
FOLLOWS_MAX = 100_000

# Every column read back is CAST to the type JobRecord expects: SQLite stores whatever a
# hand-written row holds, and a cast in C is cheaper than checking types in Python.
_TYPES = {
    "id": "TEXT", "queue": "TEXT", "payload": "BLOB", "priority": "INTEGER", "state": "TEXT",
    "run_at": "REAL", "attempts": "INTEGER", "max_attempts": "INTEGER", "timeout": "REAL",
    "created_at": "REAL", "started_at": "REAL", "finished_at": "REAL", "result": "BLOB",
    "last_error": "TEXT", "traceback": "TEXT", "locked_by": "TEXT", "lease_until": "REAL",
    "progress": "BLOB", "cancel": "TEXT", "expires_at": "REAL", "unique_key": "TEXT",
    "unique_until": "REAL", "snoozes": "INTEGER", "batch_id": "TEXT", "task": "TEXT",
}  # fmt: skip


def _cast(*names: str) -> str:
    return ", ".join(f"CAST({name} AS {_TYPES[name]})" for name in names)


_COLUMNS = _cast(*_TYPES)  # in JobRecord's field order
# What a claim reads back: JobRecord's first ten fields (state as the literal it just wrote);
# the caller adds the rest, which it knows without asking.
_CLAIMED = (
    _cast("id", "queue", "payload", "priority")
    + ", 'active', "
    + _cast("run_at", "attempts", "max_attempts", "timeout", "created_at")
)
_WAITING = "('scheduled','pending','retry')"
#: The states in which a job holds its unique key.
_LIVE_STATES = frozenset(("scheduled", "pending", "retry", "active"))
_ENDED = "('dead','cancelled')"
_LATER = "('scheduled','retry')"
#: The states admin listings find by index, newest first (the hot states stay out: every
#: index is written on each change of state).
_LISTED_STATES = ("dead", "cancelled", "retry", "scheduled", "waiting")
#: Those states, as the WHERE of their partial indexes and of the listings that read them
#: (written the same way in both: SQLite proves a partial index usable from terms written
#: alike). Comparisons, never ``state IN (...)``: SQLite evaluates an index's WHERE for the
#: old and the new row of every insert and change of state, and an IN list of more than two
#: values there builds a temporary table at each evaluation (no once-only code in index
#: expressions): with the four states of schema 6 in IN lists, the two indexes were close to
#: 40% of a no-op job's instructions, enqueue to acknowledgement, Python's included. The
#: range (retry, scheduled, waiting: every state from 'retry' on in byte order) takes one
#: comparison for three; tests/core/test_sqlite_plain_jobs.py checks it against STATES.
_LISTED = "(state = 'cancelled' OR state = 'dead' OR state >= 'retry')"
#: What a search reads of each job: the sort key (id, priority, run_at, finished_at) and
#: whether it matches ({found}), in JobRecord's places (the rest NULL).
_SEARCHED = "id, queue, NULL, priority, NULL, run_at, " + ", ".join(["NULL"] * 5) + ", finished_at, ({found})"


def _schema(ns: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {ns}_jobs (
            id TEXT PRIMARY KEY,
            queue TEXT NOT NULL,
            payload BLOB NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            run_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 1,
            timeout REAL,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            result BLOB,
            last_error TEXT,
            traceback TEXT,
            locked_by TEXT,
            lease_until REAL,
            progress BLOB,
            cancel TEXT,
            expires_at REAL,
            unique_key TEXT,
            unique_until REAL,
            snoozes INTEGER NOT NULL DEFAULT 0,
            batch_id TEXT,
            task TEXT,
            dependents INTEGER NOT NULL DEFAULT 0,
            waiting_on INTEGER
        ) WITHOUT ROWID""",
        # Ready jobs only: the claim walks this index per queue, in order, and stops at its
        # LIMIT; jobs waiting for a later time are not in it, so a million scheduled jobs
        # cost an idle claim nothing.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_ready
            ON {ns}_jobs (queue, priority DESC, run_at, id) WHERE state = 'pending'""",
        # Jobs waiting for a time, by that time: each claim promotes the due ones to pending
        # (a range at the start of this index), recover finds absurd times at its end, and
        # stats counts the due ones per queue without reading the table.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_due
            ON {ns}_jobs (run_at, queue, state) WHERE state IN {_LATER}""",
        # Only the jobs being run (a few per worker): heartbeat finds a worker's leases by
        # locked_by, and recovery scans them all for expired ones.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_active
            ON {ns}_jobs (locked_by, lease_until) WHERE state = 'active'""",
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_finished
            ON {ns}_jobs (finished_at) WHERE state = 'completed'""",
        # (jobs_state and jobs_listed: _listing_indexes, made after the upgrades.)
        f"""CREATE TABLE IF NOT EXISTS {ns}_queues (
            name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
        f"""CREATE TABLE IF NOT EXISTS {ns}_workers (
            id TEXT PRIMARY KEY, host TEXT, pid INTEGER, queues TEXT, concurrency INTEGER,
            started_at REAL, last_seen REAL, running TEXT) WITHOUT ROWID""",
        f"""CREATE TABLE IF NOT EXISTS {ns}_counters (
            minute INTEGER PRIMARY KEY, processed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0)""",
        f"CREATE TABLE IF NOT EXISTS {ns}_meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID",
        # Limit definitions (conveyor.limits: "concurrency|rate|per") per queue and limit name
        # ('' for the whole queue), and the token bucket of each rate-limited bucket (a row
        # that is absent is a full bucket). Made by CREATE IF NOT EXISTS on every open, so
        # older files gain them without a version step, and older conveyors still open
        # the file (they never serve a bucket: see conveyor.limits).
        f"""CREATE TABLE IF NOT EXISTS {ns}_limits (
            queue TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL,
            PRIMARY KEY (queue, name)) WITHOUT ROWID""",
        f"""CREATE TABLE IF NOT EXISTS {ns}_tokens (
            bucket TEXT PRIMARY KEY, tokens REAL NOT NULL, stamp REAL NOT NULL) WITHOUT ROWID""",
        # Jobs taken ahead (fetch_ahead): each is claimed (at ``claimed``, its started_at
        # until settled) to start in the slot of one run of its bucket (``after``, at its
        # ``attempt``) held by the same worker, and holds no slot while that run is active.
        # Rows of ended runs are settled by the next claim of the queue or by recover.
        f"""CREATE TABLE IF NOT EXISTS {ns}_ahead (
            bucket TEXT NOT NULL, id TEXT NOT NULL, worker TEXT NOT NULL, after TEXT NOT NULL,
            attempt INTEGER NOT NULL, claimed REAL NOT NULL, PRIMARY KEY (bucket, id)) WITHOUT ROWID""",
        # Periodic schedules: the last tick enqueued of each (Backend.enqueue_ticks). Made by
        # CREATE IF NOT EXISTS on every open, so older files gain it without a version step.
        f"""CREATE TABLE IF NOT EXISTS {ns}_periodic (
            name TEXT PRIMARY KEY, queue TEXT NOT NULL, last_at REAL NOT NULL,
            next_at REAL NOT NULL, job_id TEXT NOT NULL, enqueued_at REAL NOT NULL) WITHOUT ROWID""",
        # Jobs per queue and state, kept by triggers in the transaction that changes a job,
        # so stats() reads a few rows instead of counting millions, and rows written by hand
        # are counted too.
        f"""CREATE TABLE IF NOT EXISTS {ns}_counts (
            queue TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (queue, state)) WITHOUT ROWID""",
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_jobs_counted_insert AFTER INSERT ON {ns}_jobs BEGIN
            INSERT INTO {ns}_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
                ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
        END""",
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_jobs_counted_delete AFTER DELETE ON {ns}_jobs BEGIN
            UPDATE {ns}_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
        END""",
        f"""CREATE TRIGGER IF NOT EXISTS {ns}_jobs_counted_update AFTER UPDATE OF state, queue ON {ns}_jobs
            WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue BEGIN
            UPDATE {ns}_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
            INSERT INTO {ns}_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
                ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
        END""",
    ]


def _listing_indexes(ns: str) -> list[str]:
    """The indexes admin listings read the cold states through, newest first (schema
    version 7 made them again with another WHERE: made after the upgrades)."""
    return [
        # Every index is written on each state change, so the hot states (pending, active,
        # completed) stay out of these; the admin lists them through the indexes above.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_state
            ON {ns}_jobs (state, queue, id) WHERE {_LISTED}""",
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_listed
            ON {ns}_jobs (state, id) WHERE {_LISTED}""",
    ]


def _lifecycle_indexes(ns: str) -> list[str]:
    """Indexes on the columns of schema version 3, made after the upgrades (an older table
    gets those columns only there). Each holds only the jobs that use the option, so jobs
    without it cost no index entry; the first two do not name the state in their predicate
    either, so that no change of state of any job has them evaluated (a job's claim and
    acknowledgement cost the same as before but for the index of ended jobs)."""
    return [
        # One job per unique key and queue: the store itself refuses a second one. A holder
        # that ended (or whose unique_for is over) lets go of its key when the next job of
        # that key meets it (enqueue_each), not when it ends: ending a job writes nothing more.
        f"""CREATE UNIQUE INDEX IF NOT EXISTS {ns}_jobs_unique ON {ns}_jobs (queue, unique_key)
            WHERE unique_key IS NOT NULL""",
        # Jobs with an expiry, by it: housekeeping cancels the expired ones still waiting and
        # drops the expiry of the others (so the index holds no job it need not look at).
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_expires ON {ns}_jobs (expires_at)
            WHERE expires_at IS NOT NULL""",
        # Dead and cancelled jobs by when they ended: retention deletes the oldest first.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_ended ON {ns}_jobs (finished_at)
            WHERE state IN {_ENDED}""",
        # A search by task name: each task's jobs, newest first. No state in it: the entry
        # is written once, at enqueue, and no claim or acknowledgement touches it (with the
        # state in the index or in its WHERE, each acknowledgement wrote an entry: a drain's
        # CPU a job rose by a quarter). A search of one state tests each job's state.
        f"""CREATE INDEX IF NOT EXISTS {ns}_jobs_task ON {ns}_jobs (task, id)
            WHERE task IS NOT NULL""",
    ]


def _upgrades(ns: str) -> dict[int, list[str]]:
    """Statements that bring a database from schema version N to N + 1, run after the
    ``CREATE ... IF NOT EXISTS`` statements of the current schema, in the same transaction."""
    return {
        # 1 -> 2: the claim index held scheduled jobs too; counts start from one full count;
        # a running job's progress and a request to stop it get columns.
        1: [
            f"ALTER TABLE {ns}_jobs ADD COLUMN progress BLOB",
            f"ALTER TABLE {ns}_jobs ADD COLUMN cancel TEXT",
            f"DROP INDEX IF EXISTS {ns}_jobs_fetch",
            f"DELETE FROM {ns}_counts",
            f"INSERT INTO {ns}_counts (queue, state, n) SELECT queue, state, count(*) FROM {ns}_jobs"
            " GROUP BY queue, state",
        ],
        # 2 -> 3: expiry, unique keys and a snooze counter (their indexes: _lifecycle_indexes).
        2: [
            f"ALTER TABLE {ns}_jobs ADD COLUMN expires_at REAL",
            f"ALTER TABLE {ns}_jobs ADD COLUMN unique_key TEXT",
            f"ALTER TABLE {ns}_jobs ADD COLUMN unique_until REAL",
            f"ALTER TABLE {ns}_jobs ADD COLUMN snoozes INTEGER NOT NULL DEFAULT 0",
        ],
        # 3 -> 4: the batch a job belongs to (its tables and triggers: sqlite_batches.py).
        3: [f"ALTER TABLE {ns}_jobs ADD COLUMN batch_id TEXT"],
        # 4 -> 5: the task's name, for search (its index: _lifecycle_indexes). Jobs stored
        # before have none: a search by task finds them only through the payload's text.
        4: [f"ALTER TABLE {ns}_jobs ADD COLUMN task TEXT"],
        # 5 -> 6: dependencies (sqlite_workflows).
        5: workflows.columns_upgrade(ns),
        # 6 -> 7: what plain jobs paid for workflows and listings. The batch trigger moves
        # from state to last_error, and the batch triggers test the state without IN lists
        # (sqlite_batches); waiting jobs join the listing indexes, whose WHERE is comparisons
        # now, not an IN list (_LISTED). Made again after this step, by batch_schema and
        # _listing_indexes.
        6: [
            f"DROP TRIGGER IF EXISTS {ns}_jobs_batch_moved",
            f"DROP TRIGGER IF EXISTS {ns}_jobs_batch_deleted",
            f"DROP INDEX IF EXISTS {ns}_jobs_waiting",
            f"DROP INDEX IF EXISTS {ns}_jobs_waiting_q",
            f"DROP INDEX IF EXISTS {ns}_jobs_state",
            f"DROP INDEX IF EXISTS {ns}_jobs_listed",
        ],
    }


def _holds(state: object, until: object, now: float) -> bool:
    """Whether a job with a unique key still holds it: waiting or running, within its
    unique_for."""
    return state in _LIVE_STATES and not (isinstance(until, float | int) and until <= now)


def _path_from_url(url: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    # sqlite:///jobs.db is relative, sqlite:////var/jobs.db absolute (SQLAlchemy's rule).
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ConfigurationError(
            "sqlite:// needs a file path, e.g. sqlite:///jobs.db; workers in other processes "
            "cannot see an in-memory database"
        )
    return path


def _record(row: Sequence[Any], *known: Any) -> JobRecord:
    """The store's one way from a row to a record: every statement that reads jobs returns
    JobRecord's fields in order, already cast (``_COLUMNS``); a claim returns the first ten
    (``_CLAIMED``) and ``known`` are the rest, which the claim just wrote."""
    return JobRecord(*row, *known)


#: States an expiry cancels: not started yet, waiting for other jobs included (its own
#: dependents are then cancelled by the triggers of sqlite_workflows.py, in the same step).
_EXPIRING = (*WAITING_STATES, "waiting")


def _rows(records: Sequence[JobRecord]) -> list[tuple[Any, ...]]:
    """The columns an enqueue writes, per job."""
    return [
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
        for r in records
    ]


#: SQLite's errors that mean the file cannot be used now, rather than a bug in a statement.
_UNREACHABLE = (
    "unable to open",
    "database is locked",
    "disk i/o error",
    "readonly database",
    "locking protocol",
)


def _unreachable(exc: BaseException) -> bool:
    # OSError: the database's directory cannot be made (a file in its place, no permission).
    return isinstance(exc, OSError) or any(text in str(exc).lower() for text in _UNREACHABLE)


class _Ack:
    """One complete() call waiting for the write lock, which a claim may write (``done``
    once its transaction committed)."""

    __slots__ = ("done", "now", "results", "worker")

    def __init__(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        self.results, self.worker, self.now = results, worker, now
        self.done = False


@translate_errors("SQLite", (sqlite3.OperationalError, OSError), _unreachable)
class SQLiteBackend(SQLiteBatches, Listings):
    """Jobs in one SQLite file, shared by any number of threads and processes."""

    def __init__(self, url: str, namespace: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", namespace):
            raise ConfigurationError(
                f"namespace {namespace!r} must be letters, digits and _ for the SQLite store"
            )
        self.url = url
        self.path = _path_from_url(url)
        self.ns = namespace
        self.t = f"{namespace}_jobs"
        self._promote = (
            f"UPDATE {self.t} SET state = 'pending' WHERE id IN (SELECT id FROM {self.t}"
            f" WHERE state IN {_LATER} AND run_at <= ? ORDER BY run_at LIMIT {PROMOTE_BATCH})"
        )
        # Queues with ready jobs and their counts, in the order served: the counts table's
        # key is (queue, state), so for every queue the rows come in order straight off it,
        # and the caller stops reading once the batch is full (drained queues cost a row).
        unpaused = f"NOT EXISTS (SELECT 1 FROM {namespace}_queues p WHERE p.name = c.queue AND p.paused = 1)"
        self._serve_default = (
            f"SELECT queue, n FROM {namespace}_counts c WHERE queue = 'default' AND state = 'pending'"
            f" AND n > 0 AND {unpaused}"
        )
        self._serve_every = (
            f"SELECT queue, n FROM {namespace}_counts c WHERE queue <> 'default' AND state = 'pending'"
            f" AND n > 0 AND {unpaused} AND instr(queue, char(31)) = 0 ORDER BY queue"
        )
        self._serve_given = (
            f"SELECT c.queue, c.n FROM json_each(?) g JOIN {namespace}_counts c ON c.queue = g.value"
            f" AND c.state = 'pending' WHERE c.n > 0 AND {unpaused} ORDER BY g.key"
        )
        self._claim = (
            f"UPDATE {self.t} SET state = 'active', attempts = attempts + 1, progress = NULL,"
            f" locked_by = ?, lease_until = ?, started_at = ?, finished_at = NULL"
            f" WHERE id IN (SELECT id FROM {self.t} WHERE queue = ? AND state = 'pending'"
            f" ORDER BY priority DESC, run_at, id LIMIT ?) RETURNING {_CLAIMED}"
        )
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._registered: set[str] = set()  # queues this process knows are in _queues
        # Once this process made a limited claim, its claims write the outcomes that wait for
        # the write lock (complete), and it takes its write transactions in turn with the
        # other such processes (_writers); before, nothing changes.
        self._claims_limited = False
        self._writers_fd: int | None = None
        self._writers_pid = -1
        self._acks: list[_Ack] = []  # complete() calls waiting for the write lock
        self._acks_lock = threading.Lock()
        # Jobs this process took ahead, by the run each follows: (bucket, job, claimed).
        self._follows: dict[str, tuple[str, str, float]] = {}
        self._settled: dict[str, float] = {}  # queue -> when this process last settled its rows (monotonic)
        # Whether complete() tries the statement for jobs in workflows first (see there).
        self._flow_first = False
        # Limit definitions by queue and name, and when they were read (monotonic).
        self._limits: dict[str, dict[str, Limit]] = {}
        self._limits_read = -1e9
        self._turns = itertools.count()  # which keys a claim starts at, when many have room (rooms)
        self._poll = BUSY_POLL  # seconds between two looks at data_version in wait()
        self._migrate()

    # -- connections ----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA cache_size=-32768")  # 32 MiB per connection
            # A checkpoint copies the WAL into the database and fsyncs both; at the default
            # 1,000 pages a stream of small commits pays for one every few hundred jobs.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA journal_size_limit=67108864")
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # Threads of one process (fetcher, acker, heartbeat) queue on this lock: SQLite's
        # busy handler would make them sleep in steps of milliseconds instead. Other
        # processes still meet at BEGIN IMMEDIATE.
        conn = self._conn()
        with self._write_lock, self._transaction(conn):
            yield conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One write transaction (the caller holds ``_write_lock``); in a process that claims
        limited jobs, taken in turn with the other such processes (``_writers``)."""
        queue = self._writers() if self._claims_limited else None
        if queue is not None:
            fcntl.flock(queue, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if queue is not None:
                fcntl.flock(queue, fcntl.LOCK_UN)

    def _writers(self) -> int | None:
        """This process's descriptor of the file ``<database>-writers``, whose lock (flock)
        the processes that claim limited jobs take around each write transaction: a queue
        in the kernel, which hands the lock to the next writer the moment it is let go.

        A limited worker writes several times as often as a plain one (it claims for its
        free threads only, a few jobs each time), so its writers meet the other processes'
        all the time, and SQLite's busy handler makes each one that finds the file locked
        sleep 1, then 2, then 5 ms, while a transaction holds it for about half a
        millisecond. None (SQLite's busy handler alone) where the file cannot be made.
        Processes that do not take it (plain workers, older versions) still meet at
        ``BEGIN IMMEDIATE``, which stays the lock that decides."""
        if fcntl is None:
            return None
        if self._writers_pid != os.getpid():  # (a forked child opens its own)
            try:
                self._writers_fd = os.open(self.path + "-writers", os.O_RDONLY | os.O_CREAT, 0o644)
            except OSError:
                self._writers_fd = None
            self._writers_pid = os.getpid()
        return self._writers_fd

    def _migrate(self) -> None:
        with self._write() as conn:
            for statement in _schema(self.ns):
                conn.execute(statement)
            row = conn.execute(f"SELECT value FROM {self.ns}_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    f"INSERT INTO {self.ns}_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                for statement in self._after_upgrades():
                    conn.execute(statement)
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self.path} has conveyor schema version {row[0]}, newer than this "
                    f"conveyor knows ({SCHEMA_VERSION}); upgrade conveyor"
                )
            upgrades = _upgrades(self.ns)
            for step in range(version, SCHEMA_VERSION):
                for statement in upgrades[step]:
                    conn.execute(statement)
            for statement in self._after_upgrades():
                conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(
                    f"UPDATE {self.ns}_meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    def _after_upgrades(self) -> list[str]:
        """What is made after the upgrades: on columns or definitions they bring."""
        ns = self.ns
        return _listing_indexes(ns) + _lifecycle_indexes(ns) + batch_schema(ns) + workflows.schema(ns)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        if self._writers_fd is not None and self._writers_pid == os.getpid():
            with suppress(OSError):
                os.close(self._writers_fd)
        self._writers_fd, self._writers_pid = None, -1

    def open_async(self) -> AsyncStore:
        from .sqlite_aio import AsyncSQLiteStore

        return AsyncSQLiteStore(self)

    # -- the hot path ---------------------------------------------------------------------
    def enqueue(
        self, records: Sequence[JobRecord], max_queue_length: int | None = None, *, slice_rows: int = 0
    ) -> None:
        """``slice_rows``: insert that many rows at a time, letting other threads of this
        process take the GIL between slices (the async client's thread does, so that its
        event loop never waits the GIL's switch interval, 5 ms, for a large batch); 0: all
        rows in one call."""
        if not records:
            return
        rows = _rows(records)
        queues = {r.queue for r in records}
        # A limited job's bucket is served through its queue, never listed as a queue itself
        # (a worker serving every queue would claim it past its limit).
        new_queues = queues - self._registered
        if new_queues:
            new_queues = {split(q)[0] for q in new_queues} - self._registered
        with self._write() as conn:
            if max_queue_length is not None:
                self._check_length(conn, records, queues, max_queue_length)
            self._insert(conn, rows, new_queues, slice_rows)
        self._registered |= new_queues

    def _insert(
        self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]], new_queues: set[str], slice_rows: int = 0
    ) -> None:
        """Insert jobs (``_rows``) in the caller's write transaction, registering ``new_queues``
        (``slice_rows``: see ``enqueue``)."""
        insert = (
            f"INSERT INTO {self.t} (id, queue, payload, priority, state, run_at,"
            " max_attempts, timeout, created_at, task) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        if len(rows) == 1:
            conn.execute(insert, rows[0])
        elif not slice_rows:
            conn.executemany(insert, rows)
        else:
            for start in range(0, len(rows), slice_rows):
                if start:
                    time.sleep(0)  # hands the GIL to a thread waiting for it
                conn.executemany(insert, rows[start : start + slice_rows])
        if new_queues:
            conn.executemany(
                f"INSERT OR IGNORE INTO {self.ns}_queues (name) VALUES (?)",
                [(q,) for q in new_queues],
            )

    def _check_length(
        self, conn: sqlite3.Connection, records: Sequence[JobRecord], queues: set[str], limit: int
    ) -> None:
        for queue in queues:
            adding = sum(1 for r in records if r.queue == queue)
            (waiting,) = conn.execute(
                f"SELECT coalesce(sum(n), 0) FROM {self.ns}_counts WHERE queue = ? AND state IN {_WAITING}",
                (queue,),
            ).fetchone()
            if waiting + adding > limit:
                raise QueueFull(
                    f"queue {queue!r} holds {waiting} waiting jobs; adding {adding} "
                    f"would pass its limit of {limit}"
                )

    def enqueue_after(
        self,
        records: Sequence[JobRecord],
        after: dict[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
        max_queue_length: int | None = None,
    ) -> None:
        if not records:
            return
        queues = {r.queue for r in records}
        new_queues = {split(q)[0] for q in queues} - self._registered
        # One write transaction: the dependencies' states are read and the edges written
        # under the lock every writer takes, so no dependency ends in between.
        with self._write() as conn:
            if max_queue_length is not None:
                self._check_length(conn, records, queues, max_queue_length)
            self._insert(conn, _rows(records), new_queues)
            expiring = [(r.expires_at, r.id) for r in records if r.expires_at is not None]
            if expiring:  # rare: after= with expires
                conn.executemany(f"UPDATE {self.t} SET expires_at = ? WHERE id = ?", expiring)
            workflows.link(conn, self.ns, records, after, now, pruned_before)
        self._registered |= new_queues

    def dependencies(self, job_id: str) -> list[str]:
        return workflows.dependencies(self._conn(), self.ns, job_id)

    def dependents(self, job_id: str, limit: int = 100) -> list[str]:
        return workflows.dependents(self._conn(), self.ns, job_id, limit)

    def enqueue_each(
        self, records: Sequence[JobRecord], now: float, max_queue_length: int | None = None
    ) -> list[str | None]:
        holders: list[str | None] = []
        queues = {r.queue for r in records}
        # In one write transaction, which every writer of the file takes in turn: the look
        # for a holder and the insert cannot interleave with another process's.
        with self._write() as conn:
            for r in records:
                if r.unique_key is not None:
                    row = conn.execute(
                        f"SELECT id, unique_until, state FROM {self.t} WHERE queue = ? AND unique_key = ?",
                        (r.queue, r.unique_key),
                    ).fetchone()
                    if row is not None and _holds(row[2], row[1], now):
                        holders.append(str(row[0]))
                        continue
                    if row is not None:
                        # It ended, or its unique_for is over (then it keeps running): it lets
                        # go of the key.
                        conn.execute(f"UPDATE {self.t} SET unique_key = NULL WHERE id = ?", (row[0],))
                if max_queue_length is not None:
                    self._check_length(conn, [r], {r.queue}, max_queue_length)
                conn.execute(
                    f"INSERT INTO {self.t} (id, queue, payload, priority, state, run_at, max_attempts,"
                    " timeout, created_at, expires_at, unique_key, unique_until, task)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        r.expires_at,
                        r.unique_key,
                        r.unique_until,
                        r.task,
                    ),
                )
                holders.append(None)
            conn.executemany(
                f"INSERT OR IGNORE INTO {self.ns}_queues (name) VALUES (?)",
                [(q,) for q in queues - self._registered],
            )
        self._registered |= queues
        return holders

    def fetch(
        self, queues: Sequence[str] | None, limit: int, worker: str, lease: float, now: float
    ) -> list[JobRecord]:
        return self._fetch(queues, limit, worker, lease, now)

    def fetch_ahead(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease: float,
        now: float,
        runs: Sequence[tuple[str, str, int]],
    ) -> tuple[list[JobRecord], dict[str, str]]:
        after: dict[str, str] = {}
        return self._fetch(queues, limit, worker, lease, now, runs, after), after

    def _fetch(
        self,
        queues: Sequence[str] | None,
        limit: int,
        worker: str,
        lease: float,
        now: float,
        runs: Sequence[tuple[str, str, int]] | None = None,
        after: dict[str, str] | None = None,
    ) -> list[JobRecord]:
        if (limit <= 0 and not runs) or (queues is not None and not queues):
            return []
        absorbed: list[_Ack] = []
        conn = self._conn()
        with self._write_lock:
            with self._transaction(conn):
                # Scheduled and retry jobs that came due join the ready ones: a range read at the
                # start of the due index, nothing when none is due, however many wait for later.
                conn.execute(self._promote, (now,))
                until = now + lease
                limits = self._limits_now(conn)
                limited = bool(limits) and (queues is None or not limits.keys().isdisjoint(queues))
                if limited:
                    self._claims_limited = True
                if self._claims_limited:
                    # This process's outcomes waiting to be written go first: their slots are
                    # free for this claim, and their transaction is spared (see complete).
                    self._absorb_acks(conn, absorbed)
                if limited:
                    # A queue with limits is served even when only its buckets hold ready jobs
                    # (the counts below know its own jobs only); the limited claim decides.
                    serve = self._unpaused(conn, queues)
                    ids = self._pick_limited(conn, serve, limits, limit, now) if limit > 0 else []
                    pairs: dict[str, tuple[str, int]] = {}
                    if runs and after is not None:
                        pairs = self._pick_ahead(conn, serve, limits, runs, worker, ids)
                    # One statement claims both (a job ahead is claimed like any other).
                    claimed = [*ids, *pairs]
                    rows: list[Any] = []
                    if claimed:
                        marks, padded = _in_list(claimed)
                        rows = conn.execute(
                            f"UPDATE {self.t} SET state = 'active', attempts = attempts + 1, progress = NULL,"
                            " locked_by = ?, lease_until = ?, started_at = ?, finished_at = NULL"
                            f" WHERE id IN ({marks}) RETURNING {_CLAIMED}",
                            [worker, until, now, *padded],
                        ).fetchall()
                    if pairs and after is not None:
                        more = [row for row in rows if row[0] in pairs]
                        if more:
                            conn.executemany(
                                f"INSERT OR REPLACE INTO {self.ns}_ahead (bucket, id, worker, after, attempt,"
                                " claimed) VALUES (?, ?, ?, ?, ?, ?)",
                                [(row[1], row[0], worker, *pairs[row[0]], now) for row in more],
                            )
                            after.update((row[0], pairs[row[0]][0]) for row in more)
                            if len(self._follows) > FOLLOWS_MAX:  # (runs lost: a pass settles theirs)
                                self._follows.clear()
                            for row in more:
                                self._follows[pairs[row[0]][0]] = (row[1], row[0], now)
                    self._absorb_acks(conn, absorbed)  # (those that came meanwhile)
                else:
                    # Which queues to claim from: those in order, unpaused, with ready jobs, until
                    # their counts (kept by the triggers in this very transaction) fill the batch.
                    # A worker of 200 queues reads neither the drained ones nor their names.
                    if queues is None:
                        cursors = [conn.execute(self._serve_default), conn.execute(self._serve_every)]
                    else:
                        cursors = [conn.execute(self._serve_given, (orjson.dumps(list(queues)),))]
                    serve = []
                    counted = 0
                    for queue, count in chain(*cursors):
                        serve.append(queue)
                        counted += count
                        if counted >= limit:
                            break
                    for cursor in cursors:  # read no further
                        cursor.close()
                    rows = []
                    # Per queue in order, one claim: a walk of the ready index that stops at the
                    # LIMIT. (One statement over every queue, a UNION of per-queue walks, merged them
                    # all on each claim: 4 ms with 200 queues.) A pending job is due by definition
                    # (enqueue and promotion decide that), so the walk never skips rows.
                    for queue in serve:
                        rows += conn.execute(
                            self._claim, (worker, until, now, queue, limit - len(rows))
                        ).fetchall()
                        if len(rows) >= limit:
                            break
            for ack in absorbed:  # (under the lock: their callers look once they hold it)
                ack.done = True
        records = [_record(row, now, None, None, None, None, worker, until, None, None) for row in rows]
        if limited:  # a bucket's jobs rank with their queue's
            return self._ranked(records, serve)
        if len(serve) > 1:
            rank = {q: i for i, q in enumerate(serve)}
            records.sort(key=lambda r: (rank[r.queue], -r.priority, r.run_at, r.id))
        else:
            records.sort(key=lambda r: (-r.priority, r.run_at, r.id))
        return records

    # -- limits ---------------------------------------------------------------------------
    @staticmethod
    def _ranked(records: list[JobRecord], serve: Sequence[str]) -> list[JobRecord]:
        rank = {q: i for i, q in enumerate(serve)}
        records.sort(key=lambda r: (rank.get(split(r.queue)[0], 0), -r.priority, r.run_at, r.id))
        return records

    def _pick_ahead(
        self,
        conn: sqlite3.Connection,
        serve: Sequence[str],
        limits: dict[str, dict[str, Limit]],
        runs: Sequence[tuple[str, str, int]],
        worker: str,
        taken: Sequence[str],
    ) -> dict[str, tuple[str, int]]:
        """Jobs to take ahead, each with the run (id, attempt) in whose slot it will start:
        per bucket, its best waiting jobs, one per run of ``runs`` that ``worker`` still
        holds there, for buckets whose limits are concurrency only; never one of ``taken``
        (picked to start now by the same claim, still pending)."""
        served = set(serve)
        by_bucket: dict[str, list[tuple[str, int]]] = {}
        for bucket, run, attempt in runs:
            if ahead_allowed(bucket, served, limits):
                by_bucket.setdefault(bucket, []).append((run, attempt))
        if not by_bucket:
            return {}
        marks, ids = _in_list([run for held in by_bucket.values() for run, _ in held])
        live = {
            (run, attempt)
            for run, attempt in conn.execute(
                f"SELECT id, attempts FROM {self.t} WHERE id IN ({marks})"
                " AND state = 'active' AND locked_by = ?",
                [*ids, worker],
            )
        }
        for bucket in list(by_bucket):
            by_bucket[bucket] = [pair for pair in by_bucket[bucket] if pair in live]
            if not by_bucket[bucket]:
                del by_bucket[bucket]
        if not by_bucket:
            return {}
        part = (
            f"SELECT * FROM (SELECT id, queue FROM {self.t}"
            " WHERE queue = ? AND state = 'pending' ORDER BY priority DESC, run_at, id LIMIT ?)"
        )
        skip = set(taken)
        rows = conn.execute(
            " UNION ALL ".join([part] * len(by_bucket)),
            [x for bucket, held in by_bucket.items() for x in (bucket, len(held) + len(skip))],
        ).fetchall()
        pairs: dict[str, tuple[str, int]] = {}
        for job_id, bucket in rows:
            if job_id not in skip and by_bucket[bucket]:
                pairs[job_id] = by_bucket[bucket].pop(0)
        return pairs

    def _settle_ahead(self, conn: sqlite3.Connection, low: str, high: str, now: float) -> dict[str, int]:
        """Per bucket between ``low`` and ``high``, the jobs taken ahead that hold no slot
        yet: still active, held by that worker from that claim (its started_at), and their
        run still active at its attempt. Any other row is settled: its job holds a slot like
        any started one from then on; it started when its run ended (on the same worker),
        which becomes its started_at; and the row goes."""
        waiting: dict[str, int] = {}
        settled: list[tuple[str, str]] = []
        started: list[tuple[float, str, float]] = []
        for bucket, job_id, claimed, state, mine, run_ok, run_end in conn.execute(
            "SELECT a.bucket, a.id, a.claimed, CASE WHEN y.started_at = a.claimed THEN y.state END,"
            " y.locked_by = a.worker,"
            " x.state = 'active' AND x.locked_by = a.worker AND x.attempts = a.attempt, x.finished_at"
            f" FROM {self.ns}_ahead a LEFT JOIN {self.t} y ON y.id = a.id"
            f" LEFT JOIN {self.t} x ON x.id = a.after"
            " WHERE a.bucket > ? AND a.bucket < ?",
            (low, high),
        ):
            if state == "active" and mine and run_ok:
                waiting[bucket] = waiting.get(bucket, 0) + 1
                continue
            settled.append((bucket, job_id))
            if state is not None and state != "pending":
                started.append((run_end if run_end is not None else now, job_id, claimed))
        if settled:
            conn.executemany(f"UPDATE {self.t} SET started_at = ? WHERE id = ? AND started_at = ?", started)
            conn.executemany(f"DELETE FROM {self.ns}_ahead WHERE bucket = ? AND id = ?", settled)
        return waiting

    def _waiting_ahead(self, conn: sqlite3.Connection, low: str, high: str) -> dict[str, int]:
        """What ``_settle_ahead`` returns, read alone: counted in one statement, which
        settles nothing."""
        return dict(
            conn.execute(
                f"SELECT a.bucket, count(*) FROM {self.ns}_ahead a"
                f" JOIN {self.t} y ON y.id = a.id JOIN {self.t} x ON x.id = a.after"
                " WHERE a.bucket > ? AND a.bucket < ? AND y.state = 'active' AND y.started_at = a.claimed"
                " AND y.locked_by = a.worker AND x.state = 'active' AND x.locked_by = a.worker"
                " AND x.attempts = a.attempt GROUP BY a.bucket",
                (low, high),
            ).fetchall()
        )

    def _settle_mine(self, conn: sqlite3.Connection, ended: Sequence[str], now: float) -> None:
        """Settle the rows of jobs this process took ahead of the runs ``ended`` (whose
        outcomes it writes now): like ``_settle_ahead``, the job starts in its run's slot
        now, unless it is no longer as claimed."""
        rows = [row for run in ended if (row := self._follows.pop(run, None)) is not None]
        if rows:
            conn.executemany(
                f"UPDATE {self.t} SET started_at = ? WHERE id = ? AND started_at = ?",
                [(now, job_id, claimed) for _, job_id, claimed in rows],
            )
            conn.executemany(
                f"DELETE FROM {self.ns}_ahead WHERE bucket = ? AND id = ?",
                [(bucket, job_id) for bucket, job_id, _ in rows],
            )

    def _unpaused(self, conn: sqlite3.Connection, queues: Sequence[str] | None) -> list[str]:
        """The queues a limited claim serves, in order, without the paused ones; every
        registered queue (buckets are never registered), ``default`` first, for None."""
        paused = {name for (name,) in conn.execute(f"SELECT name FROM {self.ns}_queues WHERE paused = 1")}
        if queues is None:
            known = [name for (name,) in conn.execute(f"SELECT name FROM {self.ns}_queues")]
            queues = sorted(known, key=lambda q: (q != "default", q))
        return [q for q in queues if q not in paused]

    def _limits_now(self, conn: sqlite3.Connection) -> dict[str, dict[str, Limit]]:
        """The stored limit definitions by queue, read again at most every LIMITS_TTL."""
        if time.monotonic() - self._limits_read > LIMITS_TTL:
            found: dict[str, dict[str, Limit]] = {}
            for queue, name, text in conn.execute(f"SELECT queue, name, definition FROM {self.ns}_limits"):
                definition = Limit.decode(text)
                if definition is not None:
                    found.setdefault(queue, {})[name] = definition
            self._limits, self._limits_read = found, time.monotonic()
        return self._limits

    def _pick_limited(
        self,
        conn: sqlite3.Connection,
        serve: Sequence[str],
        limits: dict[str, dict[str, Limit]],
        want: int,
        now: float,
    ) -> list[str]:
        """Ids to claim from ``serve`` in order, each limited queue's buckets taking only
        what their limits allow. Runs inside the claim's write transaction, which is the
        lock that makes the count and the claim one step."""
        picked: list[str] = []
        for queue in serve:
            left = want - len(picked)
            if left <= 0:
                break
            if queue not in limits:
                picked += [
                    i
                    for (i,) in conn.execute(
                        f"SELECT id FROM {self.t} WHERE queue = ? AND state = 'pending'"
                        " ORDER BY priority DESC, run_at, id LIMIT ?",
                        (queue, left),
                    )
                ]
                continue
            picked += self._pick_buckets(conn, queue, limits[queue], left, now)
        return picked

    def _pick_buckets(
        self, conn: sqlite3.Connection, queue: str, limits: dict[str, Limit], want: int, now: float
    ) -> list[str]:
        low, high = bucket_range(queue)
        # Running and ready jobs per bucket: a range of the counts table, kept exact by the
        # triggers in every transaction that moves a job.
        active: dict[str, int] = {}
        ready: dict[str, int] = {}
        for name, state, n in conn.execute(
            f"SELECT queue, state, n FROM {self.ns}_counts WHERE ((queue > ? AND queue < ?) OR queue = ?)"
            " AND state IN ('active', 'pending') AND n > 0",
            (low, high, queue),
        ):
            (active if state == "active" else ready)[name] = n
        # Jobs taken ahead are active but hold no slot while their run is active. The rows of
        # runs that ended are settled by the acknowledgements of the process that took them
        # (_settle_mine); those of other ends (a lost lease, a crash) by a pass over them all
        # at most every AHEAD_SETTLE seconds: between passes, such a row is read and not
        # counted.
        if time.monotonic() - self._settled.get(queue, -1e9) > AHEAD_SETTLE:
            waiting = self._settle_ahead(conn, low, high, now)
            self._settled[queue] = time.monotonic()
        else:
            waiting = self._waiting_ahead(conn, low, high)
        for name, n in waiting.items():
            active[name] = active.get(name, 0) - n
        tokens = self._tokens(conn, rated(queue, limits, ready))
        cap, room = rooms(queue, limits, active, ready, tokens, want, now, next(self._turns))
        if not room:
            return []
        part = (
            f"SELECT * FROM (SELECT id, queue, priority, run_at FROM {self.t}"
            " WHERE queue = ? AND state = 'pending' ORDER BY priority DESC, run_at, id LIMIT ?)"
        )
        params: list[Any] = [x for pair in room.items() for x in pair]
        rows = conn.execute(
            " UNION ALL ".join([part] * len(room)) + " ORDER BY priority DESC, run_at, id LIMIT ?",
            [*params, cap],
        ).fetchall()
        started: dict[str, int] = {}
        for _, name, _, _ in rows:
            started[name] = started.get(name, 0) + 1
        if changed := spent(queue, limits, tokens, started, now):
            conn.executemany(
                f"INSERT INTO {self.ns}_tokens (bucket, tokens, stamp) VALUES (?, ?, ?)"
                " ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens, stamp = excluded.stamp",
                changed,
            )
        return [row[0] for row in rows]

    def _tokens(self, conn: sqlite3.Connection, buckets: Sequence[str]) -> dict[str, Tokens]:
        found: dict[str, Tokens] = {}
        for marks, chunk in in_chunks(buckets):
            for name, tokens, stamp in conn.execute(
                f"SELECT bucket, tokens, stamp FROM {self.ns}_tokens WHERE bucket IN ({marks})", chunk
            ):
                found[name] = Tokens(float(tokens), float(stamp))
        return found

    def _queue_filter(self, queue: str, params: list[Any]) -> str:
        """The jobs of ``queue`` in an admin listing or action: its buckets' too, when it
        has limits (a range of the same index; plain queues keep their equality)."""
        if queue in self._limits_now(self._conn()):
            params += [queue, *bucket_range(queue)]
            return " AND (queue = ? OR (queue > ? AND queue < ?))"
        params.append(queue)
        return " AND queue = ?"

    def set_limit(self, queue: str, name: str, limit: Limit | None) -> None:
        with self._write() as conn:
            if limit is None:
                conn.execute(f"DELETE FROM {self.ns}_limits WHERE queue = ? AND name = ?", (queue, name))
            else:
                conn.execute(
                    f"INSERT INTO {self.ns}_limits (queue, name, definition) VALUES (?, ?, ?)"
                    " ON CONFLICT (queue, name) DO UPDATE SET definition = excluded.definition",
                    (queue, name, limit.encode()),
                )
        self._limits_read = -1e9

    def limits(self) -> dict[tuple[str, str], Limit]:
        found: dict[tuple[str, str], Limit] = {}
        for queue, name, text in self._conn().execute(
            f"SELECT queue, name, definition FROM {self.ns}_limits"
        ):
            definition = Limit.decode(text)
            if definition is not None:
                found[(queue, name)] = definition
        return found

    def complete(self, results: Sequence[tuple[str, bytes | None]], worker: str, now: float) -> None:
        if not results:
            return
        if not self._claims_limited:
            with self._write() as conn:
                self._complete_in(conn, results, worker, now)
            return
        # A process that claims limited jobs: its fetcher's claim, if it holds the write lock
        # now or takes it first, writes these outcomes in its own transaction (_absorb_acks),
        # which frees their slots for that very claim and spares a transaction; this call
        # then only waits for that commit.
        ack = _Ack(results, worker, now)
        with self._acks_lock:
            self._acks.append(ack)
        conn = self._conn()
        with self._write_lock:
            if ack.done:
                return
            with self._acks_lock:
                waiting, self._acks = self._acks, []
            if not any(other is ack for other in waiting):
                waiting.append(ack)  # taken by a claim whose transaction failed: written here
            with self._transaction(conn):
                for each in waiting:
                    self._complete_in(conn, each.results, each.worker, each.now)
            for each in waiting:
                each.done = True

    def _absorb_acks(self, conn: sqlite3.Connection, into: list[_Ack]) -> None:
        """Write the outcomes that complete() calls of this process wait to write, in the
        caller's write transaction; ``into`` collects them, to be marked done once it
        commits (until then their callers, waiting for the write lock, know nothing)."""
        with self._acks_lock:
            waiting, self._acks = self._acks, []
        for ack in waiting:
            self._complete_in(conn, ack.results, ack.worker, ack.now)
        into += waiting

    def _complete_in(
        self, conn: sqlite3.Connection, results: Sequence[tuple[str, bytes | None]], worker: str, now: float
    ) -> None:
        # Two statements, which split the jobs between them: one for jobs outside workflows
        # with no error to clear (nearly all), which leaves last_error out so that no
        # workflow trigger runs for them (see sqlite_batches); one for the others (a job of a
        # batch, one others wait for, one whose earlier run failed), which clears it. In the
        # same transaction, so no job ends in between; the kind the last acknowledgement
        # found more of goes first, and the other runs only when the first took fewer jobs
        # than it was given (a batch's drain runs one statement, not a useless one first).
        outside = "last_error IS NULL AND batch_id IS NULL AND dependents = 0"
        done = (
            "SET state = 'completed', finished_at = ?, locked_by = NULL, lease_until = NULL,"
            " traceback = NULL, result = {result}"
        )
        kinds = [(done, f" AND {outside}"), (done + ", last_error = NULL", f" AND NOT ({outside})")]
        if self._flow_first:
            kinds.reverse()
        # Most tasks return nothing: those take one statement per chunk, which costs half
        # of one statement per job.
        empty = [job_id for job_id, result in results if result is None]
        valued = [(now, result, job_id, worker) for job_id, result in results if result is not None]
        # rowcount, not total_changes: the latter also counts the rows the triggers touch.
        taken = [0, 0]
        for i in range(0, len(empty), IN_CHUNK):
            chunk = empty[i : i + IN_CHUNK]
            marks, padded = _in_list(chunk)
            where = f" WHERE id IN ({marks}) AND locked_by = ? AND state = 'active'"
            for n, (sets, which) in enumerate(kinds):
                statement = f"UPDATE {self.t} {sets.format(result='NULL')}{where}{which}"
                got = conn.execute(statement, [now, *padded, worker]).rowcount
                taken[n] += got
                if got >= len(chunk):
                    break
        if valued:
            where = " WHERE id = ? AND locked_by = ? AND state = 'active'"
            for n, (sets, which) in enumerate(kinds):
                statement = f"UPDATE {self.t} {sets.format(result='?')}{where}{which}"
                got = conn.executemany(statement, valued).rowcount
                taken[n] += got
                if got >= len(valued):
                    break
        self._count(conn, now, processed=sum(taken), failed=0)
        if self._follows:
            self._settle_mine(conn, [job_id for job_id, _ in results], now)
        if taken[0] < taken[1]:
            self._flow_first = not self._flow_first

    def fail(self, failures: Sequence[Failure], worker: str, now: float) -> None:
        if not failures:
            return
        snoozed = [f for f in failures if f.snoozed]
        if snoozed:
            failures = [f for f in failures if not f.snoozed]
        with self._write() as conn:
            if snoozed:
                # Back to waiting for a time; the run does not count as an attempt.
                woken = conn.executemany(
                    f"UPDATE {self.t} SET state = 'scheduled', run_at = ?, attempts = max(attempts - 1, 0),"
                    " snoozes = snoozes + 1, locked_by = NULL, lease_until = NULL, progress = NULL"
                    " WHERE id = ? AND locked_by = ? AND state = 'active'",
                    [(f.retry_at, f.id, worker) for f in snoozed],
                ).rowcount
                self._count(conn, now, processed=woken, failed=0)
            changed = conn.executemany(
                f"UPDATE {self.t} SET state = ?, run_at = coalesce(?, run_at), last_error = ?,"
                " traceback = ?, finished_at = ?, locked_by = NULL, lease_until = NULL"
                " WHERE id = ? AND locked_by = ? AND state = 'active'",
                [
                    (
                        CANCELLED if f.cancelled else DEAD if f.retry_at is None else RETRY,
                        f.retry_at,
                        f.error,
                        f.traceback,
                        now,
                        f.id,
                        worker,
                    )
                    for f in failures
                ],
            ).rowcount
            self._count(conn, now, processed=changed, failed=changed)
            if self._follows:
                self._settle_mine(conn, [f.id for f in failures], now)
                if snoozed:
                    self._settle_mine(conn, [f.id for f in snoozed], now)
            workflows.cascade(conn, self.ns, now)

    def _count(self, conn: sqlite3.Connection, now: float, processed: int, failed: int) -> None:
        if processed or failed:
            conn.execute(
                f"INSERT INTO {self.ns}_counters (minute, processed, failed) VALUES (?, ?, ?)"
                " ON CONFLICT (minute) DO UPDATE SET processed = processed + excluded.processed,"
                " failed = failed + excluded.failed",
                (int(now // 60) * 60, processed, failed),
            )

    def release(self, ids: Sequence[str], worker: str) -> None:
        if not ids:
            return
        with self._write() as conn:
            conn.executemany(
                f"UPDATE {self.t} SET state = 'pending', attempts = max(attempts - 1, 0),"
                " locked_by = NULL, lease_until = NULL, started_at = NULL"
                " WHERE id = ? AND locked_by = ? AND state = 'active'",
                [(job_id, worker) for job_id in ids],
            )

    def heartbeat(self, info: WorkerInfo, lease: float, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                f"UPDATE {self.t} SET lease_until = ? WHERE locked_by = ? AND state = 'active'",
                (now + lease, info.id),
            )
            if not info.alive:
                conn.execute(f"DELETE FROM {self.ns}_workers WHERE id = ?", (info.id,))
                return
            conn.execute(
                f"INSERT OR REPLACE INTO {self.ns}_workers (id, host, pid, queues, concurrency,"
                " started_at, last_seen, running) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.host,
                    info.pid,
                    orjson.dumps(info.queues).decode(),
                    info.concurrency,
                    info.started_at,
                    now,
                    orjson.dumps(info.running).decode(),
                ),
            )

    def recover(self, now: float, completed_before: float) -> int:
        with self._write() as conn:
            recovered = conn.execute(
                f"UPDATE {self.t} SET state = CASE WHEN cancel IS NOT NULL THEN 'cancelled'"
                " WHEN attempts >= max_attempts THEN 'dead' ELSE 'retry' END,"
                " run_at = ?, finished_at = ?, locked_by = NULL, lease_until = NULL,"
                " last_error = coalesce(cancel, ?), traceback = NULL"
                " WHERE state = 'active' AND lease_until < ?",
                (now, now, LOST, now),
            ).rowcount
            if recovered:
                self._count(conn, now, processed=recovered, failed=recovered)
            # SQLite sorts text and blobs after every number, so one comparison finds both a
            # run_at too far ahead and one that is not a number: a range at the end of the due
            # index. (A pending job is claimed whatever its run_at says, and then runs.)
            conn.execute(
                f"UPDATE {self.t} SET state = 'dead', finished_at = ?, last_error = ?"
                f" WHERE state IN {_LATER} AND run_at > ?",
                (now, BAD_RUN_AT, now + FAR_FUTURE),
            )
            conn.execute(f"DELETE FROM {self.ns}_workers WHERE last_seen < ?", (now - WORKER_EXPIRY,))
            conn.execute(f"DELETE FROM {self.ns}_counters WHERE minute < ?", (now - 86400,))
            # Buckets come and go with their keys: their empty count rows and their token
            # buckets (full again after an hour at most) need not be kept.
            conn.execute(f"DELETE FROM {self.ns}_counts WHERE n = 0")
            conn.execute(f"DELETE FROM {self.ns}_tokens WHERE stamp < ?", (now - 3600,))
            # Jobs taken ahead whose runs ended, in queues no claim has looked at since.
            self._settle_ahead(conn, "", "\U0010ffff", now)
            workflows.cascade(conn, self.ns, now)
            prune_batches(conn, self.ns, completed_before)
        prune = (
            f"DELETE FROM {self.t} WHERE id IN (SELECT id FROM {self.t} INDEXED BY {self.ns}_jobs_finished"
            " WHERE state = 'completed' AND finished_at < ? ORDER BY finished_at LIMIT ?)"
        )

        # Completed jobs past result_ttl: batches, each a write transaction of its own, so a
        # worker's claim waits for one batch at most (prune.py).
        def batch(limit: int) -> int:
            with self._write() as conn:
                return conn.execute(prune, (completed_before, limit)).rowcount

        prune_completed(batch)
        return recovered

    def sweep(self, now: float, dead_before: float | None, dead_max: int | None, limit: int) -> int:
        # Three short write transactions, not one: a worker waits for at most one of them.
        with self._write() as conn:
            # The expired, whatever their state: the waiting ones end cancelled, and every
            # one leaves the index (a job that ran before its expiry keeps no entry).
            due = conn.execute(
                f"SELECT id, state FROM {self.t} WHERE expires_at IS NOT NULL AND expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
            changed = conn.executemany(
                f"UPDATE {self.t} SET state = 'cancelled', finished_at = ?, last_error = ?, expires_at = NULL"
                " WHERE id = ?",
                [(now, EXPIRED, job_id) for job_id, state in due if state in _EXPIRING],
            ).rowcount
            conn.executemany(
                f"UPDATE {self.t} SET expires_at = NULL WHERE id = ?",
                [(job_id,) for job_id, state in due if state not in _EXPIRING],
            )
            workflows.cascade(conn, self.ns, now)
        oldest_first = (
            f"DELETE FROM {self.t} WHERE id IN (SELECT id FROM {self.t} INDEXED BY {self.ns}_jobs_ended"
            f" WHERE state IN {_ENDED} {{before}} ORDER BY finished_at LIMIT ?)"
        )
        if dead_before is not None:
            with self._write() as conn:
                changed += conn.execute(
                    oldest_first.format(before="AND finished_at < ?"), (dead_before, limit)
                ).rowcount
        if dead_max is not None:
            with self._write() as conn:
                (kept,) = conn.execute(
                    f"SELECT coalesce(sum(n), 0) FROM {self.ns}_counts WHERE state IN {_ENDED}"
                ).fetchone()
                if kept > dead_max:
                    changed += conn.execute(
                        oldest_first.format(before=""), (min(limit, kept - dead_max),)
                    ).rowcount
        return changed

    def wait(self, queues: Sequence[str] | None, timeout: float) -> None:
        # data_version changes when another connection commits: a cheap read of shared
        # memory. It is read every 2 ms while commits come (a job enqueued into a worker that
        # was busy a moment ago starts within ~2 ms), and less often the longer none comes,
        # up to every IDLE_POLL: polling every 2 ms cost an idle worker 2-2.5% of a core, at
        # 10 ms it costs ~1%, for at most 10 ms more before a long-idle worker sees a job.
        conn = self._conn()
        start = conn.execute("PRAGMA data_version").fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(self._poll, left))
            if conn.execute("PRAGMA data_version").fetchone()[0] != start:
                self._poll = BUSY_POLL
                return
            self._poll = min(self._poll * 1.25, IDLE_POLL)

    # -- periodic jobs ----------------------------------------------------------------------
    def enqueue_ticks(self, ticks: Sequence[Tick], now: float) -> list[bool]:
        if not ticks:
            return []
        p = f"{self.ns}_periodic"
        state = "queue = ?, last_at = ?, next_at = ?, job_id = ?, enqueued_at = ?"
        # Inside the write lock (BEGIN IMMEDIATE), so the comparison with the recorded tick
        # and the job's insert are one step for every process on the file.
        offer = (
            f"INSERT INTO {p} (name, queue, last_at, next_at, job_id, enqueued_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " queue = excluded.queue, last_at = excluded.last_at, next_at = excluded.next_at,"
            " job_id = excluded.job_id, enqueued_at = excluded.enqueued_at"
            " WHERE last_at < excluded.last_at"
        )
        catch_up = f"UPDATE {p} SET {state} WHERE name = ? AND last_at < ?"
        won: list[bool] = []
        stored: list[JobRecord] = []
        with self._write() as conn:
            for tick in ticks:
                r = tick.record
                if tick.catch_up:
                    changed = conn.execute(
                        catch_up, (r.queue, tick.at, tick.next_at, r.id, now, tick.name, tick.at)
                    ).rowcount
                else:
                    changed = conn.execute(
                        offer, (tick.name, r.queue, tick.at, tick.next_at, r.id, now)
                    ).rowcount
                won.append(changed > 0)
                if changed:
                    stored.append(r)
            new_queues = {r.queue for r in stored} - self._registered
            if stored:
                self._insert(conn, _rows(stored), new_queues)
        self._registered |= new_queues
        return won

    def schedules(self) -> list[ScheduleState]:
        return [
            ScheduleState(*row)
            for row in self._conn().execute(
                f"SELECT name, queue, last_at, next_at, job_id, enqueued_at FROM {self.ns}_periodic"
                " ORDER BY name"
            )
        ]

    def forget_schedules(self, keep: Sequence[str], abandoned_before: float) -> int:
        with self._write() as conn:
            kept = set(keep)
            names = [
                name
                for (name,) in conn.execute(
                    f"SELECT name FROM {self.ns}_periodic WHERE next_at < ?", (abandoned_before,)
                )
                if name not in kept
            ]
            for name in names:
                conn.execute(f"DELETE FROM {self.ns}_periodic WHERE name = ?", (name,))
        return len(names)

    # -- admin ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM {self.t} WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    @staticmethod
    def _state_filter(state: str | None, now: float) -> tuple[str, list[Any]]:
        # The state is written into the statement, not bound: SQLite uses a partial index
        # only when the query's WHERE implies the index's at prepare time.
        if state is None:
            return "1", []
        if state not in STATES:
            return "0", []
        if state == PENDING:
            return f"(state = 'pending' OR (state IN {_LATER} AND run_at <= ?))", [now]
        if state in (SCHEDULED, RETRY):
            return f"state = '{state}' AND run_at > ?", [now]
        return f"state = '{state}'", []

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
        # Each state is read through its own index, named (INDEXED BY) so that the plan does
        # not depend on what ANALYZE last saw, from the cursor on: a keyset, never an OFFSET.
        # The state is written into the statement, not bound: SQLite uses a partial index
        # only when the query's WHERE implies the index's at prepare time.
        if task is not None:
            return self._task_page(state, queue, limit, after, now, needles, task)
        select, picked = _COLUMNS, list[Any](needles)
        searching = bool(needles)
        if searching:
            # A search reads only the sort key and whether the payload holds every text;
            # the jobs that do are read whole afterwards (few: a page).
            select = _SEARCHED.format(found=" AND ".join("instr(payload, ?) > 0" for _ in needles))
        if state == PENDING:
            return self._pending_page(queue, limit, after, now, select, picked, searching)
        conn = self._conn()
        where, params = f"state = '{state}'", picked
        if queue is not None:
            where += self._queue_filter(queue, params)
        if state == COMPLETED:
            if after:
                at, last = cursor_parts(after, state, 2)
                where += " AND (finished_at, id) < (?, ?)"
                params += [cursor_float(at, after), last]
            rows = conn.execute(
                f"SELECT {select} FROM {self.t} INDEXED BY {self.ns}_jobs_finished WHERE {where}"
                " ORDER BY finished_at DESC, id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            return self._found(rows, searching, lambda row: make_cursor(state, repr(row[11]), row[0]))
        if state == ACTIVE:
            index = "active"  # a few rows per worker: read whole and sorted
        elif state in _LISTED_STATES:
            # SQLite proves a partial index usable only from terms written the same way.
            index = "state" if queue is not None else "listed"
            where += f" AND {_LISTED}"
            if state in (SCHEDULED, RETRY):
                where += " AND run_at > ?"
                params.append(now)
        else:
            return []
        if after:
            (last,) = cursor_parts(after, state, 1)
            where += " AND id < ?"
            params.append(last)
        rows = conn.execute(
            f"SELECT {select} FROM {self.t} INDEXED BY {self.ns}_jobs_{index} WHERE {where}"
            " ORDER BY id DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return self._found(rows, searching, lambda row: make_cursor(state, row[0]))

    def _task_page(
        self,
        state: str,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        needles: Sequence[bytes],
        task: str,
    ) -> list[tuple[str, JobRecord | None]]:
        """A task's jobs of a state, newest id first, from the task index: only that task's
        jobs are read. Their state, queue and the texts are tested on each job read (counted
        by the search as read), never used to pass over jobs uncounted."""
        held, picked = self._state_filter(state, now)
        tests = ["instr(payload, ?) > 0" for _ in needles] + [held]
        picked = [*needles, *picked]
        if queue is not None:
            tests.append(self._queue_filter(queue, picked).removeprefix(" AND "))
        where = "task = ? AND task IS NOT NULL"
        params: list[Any] = [*picked, task]
        if after:
            (last,) = cursor_parts(after, state, 1)
            where += " AND id < ?"
            params.append(last)
        select = _SEARCHED.format(found=" AND ".join(tests))
        rows = (
            self._conn()
            .execute(
                f"SELECT {select} FROM {self.t} INDEXED BY {self.ns}_jobs_task WHERE {where}"
                " ORDER BY id DESC LIMIT ?",
                [*params, limit],
            )
            .fetchall()
        )
        return self._found(rows, True, lambda row: make_cursor(state, row[0]))

    def _found(
        self, rows: list[Any], search: bool, cursor: Callable[[Any], str]
    ) -> list[tuple[str, JobRecord | None]]:
        """Each row's cursor and record; for a search, the record of a row that matched
        (read whole here) or None."""
        if not search:
            return [(cursor(row), _record(row)) for row in rows]
        hits = [row[0] for row in rows if row[-1]]
        whole: dict[str, JobRecord] = {}
        for marks, chunk in in_chunks(hits):
            for full in self._conn().execute(f"SELECT {_COLUMNS} FROM {self.t} WHERE id IN ({marks})", chunk):
                whole[full[0]] = _record(full)
        # A cursor only where a search may stop (a match, or the end of what was read).
        last = len(rows) - 1
        return [
            (cursor(row), whole.get(row[0])) if row[-1] else (cursor(row) if i == last else "", None)
            for i, row in enumerate(rows)
        ]

    def _listed_names(self, conn: sqlite3.Connection, queue: str | None) -> list[str]:
        """The queue names a pending listing reads in the ready index: ``queue`` or every
        registered queue, and the limit buckets of those with limits (never registered;
        found in the counts, a few rows)."""
        if queue is not None:
            names = [queue]
        else:
            names = [name for (name,) in conn.execute(f"SELECT name FROM {self.ns}_queues")]
        limited = self._limits_now(conn)
        for name in [n for n in names if n in limited]:
            low, high = bucket_range(name)
            names += [
                bucket
                for (bucket,) in conn.execute(
                    f"SELECT DISTINCT queue FROM {self.ns}_counts WHERE queue > ? AND queue < ? AND n > 0",
                    (low, high),
                )
            ]
        return names

    def _pending_page(
        self,
        queue: str | None,
        limit: int,
        after: str | None,
        now: float,
        select: str,
        picked: list[Any],
        searching: bool,
    ) -> list[tuple[str, JobRecord | None]]:
        """Pending jobs in claim order (priority DESC, run_at, id) after the cursor: per
        queue, a range of the ready index from the cursor on (two ranges: the rest of the
        cursor's priority, then the lower ones); then the scheduled and retry jobs that came
        due and no claim has made pending yet (none while a worker runs: each claim does),
        read whole from the due index. The queues' pages are merged here."""
        key: list[Any] = []
        if after:
            priority, run_at, last = cursor_parts(after, PENDING, 3)
            key = [cursor_int(priority, after), cursor_float(run_at, after), last]
        order = " ORDER BY priority DESC, run_at, id LIMIT ?"
        ready = (
            f"SELECT {select} FROM {self.t} INDEXED BY {self.ns}_jobs_ready"
            " WHERE queue = ? AND state = 'pending'"
        )
        with self._snapshot() as conn:
            queues = self._listed_names(conn, queue)
            rows: list[Any] = []
            for name in queues:
                if not key:
                    rows += conn.execute(ready + order, (*picked, name, limit)).fetchall()
                    continue
                rest = conn.execute(
                    ready + " AND priority = ? AND (run_at, id) > (?, ?)" + order,
                    (*picked, name, *key, limit),
                ).fetchall()
                rows += rest
                if len(rest) < limit:  # the lower priorities come after all of these
                    rows += conn.execute(
                        ready + " AND priority < ?" + order, (*picked, name, key[0], limit - len(rest))
                    ).fetchall()
            due = f"state IN {_LATER} AND run_at <= ?"
            params: list[Any] = [*picked, now]
            if queue is not None:
                due += self._queue_filter(queue, params)
            if key:
                due += " AND (priority < ? OR (priority = ? AND (run_at, id) > (?, ?)))"
                params += [key[0], *key]
            rows += conn.execute(
                f"SELECT {select} FROM {self.t} INDEXED BY {self.ns}_jobs_due WHERE {due}" + order,
                [*params, limit],
            ).fetchall()
            rows.sort(key=lambda row: (-row[3], row[5], row[0]))
            return self._found(
                rows[:limit], searching, lambda row: make_cursor(PENDING, row[3], repr(row[5]), row[0])
            )

    def stats(self, now: float) -> Stats:
        with self._snapshot() as conn:
            return self._stats(conn, now)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several reads that see one committed state (WAL)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _stats(self, conn: sqlite3.Connection, now: float) -> Stats:
        queues: dict[str, dict[str, int]] = {}
        paused: set[str] = set()
        for name, is_paused in conn.execute(f"SELECT name, paused FROM {self.ns}_queues"):
            queues[name] = {}
            if is_paused:
                paused.add(name)
        for queue, state, count in conn.execute(f"SELECT queue, state, n FROM {self.ns}_counts WHERE n > 0"):
            queues.setdefault(queue, {})[state] = count
        # Scheduled and retry jobs already due count as pending (a claim promotes them); they
        # are a range of the due index, read without touching the table.
        oldest: dict[str, float] = {}
        for queue, state, count, first in conn.execute(
            f"SELECT queue, state, count(*), min(run_at) FROM {self.t}"
            f" WHERE state IN {_LATER} AND run_at <= ? GROUP BY queue, state",
            (now,),
        ):
            counts = queues.setdefault(queue, {})
            counts[PENDING] = counts.get(PENDING, 0) + count
            left = counts.get(state, 0) - count
            if left > 0:
                counts[state] = left
            else:
                counts.pop(state, None)
            oldest[queue] = min(oldest.get(queue, first), first)
        for queue in queues:
            first = self._oldest_ready(conn, queue)
            if first is not None:
                oldest[queue] = min(oldest.get(queue, first), first)
        oldest = {queue: max(0.0, now - first) for queue, first in oldest.items()}
        history = [
            (float(minute), processed, failed)
            for minute, processed, failed in conn.execute(
                f"SELECT minute, processed, failed FROM {self.ns}_counters WHERE minute >= ? ORDER BY minute",
                (now - 3600,),
            )
        ]
        processed, failed = conn.execute(
            f"SELECT coalesce(sum(processed), 0), coalesce(sum(failed), 0) FROM {self.ns}_counters"
        ).fetchone()
        return Stats(
            queues=queues,
            paused=frozenset(paused),
            processed=processed,
            failed=failed,
            oldest_pending=oldest,
            history=history,
        )

    def _oldest_ready(self, conn: sqlite3.Connection, queue: str) -> float | None:
        """The earliest run_at among a queue's pending jobs: the first entry of each priority
        in the ready index, one seek per distinct priority (a handful), never a scan."""
        found: float | None = None
        row = conn.execute(
            f"SELECT priority, run_at FROM {self.t} WHERE queue = ? AND state = 'pending'"
            " ORDER BY priority DESC, run_at, id LIMIT 1",
            (queue,),
        ).fetchone()
        while row is not None:
            priority, run_at = row
            if isinstance(run_at, (int, float)):
                found = run_at if found is None else min(found, run_at)
            row = conn.execute(
                f"SELECT priority, run_at FROM {self.t} WHERE queue = ? AND state = 'pending'"
                " AND priority < ? ORDER BY priority DESC, run_at, id LIMIT 1",
                (queue, priority),
            ).fetchone()
        return found

    def workers(self) -> list[WorkerInfo]:
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
            for row in self._conn().execute(
                f"SELECT id, host, pid, queues, concurrency, started_at, last_seen, running"
                f" FROM {self.ns}_workers ORDER BY started_at"
            )
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
        note = note or CANCELLED_NOTE
        if action == "retry":
            # A dead or cancelled job brought back no longer holds its unique key: another job
            # may have taken it meanwhile. last_error is written (as it was) because a job
            # leaving its end is what the workflow triggers wait for (sqlite_batches: a
            # batch re-opens).
            change = (
                "UPDATE {t} SET state = 'pending', run_at = ?, attempts = 0, finished_at = NULL,"
                " progress = NULL, cancel = NULL, last_error = last_error,"
                f" unique_key = CASE WHEN state IN {_ENDED} THEN NULL ELSE unique_key END"
                " WHERE {match} AND state IN ('dead', 'cancelled', 'retry', 'scheduled')"
            )
            first: list[Any] = [now]
        elif action == "cancel":
            change = (
                "UPDATE {t} SET state = 'cancelled', finished_at = ?, last_error = ?"
                " WHERE {match} AND state IN ('scheduled', 'pending', 'retry', 'waiting')"
            )
            first = [now, note]
        else:
            change = "DELETE FROM {t} WHERE {match}"
            first = []
        with self._write() as conn:
            if ids is not None:
                total = 0
                for marks, chunk in in_chunks(ids):
                    match = f"id IN ({marks})"
                    total += conn.execute(change.format(t=self.t, match=match), [*first, *chunk]).rowcount
                    if action == "cancel":
                        # A running job is asked to stop, once: its worker ends it cancelled.
                        total += conn.execute(
                            f"UPDATE {self.t} SET cancel = ? WHERE {match} AND state = 'active'"
                            " AND cancel IS NULL",
                            [note, *chunk],
                        ).rowcount
                workflows.cascade(conn, self.ns, now)
                return total
            where, params = self._state_filter(state, now)
            if queue is not None:
                where += self._queue_filter(queue, params)
            if limit is not None:
                where = f"id IN (SELECT id FROM {self.t} WHERE {where} LIMIT {int(limit)})"
            total = conn.execute(change.format(t=self.t, match=where), [*first, *params]).rowcount
            workflows.cascade(conn, self.ns, now)
            return total

    def change(
        self,
        job_id: str,
        now: float,
        run_at: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        payload: bytes | None = None,
    ) -> bool:
        sets: list[str] = []
        params: list[Any] = []
        if run_at is not None:
            # A pending job is due by definition (the claim walks the ready index alone).
            sets.append(
                "state = CASE WHEN ? <= ? THEN 'pending' WHEN state = 'retry' THEN 'retry'"
                " ELSE 'scheduled' END, run_at = ?"
            )
            params += [run_at, now, run_at]
        if priority is not None:
            sets.append("priority = ?")
            params.append(priority)
        if queue is not None:
            sets.append("queue = ?, payload = coalesce(?, payload)")
            params += [queue, payload]
        if not sets:
            return False
        with self._write() as conn:
            changed = conn.execute(
                f"UPDATE {self.t} SET {', '.join(sets)} WHERE id = ? AND state IN {_WAITING}",
                [*params, job_id],
            ).rowcount
            if changed and queue is not None and queue not in self._registered:
                conn.execute(f"INSERT OR IGNORE INTO {self.ns}_queues (name) VALUES (?)", (queue,))
        if changed and queue is not None:
            self._registered.add(queue)
        return changed > 0

    def set_progress(self, job_id: str, worker: str, progress: bytes) -> bool:
        with self._write() as conn:
            return (
                conn.execute(
                    f"UPDATE {self.t} SET progress = ? WHERE id = ? AND locked_by = ? AND state = 'active'",
                    (progress, job_id, worker),
                ).rowcount
                > 0
            )

    def cancel_requests(self, worker: str, queues: Sequence[str]) -> list[tuple[str, str]]:
        # The active jobs' index, by worker: a handful of rows.
        return [
            (str(job_id), str(note))
            for job_id, note in self._conn().execute(
                f"SELECT id, cancel FROM {self.t} WHERE locked_by = ? AND state = 'active'"
                " AND cancel IS NOT NULL",
                (worker,),
            )
        ]

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO {self.ns}_queues (name, paused) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                (queue, int(paused)),
            )
