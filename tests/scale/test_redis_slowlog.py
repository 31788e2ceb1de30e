"""Redis: no admin call or housekeeping script holds the server for more than 5 ms beside a
large backlog. The server's own SLOWLOG (every command slower than 5 ms) is read after the
listings of every state (a first page and one from a deep cursor, over a tie of equal
scores too), a search that matches nothing, stats, get, an action by state with its limit,
and recover. ``make bench-scale`` runs the same at a million jobs (bench/scale_admin.py)."""

from __future__ import annotations

import hashlib
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

SIZE = 20_000
SLOW_US = 5_000


def admin_calls(app: Conveyor) -> None:
    """Every admin call the CLI and the dashboard make, and housekeeping."""
    backend = app.backend
    now = time.time()
    for state in (*EVERY_STATE, None):
        for queue in (None, "default"):
            first = backend.list_jobs(state, queue, limit=50)
            deep = backend.list_jobs(state, queue, limit=2_000, after=first.next)
            if deep.next:
                backend.list_jobs(state, queue, limit=50, after=deep.next)
    backend.list_jobs("completed", limit=50, search="nobody")
    backend.list_jobs(None, limit=50, search="nobody")
    backend.stats(now)
    app.stats()
    listed = backend.list_jobs("dead", limit=1).records
    assert listed and backend.get(listed[0].id) is not None
    assert backend.act("retry", None, now, state="dead", limit=500) == 500
    assert backend.act("delete", None, now, state="completed", queue="default", limit=500) == 500
    backend.recover(now, now - 3600)


ROUNDS = 3
LOGGED_US = 1_000


@pytest.fixture
def slowlog(redis_server: RedisServer) -> Iterator[RedisServer]:
    redis_server.command("CONFIG", "SET", "slowlog-log-slower-than", str(LOGGED_US))
    redis_server.command("CONFIG", "SET", "slowlog-max-len", "10000")
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
    """Each kind of command's time in the SLOWLOG (microseconds), the least over ``rounds``
    runs of the admin calls: a command slow because of its work is slow in every round, one
    descheduled on a loaded machine is not. A kind that is logged in no round took less than
    LOGGED_US and is left out."""
    least: dict[str, int] = {}
    for done in range(rounds):
        server.command("SLOWLOG", "RESET")
        admin_calls(app)
        entries = server.command("SLOWLOG", "GET", "10000")
        assert isinstance(entries, list)
        this_round: dict[str, int] = {}
        for entry in entries:
            kind = _signature([bytes(a) for a in entry[3]])  # type: ignore[index,union-attr]
            this_round[kind] = max(this_round.get(kind, 0), int(entry[2]))  # type: ignore[index,arg-type]
        least = (
            this_round
            if done == 0
            else {k: min(v, this_round[k]) for k, v in least.items() if k in this_round}
        )
    return least


def test_no_admin_script_blocks_the_server(slowlog: RedisServer) -> None:
    app = open_or_skip(Conveyor(slowlog.url, namespace=f"slowlog{time.monotonic_ns()}"))
    try:
        fill_redis(app, SIZE // 4, "completed")
        fill_redis(app, SIZE // 8, "dead")
        fill_redis(app, SIZE // 8, "completed", queue="mail", same_time=True)
        fill_redis(app, SIZE // 4, "pending")
        fill_redis(app, SIZE // 4, "scheduled")
        fill_redis(app, SIZE // 8, "scheduled", queue="mail", same_time=True)
        slow = {kind: us for kind, us in slowest(slowlog, app).items() if us > SLOW_US}
        assert slow == {}, f"slower than {SLOW_US} us in every round: {slow}"
    finally:
        app.close()
