"""When a schedule's ticks fall: cron expressions in an IANA zone (cronsim), or every N seconds.

A tick is an instant, seconds since the epoch. Every scheduler computes the same ticks from the
same definition, which is what lets the store key a tick by (schedule name, tick time) and
enqueue it once however many schedulers offer it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..errors import ConfigurationError

#: The shortest interval of ``every=``: each tick is a write to the store.
MIN_EVERY = 1.0


def zone(name: object, schedule: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ``ConfigurationError`` naming it."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"schedule {schedule!r}: tz must be an IANA zone name such as 'Europe/Berlin', not {name!r}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"schedule {schedule!r}: unknown time zone {name!r} ({exc}); use an IANA name such as "
            "'Europe/Berlin' or 'UTC' (on a system without /usr/share/zoneinfo, pip install tzdata)"
        ) from None


@dataclass(frozen=True)
class Cron:
    """Ticks of a cron expression (5 fields, or 6 with seconds first) read in ``zone``.

    DST follows cronsim, which follows Debian's cron: a job at a fixed time of day runs once
    when the clock falls back (in the first of the repeated hour) and, when the clock jumps
    forward over its time, right after the gap; expressions with ``*`` in the minute or hour
    field run by elapsed time, so in both passes of a repeated hour."""

    expression: str
    zone: tzinfo

    def next_after(self, t: float) -> float | None:
        """The first tick strictly after ``t``; None if the expression never fires again."""
        start = datetime.fromtimestamp(math.floor(t), UTC).astimezone(self.zone)
        try:
            return next(CronSim(self.expression, start)).timestamp()
        except StopIteration:
            return None

    def latest_at_or_before(self, t: float) -> float | None:
        """The last tick at or before ``t``; None if there is none within cronsim's reach."""
        start = datetime.fromtimestamp(math.floor(t) + 1, UTC).astimezone(self.zone)
        try:
            found = next(CronSim(self.expression, start, reverse=True)).timestamp()
        except StopIteration:
            return None
        # Searching backwards, cronsim moves a time that falls in a spring-forward gap to
        # just after it, which may be after ``t``.
        return found if found <= t else None

    def describe(self) -> str:
        return self.expression


@dataclass(frozen=True)
class Every:
    """A tick every ``seconds``, at the multiples of ``seconds`` since the epoch: every
    scheduler agrees on them without asking anyone, and no zone or DST applies."""

    seconds: float

    def next_after(self, t: float) -> float | None:
        return (math.floor(t / self.seconds) + 1) * self.seconds

    def latest_at_or_before(self, t: float) -> float | None:
        return math.floor(t / self.seconds) * self.seconds

    def describe(self) -> str:
        seconds = self.seconds
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"every {seconds / size:g}{unit}"
        return f"every {seconds:g}s"


Timing = Cron | Every


def timing(cron: object, every: object, tz: tzinfo, schedule: str) -> Timing:
    """A schedule's timing from ``cron=`` or ``every=`` (exactly one), checked: a bad
    expression, interval or one that never fires is a ``ConfigurationError`` naming it."""
    if (cron is None) == (every is None):
        raise ConfigurationError(f"schedule {schedule!r}: give cron= or every=, exactly one of them")
    if every is not None:
        seconds = every.total_seconds() if isinstance(every, timedelta) else every
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise ConfigurationError(
                f"schedule {schedule!r}: every= takes seconds or a timedelta, not {every!r}"
            )
        if seconds < MIN_EVERY:
            raise ConfigurationError(
                f"schedule {schedule!r}: every={every!r} is under {MIN_EVERY:g} second; "
                "each tick is a write to the store"
            )
        return Every(float(seconds))
    if not isinstance(cron, str):
        raise ConfigurationError(f"schedule {schedule!r}: cron= takes a cron expression string, not {cron!r}")
    try:
        CronSim(cron, datetime.now(UTC).astimezone(tz))
    except CronSimError as exc:
        raise ConfigurationError(f"schedule {schedule!r}: invalid cron expression {cron!r}: {exc}") from None
    found = Cron(cron, tz)
    if found.next_after(datetime.now(UTC).timestamp()) is None:
        raise ConfigurationError(f"schedule {schedule!r}: cron expression {cron!r} never fires")
    return found
