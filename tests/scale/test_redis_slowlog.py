"""Redis: no admin call or housekeeping script holds the server for more than 5 ms beside a
large backlog. The server's own SLOWLOG (every command slower than 5 ms) is read after the
listings of every state (a first page and one from a deep cursor, over a tie of equal
scores too), a search that matches nothing and searches by task name in every state (each
a pipeline of ids.lua calls from one cursor, each passing over the ones before it), stats,
get, an action by state with its limit, and recover. ``make bench-scale`` runs the same at a
million jobs (bench/scale_admin.py)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.backends.listing import EVERY_STATE
from conveyor.backends.redis.wire import SCRIPTS, script_source
from tests.harness import open_or_skip
from tests.scale.backlog import fill_redis
from tests.servers import RedisServer

#: Script names by SHA1, as SLOWLOG shows them.
SCRIPT_NAMES = {hashlib.sha1(script_source(name).encode()).hexdigest(): name for name in SCRIPTS}

#: The backlog; ``make bench-scale`` sets a million.
SIZE = int(os.environ.get("CONVEYOR_SCALE_SIZE", "20000"))
SLOW_US = 5_000


def admin_calls(app: Conveyor) -> None:
    """Every admin call the CLI and the dashboard make, and housekeeping."""
    backend = app.backend
    now = time.time()
    for state in (*EVERY_STATE, None):
        for queue in (None, "default"):
            first = backend.list_jobs(state, queue, limit=50)
            deep = backend.list_jobs(state, queue, limit=300, after=first.next)
            if deep.next:
                backend.list_jobs(state, queue, limit=50, after=deep.next)
    backend.list_jobs("completed", limit=50, search="nobody")
    backend.list_jobs(None, limit=50, search="nobody")
    for state in (*EVERY_STATE, None):
        # One job in a thousand is of scale.rare (tests/scale/backlog.py); a deep stretch
        # too: the last calls of its pipeline pass over thousands of jobs.
        found = backend.list_jobs(state, limit=50, task="scale.rare")
        if found.next:
            backend.list_jobs(state, limit=50, task="scale.rare", after=found.next, scan=5_000)
    backend.list_jobs("completed", "mail", limit=50, task="nobody.task")
    backend.stats(now)
    app.stats()
    listed = backend.list_jobs("dead", limit=1).records
    assert listed and backend.get(listed[0].id) is not None
    assert backend.act("retry", None, now, state="dead", limit=400) == 400
    assert backend.act("delete", None, now, state="completed", queue="default", limit=400) == 400
    backend.recover(now, now - 3600)


#: Five: on a loaded machine one script in ten or so is descheduled for a few ms, at random;
#: one slow in every round is slow because of its work.
ROUNDS = 5


@pytest.fixture
def slowlog(redis_server: RedisServer) -> Iterator[RedisServer]:
    redis_server.command("CONFIG", "SET", "slowlog-log-slower-than", "0")  # every command
    redis_server.command("CONFIG", "SET", "slowlog-max-len", "100000")
    yield redis_server
    redis_server.command("CONFIG", "SET", "slowlog-log-slower-than", "10000")
    redis_server.command("CONFIG", "SET", "slowlog-max-len", "128")


def _signature(args: list[bytes]) -> str:
    """What a logged command was: a script by its name and first argument (its state or
    action), a plain command by its name."""
    name = args[0].decode().upper()
    if name != "EVALSHA":
        return name
    script = SCRIPT_NAMES.get(args[1].decode(), args[1].decode()[:8])
    keys = int(args[2])
    return f"{script}({args[3 + keys + 1].decode() if len(args) > 4 + keys else ''})"


def slowest(server: RedisServer, app: Conveyor, rounds: int = ROUNDS) -> dict[str, int]:
    """The time (microseconds) of the costliest command of the admin calls, by kind. Every
    command is logged, in ``rounds`` runs of the same calls; a command's cost is the least
    it took in any round (the n-th command of a kind in one round is the n-th in the
    others): a command slow because of its work is slow in every round, one descheduled on a
    loaded machine is not."""
    least: dict[tuple[str, int], int] = {}
    admin_calls(app)  # once unlogged: the first call of a script is refused (NOSCRIPT) and sent again
    for done in range(rounds):
        server.command("SLOWLOG", "RESET")
        admin_calls(app)
        entries = server.command("SLOWLOG", "GET", "100000")
        assert isinstance(entries, list) and len(entries) < 100_000
        seen: dict[str, int] = {}
        this_round: dict[tuple[str, int], int] = {}
        for entry in reversed(entries):  # the log is newest first
            kind = _signature([bytes(a) for a in entry[3]])  # type: ignore[arg-type,index,union-attr]
            if kind in ("SLOWLOG", "SCRIPT"):
                continue  # this test's own reading of the log, and loading the scripts
            seen[kind] = seen.get(kind, 0) + 1
            this_round[kind, seen[kind]] = int(entry[2])  # type: ignore[index,arg-type]
        least = this_round if done == 0 else {k: min(v, this_round.get(k, v)) for k, v in least.items()}
    worst: dict[str, int] = {}
    for (kind, _), took in least.items():
        worst[kind] = max(worst.get(kind, 0), took)
    return worst


# A million jobs take minutes to write and each round a minute on a loaded machine.
@pytest.mark.timeout(max(300, SIZE // 400))
def test_no_admin_script_blocks_the_server(slowlog: RedisServer) -> None:
    app = open_or_skip(Conveyor(slowlog.url, namespace=f"slowlog{time.monotonic_ns()}"))
    try:
        fill_redis(app, SIZE // 4, "completed")
        fill_redis(app, SIZE // 8, "dead")
        fill_redis(app, SIZE // 8, "completed", queue="mail", same_time=True)
        fill_redis(app, SIZE // 4, "pending")
        fill_redis(app, SIZE // 4, "scheduled")
        fill_redis(app, SIZE // 8, "scheduled", queue="mail", same_time=True)
        worst = slowest(slowlog, app)
        assert any(kind.startswith("ids(") for kind in worst)
        slow = {kind: us for kind, us in worst.items() if us > SLOW_US}
        assert slow == {}, f"slower than {SLOW_US} us in every round: {slow} (all: {worst})"
    finally:
        app.close()
