"""Periodic jobs: each tick enqueued once per namespace, whatever the number of schedulers.

Schedulers run on a virtual clock (``run_due(now)``), never sleeping: hours of ticks take a
fraction of a second. Each scheduler is built on an app object of its own over the same
namespace, as separate worker processes would be.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor import Conveyor
from conveyor.job import Tick
from conveyor.periodic import Scheduler
from conveyor.periodic.scheduler import ABANDONED_AFTER

from .conftest import AppFactory
from .helpers import record

#: Friday 2026-11-27 00:00:03 UTC: a start just past a whole minute.
T0 = datetime(2026, 11, 27, 0, 0, 3, tzinfo=UTC).timestamp()


def _app(make_app: AppFactory, *, with_mail: bool = True, with_hourly: bool = True) -> Conveyor:
    """One worker's view of the app: the same schedules, in the namespace every call shares."""
    app = make_app(namespace="shared")

    @app.task(name="p.minutely")
    def minutely() -> None: ...

    @app.task(name="p.report", queue="mail")
    def report(kind: str) -> None: ...

    app.periodic(minutely, every=60)
    if with_mail:
        app.periodic(report, cron="*/5 * * * *", tz="Europe/Berlin", args=("short",), name="report-5m")
    if with_hourly:
        app.periodic(report, cron="0 * * * *", tz="America/New_York", args=("hourly",), name="report-1h")
    return app


def _tasks(app: Conveyor, ids: list[str]) -> Counter[str]:
    """How many jobs of each schedule, by the task and arguments the store holds."""
    counted: Counter[str] = Counter()
    for job_id in ids:
        job = app.get_job(job_id)
        assert job is not None and job.state == "pending"
        counted[job.task if not job.args else f"{job.task}:{job.args[0]}"] += 1
    return counted


def test_four_schedulers_enqueue_each_tick_once_on_a_moving_clock(make_app: AppFactory) -> None:
    schedulers = [Scheduler(_app(make_app)) for _ in range(4)]
    rng = random.Random(14)
    now = T0
    end = T0 + 3 * 3600  # three hours: 180 minutely ticks, 36 five-minute, 3 hourly
    taken: list[str] = []
    while now < end:
        # Steps from a blink to most of a minute, each scheduler at its own moment in it.
        now = min(end, now + rng.uniform(0.05, 50.0))
        order = schedulers[:]
        rng.shuffle(order)
        for n, scheduler in enumerate(order):
            due = scheduler.next_due()
            if due is not None and rng.random() < 0.5:
                scheduler.prepare(due)  # as the thread does before it sleeps: built ahead
            taken += [job.id for job in scheduler.run_due(now + n * rng.uniform(0, 0.5))]
    assert len(taken) == len(set(taken))
    viewer = schedulers[0]._app
    assert _tasks(viewer, taken) == {"p.minutely": 180, "p.report:short": 36, "p.report:hourly": 3}
    stats = viewer.stats()
    assert stats.queues["default"].get("pending") == 180
    assert stats.queues["mail"].get("pending") == 39
    states = {s.name: s for s in viewer.backend.schedules()}
    assert set(states) == {"p.minutely", "report-5m", "report-1h"}
    assert states["p.minutely"].last_at == end - 3 and states["p.minutely"].next_at == end + 57
    assert states["report-1h"].queue == "mail"
    assert states["report-1h"].job_id in taken


def test_after_downtime_only_the_latest_missed_tick_is_enqueued(make_app: AppFactory) -> None:
    first = Scheduler(_app(make_app, with_mail=False, with_hourly=False))
    assert first.run_due(T0) == []  # a new schedule starts at its next tick, not at once
    assert len(first.run_due(T0 + 60)) == 1
    # Every worker stops for five hours; two start again, a few seconds apart.
    back = [Scheduler(_app(make_app, with_mail=False, with_hourly=False)) for _ in range(2)]
    restart = T0 + 5 * 3600 + 20
    jobs = back[0].run_due(restart) + back[1].run_due(restart + 2)
    assert len(jobs) == 1
    (state,) = back[0]._app.backend.schedules()
    assert state.last_at == T0 + 5 * 3600 - 3 and state.job_id == jobs[0].id
    # A process that slept through hours offers only the latest tick too.
    assert len(first.run_due(T0 + 9 * 3600 + 30)) == 1
    assert len(back[1].run_due(T0 + 9 * 3600 + 31)) == 0
    assert back[0]._app.stats().queues["default"]["pending"] == 3


def test_the_store_takes_a_tick_once_and_never_an_older_one(app: Conveyor) -> None:
    backend = app.backend

    def tick(at: float, catch_up: bool = False, name: str = "s") -> Tick:
        return Tick(name, at, at + 60, record(app), catch_up)

    assert backend.enqueue_ticks([tick(T0, catch_up=True)], T0) == [False]  # nothing recorded yet
    first, again = tick(T0), tick(T0)
    assert backend.enqueue_ticks([first], T0) == [True]
    assert backend.enqueue_ticks([again, tick(T0, name="other")], T0) == [False, True]
    assert backend.enqueue_ticks([tick(T0 - 60)], T0) == [False]
    assert backend.enqueue_ticks([tick(T0 + 120, catch_up=True)], T0 + 130) == [True]
    assert backend.get(first.record.id) is not None and backend.get(again.record.id) is None
    states = {s.name: s for s in backend.schedules()}
    assert states["s"].last_at == T0 + 120 and states["s"].next_at == T0 + 180
    assert states["s"].enqueued_at == T0 + 130
    assert app.stats().queues["default"]["pending"] == 3


def test_a_schedule_removed_from_the_code_stops_and_its_state_goes(make_app: AppFactory) -> None:
    old = Scheduler(_app(make_app))
    old.run_due(T0)
    assert len(old.run_due(T0 + 3600)) == 3  # the three schedules' ticks at 01:00
    new = Scheduler(_app(make_app, with_hourly=False))
    # While a worker of the old code may still run it (its next tick not long overdue), the
    # hourly schedule's state stays; then it goes, and nothing enqueues it any more.
    jobs = new.run_due(T0 + 2 * 3600)
    assert {job.args[0] for job in jobs if job.args} == {"short"}
    assert {s.name for s in new._app.backend.schedules()} == {"p.minutely", "report-5m", "report-1h"}
    new._next_forget = 0.0
    new.run_due(T0 + 2 * 3600 + ABANDONED_AFTER + 10)
    assert {s.name for s in new._app.backend.schedules()} == {"p.minutely", "report-5m"}
    later = new.run_due(T0 + 5 * 3600)
    assert all(job.args != ["hourly"] for job in later)


def _ticks_in(make_app: AppFactory, cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """The local times a scheduler enqueued ``cron`` at, from ``start`` to ``end``, stepping
    the virtual clock straight to each due time."""
    app = make_app(namespace=f"dst{abs(hash((cron, tz, start))) % 10**6}")

    @app.task(name="p.dst")
    def dst() -> None: ...

    app.periodic(dst, cron=cron, tz=tz)
    scheduler = Scheduler(app)
    scheduler.run_due(start.timestamp())
    fired: list[datetime] = []
    while True:
        due = scheduler.next_due()
        assert due is not None
        if due > end.timestamp():
            break
        jobs = scheduler.run_due(due)
        assert len(jobs) == 1
        fired.append(datetime.fromtimestamp(due, ZoneInfo(tz)))
    assert len(app.jobs(state="pending", limit=1000)) == len(fired)
    return fired


def _local(tz: str, day: date, hour: int, minute: int = 0) -> datetime:
    """A wall time in ``tz`` (the first of two, in a repeated hour)."""
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(
    ("tz", "autumn_day", "repeated_hour"),
    [("Europe/Berlin", date(2026, 10, 25), 2), ("America/New_York", date(2026, 11, 1), 1)],
)
def test_autumn_dst_a_fixed_time_in_the_repeated_hour_fires_once(
    make_app: AppFactory, tz: str, autumn_day: date, repeated_hour: int
) -> None:
    days = [autumn_day + timedelta(days=n) for n in (-1, 0, 1)]
    fired = _ticks_in(
        make_app, f"30 {repeated_hour} * * *", tz, _local(tz, days[0], 0), _local(tz, days[2], 12)
    )
    assert fired == [_local(tz, day, repeated_hour, 30) for day in days]
    # The first pass of the repeated hour (summer time), an hour before the second.
    assert fired[1].utcoffset() == fired[0].utcoffset() != fired[2].utcoffset()
    # By elapsed time, every half hour: both passes of the repeated hour, each tick once.
    halves = _ticks_in(
        make_app, "*/30 * * * *", tz, _local(tz, autumn_day, 0, 10), _local(tz, autumn_day, 3, 50)
    )
    assert len(halves) == 9  # 00:30 .. 03:30 is 3 hours on the wall but 4 of elapsed time
    assert len({h.timestamp() for h in halves}) == 9


@pytest.mark.parametrize(
    ("tz", "spring_day"), [("Europe/Berlin", date(2026, 3, 29)), ("America/New_York", date(2026, 3, 8))]
)
def test_spring_dst_a_time_in_the_gap_fires_right_after_it(
    make_app: AppFactory, tz: str, spring_day: date
) -> None:
    days = [spring_day + timedelta(days=n) for n in (-1, 0, 1)]
    fired = _ticks_in(make_app, "30 2 * * *", tz, _local(tz, days[0], 0), _local(tz, days[2], 12))
    # 02:30 does not exist that night: cron semantics (Debian's, as cronsim) run it at 03:00.
    assert fired == [_local(tz, days[0], 2, 30), _local(tz, days[1], 3, 0), _local(tz, days[2], 2, 30)]
    # By elapsed time, every half hour: the gap's wall times simply never come.
    halves = _ticks_in(
        make_app, "*/30 * * * *", tz, _local(tz, spring_day, 0, 10), _local(tz, spring_day, 4, 10)
    )
    assert [(h.hour, h.minute) for h in halves] == [(0, 30), (1, 0), (1, 30), (3, 0), (3, 30), (4, 0)]


def test_a_schedule_whose_job_cannot_be_built_does_not_hold_up_the_others(make_app: AppFactory) -> None:
    app = make_app(max_payload=2000)

    @app.task(name="p.blob")
    def blob(text: str) -> None: ...

    app.periodic(blob, every=60, args=("x" * 1500,), name="too-large")
    app.periodic(blob, every=60, args=("small",), name="fine")
    app.codec.max_payload = 1000  # lowered after registration, which checks the size too
    scheduler = Scheduler(app)
    scheduler.run_due(T0)
    jobs = scheduler.run_due(T0 + 60)
    assert [job.args for job in jobs] == [["small"]]
    assert [job.args for job in scheduler.run_due(T0 + 120)] == [["small"]]
