"""Bad input written straight into each store, with the store's own client.

Each store gets one worker process and one batch of malformed records, written between
good jobs; then each record is judged on its own (one test per store and record):

* a record whose payload cannot run ends ``dead`` with a reason;
* a record with garbage in a scheduling column or field (priority, attempts, timeout,
  run_at …) is run or ends ``dead``: it never stays stuck, crashes the worker, or holds up
  the good jobs. (PostgreSQL's typed columns refuse most such values at the INSERT; then
  the case checks that the store refused it.)

Known store defects are marked ``xfail(strict=True)`` with the reason, so that a fix shows.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from conveyor import Conveyor
from conveyor.job import new_id

from .conftest import Workers

DEAD = "dead"
HANDLED = "handled"  # completed or dead, and not stuck
DROP = object()  # leave this field out of the record (where the store allows it)
BIG = 10 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes | None = None  # None: a valid payload of task "work"
    fields: dict[str, Any] = field(default_factory=dict)
    expect: str = DEAD
    reason: str = ""  # text the dead job's last_error must contain
    stores: tuple[str, ...] = ("sqlite", "redis", "postgres")
    max_attempts: int = 1
    alone: bool = False  # written in a namespace of its own (it may block its whole queue)


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


CASES = [
    # -- the payload --------------------------------------------------------------------
    Case("garbage bytes", b"\x00\xff\xfe\x80garbage\x01" * 8, reason="bad payload"),
    Case("empty payload", b"", reason="bad payload"),
    Case("invalid JSON", b'{"t": "work", "a": [1,', reason="not valid JSON"),
    Case("JSON not an object", b"[1, 2, 3]", reason="expected an object"),
    Case("JSON nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, reason="bad payload"),
    Case("task missing", _json({"a": [1], "k": {}}), reason="names no task"),
    Case("task not a string", _json({"t": 42, "a": [1]}), reason="names no task"),
    Case("args not a list", _json({"t": "work", "a": {"n": 1}}), reason="expected a list"),
    Case("kwargs not an object", _json({"t": "work", "a": [1], "k": [1]}), reason="expected an object"),
    Case("backoff not a number", _json({"t": "work", "a": [1], "b": "soon"}), reason="backoff"),
    Case(
        "signed, app has no key", b"s1:" + b"A" * 43 + b":" + _json({"t": "work", "a": [1]}), reason="signed"
    ),
    Case("unknown task", _json({"t": "no.such.task", "a": [], "k": {}}), reason="unknown task"),
    Case("import path as task", _json({"t": "os:system", "a": ["true"], "k": {}}), reason="unknown task"),
    Case("too many arguments", _json({"t": "work", "a": [1, 2, 3, 4], "k": {}}), reason="wrong arguments"),
    Case("too few arguments", _json({"t": "work", "a": [], "k": {}}), reason="wrong arguments"),
    Case("unknown keyword", _json({"t": "work", "a": [1], "k": {"nope": 1}}), reason="wrong arguments"),
    Case(
        "10 MB payload",
        _json({"t": "work", "a": [1], "k": {"junk": "x" * BIG}}),
        reason="wrong arguments",
    ),
    # -- scheduling columns / fields --------------------------------------------------------
    Case("priority 'abc'", fields={"priority": "abc"}, expect=HANDLED),
    Case(
        "priority 'abc', the run fails and retries",
        _json({"t": "work", "a": ["x", "not seconds"], "k": {}}),
        fields={"priority": "abc"},
        expect=DEAD,
        reason="TypeError",
        max_attempts=2,
    ),
    Case("priority 2**31-1", fields={"priority": 2**31 - 1}, expect=HANDLED),
    Case("attempts 'x'", fields={"attempts": "x"}, expect=HANDLED),
    Case("attempts NULL / missing", fields={"attempts": None}, expect=HANDLED),
    Case("attempts -5", fields={"attempts": -5}, expect=HANDLED),
    Case("max_attempts 0", fields={"max_attempts": 0}, expect=HANDLED),
    Case("max_attempts 'zz'", fields={"max_attempts": "zz"}, expect=HANDLED),
    Case("timeout 'abc'", fields={"timeout": "abc"}, expect=HANDLED),
    Case("timeout -1", fields={"timeout": -1.0}, expect=HANDLED),
    Case("created_at 'yesterday'", fields={"created_at": "yesterday"}, expect=HANDLED),
    Case("run_at -1", fields={"run_at": -1.0}, expect=HANDLED),
    Case("run_at 'soon'", fields={"run_at": "soon"}, expect=HANDLED),
    Case("run_at 1e300", fields={"run_at": 1e300}, expect=HANDLED),
    Case("run_at +inf", fields={"run_at": math.inf}, expect=HANDLED),
    Case("run_at -inf", fields={"run_at": -math.inf}, expect=HANDLED),
    Case("run_at NaN", fields={"run_at": math.nan}, expect=HANDLED),
    # -- the record's shape (Redis: a hash written by hand) ----------------------------------
    Case("hash without payload", fields={"payload": DROP}, expect=DEAD, stores=("redis",)),
    Case("hash with payload only", fields={"only_payload": True}, expect=HANDLED, stores=("redis",)),
    Case(
        "job key is a string, not a hash",
        fields={"string_key": True},
        expect=DEAD,
        stores=("redis",),
        alone=True,
    ),
]

#: Store defects found by these cases (reported; see docs/reliability.md).
#: Store defects found by these cases, marked xfail(strict) until fixed (none open now;
#: see docs/reliability.md for the ones fixed).
KNOWN: dict[tuple[str, str], str] = {}


@dataclass
class Run:
    """One store's run: the ids written per case, refusals, good jobs, the worker."""

    app: Conveyor
    workers: Workers
    ids: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    good: list[str] = field(default_factory=list)
    good_done_after: float = 0.0
    alive: bool = True
    finals: dict[str, Any] = field(default_factory=dict)


# -- writers: one per store, each with the store's own client ------------------------------
def _row(app: Conveyor, case: Case, job_id: str, n: int) -> dict[str, Any]:
    now = time.time()
    payload = case.payload
    if payload is None:
        payload = app.codec.encode_payload(job_id, "default", case.max_attempts, "work", [n], {})
    row: dict[str, Any] = {
        "id": job_id,
        "queue": "default",
        "payload": payload,
        "priority": 0,
        "state": "pending",
        "run_at": now,
        "attempts": 0,
        "max_attempts": case.max_attempts,
        "timeout": None,
        "created_at": now,
    }
    row.update({k: v for k, v in case.fields.items() if k in row})
    return row


def _write_sqlite(app: Conveyor, rows: list[tuple[Case, dict[str, Any]]], run: Run) -> None:
    path = app.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        for case, row in rows:
            cols = [k for k, v in row.items() if v is not DROP]
            try:
                marks = ", ".join("?" * len(cols))
                conn.execute(
                    f"INSERT INTO {app.namespace}_jobs ({', '.join(cols)}) VALUES ({marks})",
                    [row[c] for c in cols],
                )
            except sqlite3.IntegrityError as exc:
                run.refused[case.name] = f"sqlite3.IntegrityError: {exc}"
    finally:
        conn.close()


def _write_postgres(app: Conveyor, rows: list[tuple[Case, dict[str, Any]]], run: Run) -> None:
    import psycopg

    with psycopg.connect(app.url, autocommit=True) as conn:
        for case, row in rows:
            cols = [k for k, v in row.items() if v is not DROP]
            values = [row[c] for c in cols]
            try:
                conn.execute(
                    f'INSERT INTO "{app.namespace}".jobs ({", ".join(cols)})'
                    f" VALUES ({', '.join(['%s'] * len(cols))})",
                    values,
                )
            except psycopg.Error as exc:
                run.refused[case.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_REDIS_FIELDS = {"payload": "p", "state": "s", "run_at": "ra", "attempts": "a"}
#: The settings no script changes share one field, m: "priority|max_attempts|timeout|created_at".
_REDIS_META = ("priority", "max_attempts", "timeout", "created_at")


def _score(value: Any, default: float) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(score) else score


def _write_redis(app: Conveyor, rows: list[tuple[Case, dict[str, Any]]], run: Run) -> None:
    import redis

    client = redis.Redis.from_url(app.url)
    ns, q = app.namespace, "default"
    prefix = f"{{{ns}:{q}}}:"
    try:
        for case, row in rows:
            job_id = row["id"]
            key = f"{prefix}j:{job_id}"
            if case.fields.get("string_key"):
                client.set(key, b"garbage, not a hash")
            else:
                mapping: dict[str, bytes | str] = {}
                for name, raw in row.items():
                    short = _REDIS_FIELDS.get(name)
                    if short is None or raw is DROP or raw is None:
                        continue
                    mapping[short] = raw if isinstance(raw, bytes) else str(raw)
                meta = ("" if row.get(n) in (None, DROP) else str(row[n]) for n in _REDIS_META)
                mapping["m"] = "|".join(meta)
                if case.fields.get("only_payload"):
                    mapping = {"p": mapping["p"]}
                client.hset(key, mapping=cast(Any, mapping))
            # Waiting under priority 0 (the zset member list is the store's, the hash is ours).
            client.zadd(f"{prefix}w:0", {job_id: _score(row["run_at"], time.time())})
            client.zadd(f"{prefix}prios", {"0": 0})
            client.hset(f"{{{ns}}}:where", job_id, q)
            client.sadd(f"{{{ns}}}:queues", q)
    finally:
        client.close()


WRITERS = {"sqlite": _write_sqlite, "redis": _write_redis, "postgres": _write_postgres}
_RUNS: dict[str, Run] = {}
SETTLE = 12.0  # seconds the worker gets for the whole batch


def _run_store(store: str, url: str, tmp: Path, cases: list[Case]) -> Run:
    workers = Workers(tmp, url, lease=1.5)
    try:
        return _run_cases(store, workers, cases)
    except BaseException:
        workers.close()  # no worker process left behind by a run that broke
        raise


def _run_cases(store: str, workers: Workers, cases: list[Case]) -> Run:
    app = workers.app
    run = Run(app, workers)
    work = app.tasks["work"]
    run.good += [j.id for j in app.enqueue_many([work.job(10_000 + i) for i in range(20)])]
    rows: list[tuple[Case, dict[str, Any]]] = []
    for n, case in enumerate(cases):
        job_id = new_id()
        run.ids[case.name] = job_id
        rows.append((case, _row(app, case, job_id, n)))
    WRITERS[store](app, rows, run)
    proc = workers.start("--concurrency", "4")
    run.good += [j.id for j in app.enqueue_many([work.job(20_000 + i) for i in range(20)])]
    started = time.monotonic()
    pending = set(run.good)
    deadline = started + SETTLE
    while pending and time.monotonic() < deadline:
        pending = {i for i in pending if (s := app.get_job(i)) is None or s.state != "completed"}
        time.sleep(0.05)
    run.good_done_after = time.monotonic() - started
    # Give the malformed ones time to settle (a lease or two), until nothing has changed
    # for a while; a record stuck for ever is then judged stuck.
    last: list[str] = []
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 4.0:
        states = [_final(app, job_id)[0] for job_id in run.ids.values()]
        if all(s in ("completed", "dead", "missing") for s in states):
            break
        if states != last:
            last, quiet_since = states, time.monotonic()
        time.sleep(0.1)
    for name, job_id in run.ids.items():
        run.finals[name] = _final(app, job_id)
    run.alive = proc.poll() is None
    more = app.tasks["work"].enqueue(30_000)
    try:
        more.result(timeout=10)
    except Exception:
        run.alive = False
    return run


def _final(app: Conveyor, job_id: str) -> tuple[str, str, str]:
    """(state, last_error, problem reading it) of a job."""
    try:
        snap = app.get_job(job_id)
    except Exception as exc:
        # The admin API itself failed on this record; read the raw state from the store.
        problem = f"get_job raised {type(exc).__name__}: {exc}"
        try:
            record = app.backend.get(job_id)
        except Exception as again:
            return "unreadable", "", f"{problem}; Backend.get raised {type(again).__name__}: {again}"
        state = "missing" if record is None else record.state
        error = "" if record is None else (record.last_error or "")
        return state, error, problem
    if snap is None:
        return "missing", "", ""
    return snap.state, snap.last_error or "", ""


@pytest.fixture
def bad_run(store: str, case: Case, store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    key = f"{store}/{case.name}" if case.alone else store
    if key not in _RUNS:
        cases = [case] if case.alone else [c for c in CASES if store in c.stores and not c.alone]
        _RUNS[key] = _run_store(store, store_url, tmp_path_factory.mktemp(f"bad-{store}"), cases)
    return _RUNS[key]


@pytest.fixture(scope="module", autouse=True)
def _close_runs() -> Any:
    yield
    for run in _RUNS.values():
        run.workers.close()
    _RUNS.clear()


PARAMS = [
    pytest.param(
        store,
        case,
        id=f"{store}-{case.name}",
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN[store, case.name])]
        if (store, case.name) in KNOWN
        else [],
    )
    for store in ("sqlite", "redis", "postgres")
    for case in CASES
    if store in case.stores
]


@pytest.mark.parametrize(("store", "case"), PARAMS)
def test_bad_record(store: str, case: Case, bad_run: Run) -> None:
    run = bad_run
    # The worker runs on, and the good jobs around the bad ones all completed in time.
    assert run.alive, f"the worker died; logs:\n{run.workers.logs()[-1500:]}"
    assert run.good_done_after < SETTLE, f"good jobs held up; logs:\n{run.workers.logs()[-1500:]}"
    if case.name in run.refused:
        assert store == "postgres" or case.fields, run.refused[case.name]
        return  # the store's schema refused the record: it never became a job
    state, error, problem = run.finals[case.name]
    if case.expect == DEAD:
        assert state == "dead", (state, error)
        assert case.reason.lower() in error.lower(), error
    else:
        assert state in ("completed", "dead"), f"stuck in {state!r} (last error: {error!r})"
        if state == "dead":
            assert error, "dead without a reason"
    # The admin API (get_job, the CLI, the dashboard) can show the job.
    assert not problem, problem
