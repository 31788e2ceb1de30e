"""Traces for jobs with OpenTelemetry (``pip install 'conveyor[otel]'``).

``TracingMiddleware`` makes a producer span when a job is enqueued and a consumer span around
each run, in the same trace: the W3C trace context of the producer span travels with the job
in its metadata (``meta["otel"]``), so a run on another machine, hours later, continues the
trace of the request that enqueued it. The consumer span is a child of the producer span and
also carries a link to it, as the messaging conventions suggest for runs that are not part of
the enqueuing request. Each run is one span: retries show as several spans with rising
``messaging.message.delivery_count``; an error is recorded on its span with the exception.

    from conveyor.contrib.opentelemetry import TracingMiddleware
    app = Conveyor(url, middleware=[TracingMiddleware()])    # in the app and in workers

Attributes follow OpenTelemetry's semantic conventions for messaging (``messaging.system``
is ``conveyor``; the destination is the queue), plus ``conveyor.task``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Link, Span, SpanKind, TracerProvider

from .. import __version__
from ..middleware import Enqueuing, Middleware
from ..running import CurrentJob

__all__ = ["TracingMiddleware"]

SYSTEM = "conveyor"


class TracingMiddleware(Middleware):
    """Producer spans at enqueue, consumer spans around runs, one trace from end to end.

    ``tracer_provider`` defaults to the global one; ``meta_key`` is where the trace context
    travels in the job's metadata.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, meta_key: str = "otel") -> None:
        self.tracer = trace.get_tracer("conveyor", __version__, tracer_provider=tracer_provider)
        self.meta_key = meta_key

    def on_enqueue(self, job: Enqueuing) -> None:
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "enqueue",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "conveyor.task": job.task,
        }
        with self.tracer.start_as_current_span(
            f"send {job.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            inject(carrier)
            if carrier:
                job.meta[self.meta_key] = carrier

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        with self._consuming(job):
            return call_next()

    async def around_run_async(self, job: CurrentJob, call_next: Callable[[], Awaitable[Any]]) -> Any:
        with self._consuming(job):
            return await call_next()

    @contextmanager
    def _consuming(self, job: CurrentJob) -> Iterator[Span]:
        carrier = job.meta.get(self.meta_key)
        parent: Context | None = extract(carrier) if isinstance(carrier, dict) else None
        links = []
        if parent is not None:
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links.append(Link(producer))
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "run",
            "messaging.destination.name": job.queue,
            "messaging.message.id": job.id,
            "messaging.message.delivery_count": job.attempts,
            "conveyor.task": job.task,
        }
        with self.tracer.start_as_current_span(
            f"process {job.queue}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ) as span:
            yield span
