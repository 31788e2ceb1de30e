"""The scheduler: offers each schedule's due tick to the store, which enqueues it once.

Every worker process runs one. Schedulers never talk to each other: each computes the same
tick times from the same definitions and offers them to ``Backend.enqueue_ticks``, where one
atomic step records the tick and stores its job only if no scheduler did so before. So a tick
is enqueued once per namespace whatever the number of workers, processes and machines.

The clock is injectable: ``now`` is any callable returning epoch seconds (``time.time`` by
default), and ``run_due(now)`` takes the time outright, so a test or ``conveyor.testing`` moves
time by calling it, with no thread and no sleeping.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..job import Job, Tick, new_id
from .schedule import Schedule

if TYPE_CHECKING:
    from ..app import Conveyor

log = logging.getLogger("conveyor.periodic")

#: Seconds past a recorded next tick after which the state of a schedule that no longer is
#: in the code is deleted: a worker still running an older deploy that has the schedule
#: would have enqueued that tick (and moved its next tick on) by then.
ABANDONED_AFTER = 60.0
#: Seconds between looks for abandoned schedules.
FORGET_EVERY = 600.0
#: The longest sleep of the thread: a wall clock set forwards or back is noticed this soon.
LONGEST_SLEEP = 1.0
#: Ticks offered to the store per call.
BATCH = 500


class Scheduler:
    """Offers the due ticks of ``app.schedules`` to the app's store.

    ``start()``/``stop()`` run it on a thread of its own (the worker does); ``run_due`` is one
    pass at a given time, for a test or an in-process drain. A pass is O(schedules due):
    the next due time of every schedule sits in a heap. One thread drives a scheduler (its
    own, or the caller's): it is not meant to be called from two at once.
    """

    def __init__(self, app: Conveyor, now: Callable[[], float] = time.time) -> None:
        self._app = app
        self._now = now
        self._schedules: dict[str, Schedule] = dict(app.schedules)
        self._heap: list[tuple[float, str]] = []
        self._first = True
        self._catch_up: set[str] = set()
        #: Ticks built ahead of their time (``prepare``): name -> (due time, tick, job).
        self._prepared: dict[str, tuple[float, Tick, Job]] = {}
        self._next_forget = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass -------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """When the next tick falls (epoch seconds), or None with no schedule left."""
        if self._first:
            return self._now()
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float | None = None) -> list[Job]:
        """Offer every tick due at ``now`` (default: the clock) and return the jobs the
        store took from this scheduler (ticks others enqueued first are not among them).

        A schedule whose due time passed long ago (the process slept, the store was down)
        offers only its latest tick, never the ones it missed. The first pass offers each
        schedule's latest past tick as a catch-up (see ``Tick.catch_up``)."""
        at = self._now() if now is None else now
        if self._first:
            self._start(at)
        due: list[tuple[float, Schedule]] = []
        while self._heap and self._heap[0][0] <= at:
            when, name = heapq.heappop(self._heap)
            due.append((when, self._schedules[name]))
        jobs: list[Job] = []
        for start in range(0, len(due), BATCH):
            batch = due[start : start + BATCH]
            try:
                jobs += self._offer(batch, at)
            except BaseException:
                # Not offered (or the answer was lost): due again at once, at the next pass.
                for _, schedule in due[start:]:
                    heapq.heappush(self._heap, (at, schedule.name))
                raise
            for _, schedule in batch:
                self._catch_up.discard(schedule.name)
                self._push_next(schedule, at)
        if at >= self._next_forget:
            self._forget(at)
        return jobs

    def _start(self, at: float) -> None:
        self._first = False
        for schedule in self._schedules.values():
            latest = schedule.timing.latest_at_or_before(at)
            if latest is not None:
                self._catch_up.add(schedule.name)
                heapq.heappush(self._heap, (latest, schedule.name))
            else:
                self._push_next(schedule, at)

    def _push_next(self, schedule: Schedule, after: float) -> None:
        """Due again at its first tick after ``after`` (a cron that never fires again is
        dropped)."""
        when = schedule.timing.next_after(after)
        if when is not None:
            heapq.heappush(self._heap, (when, schedule.name))

    def prepare(self, until: float) -> None:
        """Build, ahead of time, the ticks due by ``until`` (job ids, encoded payloads), so
        that when they fall only the store call is left: their jobs are stored within a
        store round-trip of their time, however many fall at once. The thread does this
        before it sleeps; a tick prepared but overtaken by a later one is built again."""
        for when, name in self._heap:
            if when <= until and self._prepared.get(name, (None,))[0] != when:
                try:
                    self._prepared[name] = (when, *self._build(self._schedules[name], when, when))
                except Exception:
                    continue  # built again when due, where the error is logged

    def _build(self, schedule: Schedule, tick_at: float, at: float) -> tuple[Tick, Job]:
        """The tick of ``schedule`` at ``tick_at``, built at time ``at``, and its job's handle."""
        next_at = schedule.timing.next_after(max(tick_at, at))
        # A cron that never fires again keeps its state a day, then counts as abandoned.
        after = at + 86400.0 if next_at is None else next_at
        stamp = datetime.fromtimestamp(at, UTC)
        record, job = self._app._build(schedule.spec(tick_at), at, stamp, new_id())
        return Tick(schedule.name, tick_at, after, record, schedule.name in self._catch_up), job

    def _offer(self, due: list[tuple[float, Schedule]], at: float) -> list[Job]:
        app = self._app
        ticks: list[Tick] = []
        jobs: dict[str, Job] = {}
        for when, schedule in due:
            name = schedule.name
            prepared = self._prepared.pop(name, None)
            if prepared is not None and prepared[0] == when and at < prepared[1].next_at:
                _, tick, job = prepared
                if tick.catch_up != (name in self._catch_up):
                    tick = replace(tick, catch_up=name in self._catch_up)
            else:
                # The latest tick by now: a schedule due long ago offers only that one.
                latest = schedule.timing.latest_at_or_before(at)
                try:
                    tick, job = self._build(
                        schedule, latest if latest is not None and latest >= when else when, at
                    )
                except Exception:
                    # One schedule whose job cannot be built (too large, a middleware's
                    # metadata) must not hold up the others: skipped until its next tick.
                    log.exception("periodic %s: its job could not be built; tick skipped", name)
                    continue
            ticks.append(tick)
            jobs[tick.record.id] = job
        if not ticks:
            return []
        records = [tick.record for tick in ticks]
        for mw in app.middleware:
            mw.before_enqueue(records)
        taken = app.backend.enqueue_ticks(ticks, at)
        stored = [tick.record for tick, won in zip(ticks, taken, strict=True) if won]
        if log.isEnabledFor(logging.DEBUG):
            for tick, won in zip(ticks, taken, strict=True):
                if won:
                    log.debug(
                        "periodic %s: tick %s enqueued as job %s", tick.name, _iso(tick.at), tick.record.id
                    )
        if stored:
            for mw in app.middleware:
                mw.after_enqueue(stored)
        return [jobs[r.id] for r in stored]

    def _forget(self, at: float) -> None:
        """Delete the state of schedules no longer in the code, once abandoned (see
        ``ABANDONED_AFTER``); every scheduler may do it, the store checks atomically."""
        self._next_forget = at + FORGET_EVERY
        try:
            gone = self._app.backend.forget_schedules(list(self._schedules), at - ABANDONED_AFTER)
        except Exception as exc:
            log.warning("could not clean up abandoned schedules: %s", exc)
            return
        if gone:
            log.info("deleted the state of %d schedules no longer defined", gone)

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        log.info("scheduler running %d periodic schedules", len(self._schedules))
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="conveyor-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(5.0)

    def _loop(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            due = self.next_due()
            if due is not None and not self._first and due > self._now():
                try:
                    self.prepare(due)
                except Exception as exc:  # built again when due; a broken one raises there
                    log.debug("scheduler: could not prepare ticks: %s", exc)
            wait = LONGEST_SLEEP if due is None else min(LONGEST_SLEEP, due - self._now())
            if pause:
                wait = max(wait, pause)
            if wait > 0 and self._stop.wait(wait):
                return
            due = self.next_due()
            if due is None or due > self._now():
                continue
            try:
                self.run_due()
                pause = 0.0
            except Exception as exc:
                pause = min(5.0, max(0.25, pause * 2))
                log.warning("scheduler: the store failed (%s); trying again in %.2f s", exc, pause)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
