"""How the end of one run becomes what the store records: the rare paths of the worker."""

from __future__ import annotations

import traceback
from typing import Any

from ..errors import Fail, Retry, Snooze
from ..job import Failure, JobRecord
from ..redaction import MAX_TRACEBACK_LENGTH, redact
from ..retry import Backoff, delay_for


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure(
    record: JobRecord,
    exc: BaseException,
    backoff: Backoff | None,
    now: float,
    *,
    error: str | None = None,
    with_traceback: bool = True,
) -> Failure:
    """The failure to record for ``exc``: another attempt later, or ``dead``.

    ``Fail`` is dead at once; ``Retry`` waits its own delay; ``Snooze`` waits its delay
    without spending an attempt; anything else retries with the backoff policy while attempts
    are left.
    """
    tb = None
    if with_traceback and exc.__traceback__ is not None:
        tb = redact("".join(traceback.format_exception(exc)), MAX_TRACEBACK_LENGTH)
    if isinstance(exc, Fail):
        return Failure(record.id, redact(error or f"Fail: {exc.reason}"), tb, None)
    if isinstance(exc, Snooze):
        # Not a failure: no error or traceback is recorded, and no attempt is spent.
        return Failure(record.id, str(exc), None, now + exc.delay, snoozed=True)
    text = redact(error or describe(exc))
    if record.attempts >= record.max_attempts:
        return Failure(record.id, text, tb, None)
    if isinstance(exc, Retry) and exc.delay is not None:
        delay = max(0.0, float(exc.delay))
    else:
        delay = delay_for(backoff, record.attempts)
    return Failure(record.id, text, tb, now + delay)


def dead(record: JobRecord, reason: str) -> Failure:
    """A job that can never run (bad payload, unknown task): dead at once, no retries."""
    return Failure(record.id, redact(reason), None, None)


Outcome = tuple[str, bytes | None] | Failure


def is_json_result(value: Any) -> str | None:
    """None if ``value`` is a JSON value, else why not."""
    from ..codec import check_json

    try:
        check_json(value, "the result")
    except TypeError as exc:
        return str(exc)
    return None
