"""Exception types. Each message names the bad value and says what to do instead."""

from __future__ import annotations

#: The longest snooze: a century, as the longest delay.
MAX_SNOOZE = 100 * 365.25 * 86400


class ConveyorError(Exception):
    """Base class of every error conveyor raises on purpose."""


class JobFailed(ConveyorError):
    """Raised by ``Job.result()`` when the job ended in ``dead`` or ``cancelled``."""

    def __init__(self, job_id: str, state: str, error: str | None) -> None:
        self.job_id = job_id
        self.state = state
        self.error = error
        super().__init__(f"job {job_id} is {state}: {error or 'no error recorded'}")


class StoreUnavailable(ConveyorError, ConnectionError):
    """The store could not be reached (after the store's own retries). A ``ConnectionError``,
    so code that already handles network errors handles this one too; nothing was written."""


class StoreFull(StoreUnavailable):
    """The store refuses writes because it is out of memory (Redis at ``maxmemory`` with the
    ``noeviction`` policy). A ``StoreUnavailable``: nothing of the refused call was written,
    except the jobs listed in ``stored`` (the chunks of a streamed ``enqueue_many`` written
    before the store filled up). Workers keep draining a full store: completions free
    memory; meanwhile raise ``maxmemory``, lower ``result_ttl`` or enqueue later."""

    def __init__(self, message: str, stored: list[str] | None = None) -> None:
        super().__init__(message)
        self.stored: list[str] = list(stored or [])


class QueueFull(ConveyorError):
    """Raised at enqueue when a queue already holds its configured maximum of jobs."""


class PayloadTooLarge(ConveyorError, ValueError):
    """Raised at enqueue when an encoded job is larger than the configured maximum."""


class SchemaError(ConveyorError):
    """The store's schema is newer than this version of conveyor knows, or is damaged."""


class ConfigurationError(ConveyorError, ValueError):
    """A URL, option or task definition that cannot work."""


class UnknownDependency(ConveyorError, ValueError):
    """Raised at enqueue when ``using(after=...)`` names a job the store does not hold and
    that is too young to have been pruned after completing (see docs/workflows.md);
    nothing was stored."""

    def __init__(self, job_id: str, dependency: str) -> None:
        self.job_id = job_id
        self.dependency = dependency
        super().__init__(
            f"job {job_id} waits for job {dependency}, which the store does not hold (a wrong "
            "id, or a job deleted before it completed); nothing was stored"
        )


class Retry(Exception):
    """Raise inside a task to ask for another attempt after ``delay`` seconds.

    The attempt still counts; when no attempts are left the job goes to ``dead``.
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        self.delay = delay
        self.reason = reason
        super().__init__(reason)


class Snooze(Exception):
    """Raise inside a task to run it again after ``delay`` seconds without counting this
    attempt against its retries: the job goes back to ``scheduled`` and its snooze counter
    (``app.get_job(id).snoozes``) goes up by one. For "not now" rather than "failed": a
    resource that is busy, a rate limit of someone else's API.
    """

    def __init__(self, delay: float = 0.0) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_SNOOZE:
            raise ValueError(
                f"Snooze(delay) takes seconds from 0 to {MAX_SNOOZE:.0f} (a century), not {delay!r}"
            )
        self.delay = float(delay)
        super().__init__(f"snoozed for {self.delay:g} s")


class Fail(Exception):
    """Raise inside a task to send the job straight to ``dead``, skipping any retries left."""

    def __init__(self, reason: str = "failed") -> None:
        self.reason = reason
        super().__init__(reason)


class JobTimeout(BaseException):
    """Raised inside a running task when it outlives its ``timeout``.

    A BaseException, like ``asyncio.CancelledError``, so that a task's ``except Exception``
    does not swallow it and keep running.
    """


class JobCancelled(BaseException):
    """Raised inside a running sync task when ``app.cancel`` asked its job to stop (an async
    task gets ``asyncio.CancelledError``). A BaseException for the reason ``JobTimeout`` is."""


class BatchClosed(ConveyorError):
    """Raised by ``Batch.add`` (and ``app.batch(parent=...)``) when the batch is not open:
    every job it counts has ended, so its callbacks were decided; or there is no such batch."""
