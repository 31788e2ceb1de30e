"""Traced apps for tests/worker/test_otel.py: spans go to a JSON-lines file, through the
OpenTelemetry SDK's own exporter."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from conveyor import Conveyor, Fail
from conveyor.contrib.opentelemetry import TracingMiddleware


def provider_to(path: str) -> TracerProvider:
    """A tracer provider writing each ended span as one JSON line to ``path``."""
    out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def one_line(span: ReadableSpan) -> str:
        return str(span.to_json(indent=None)) + "\n"

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=one_line)))
    return provider


def build(url: str | None, spans: str) -> Conveyor:
    """An app on ``url`` whose spans go to the file ``spans``, with three tasks."""
    app = Conveyor(url, middleware=[TracingMiddleware(provider_to(spans))])

    @app.task(name="otel.ok")
    def ok(n: int) -> int:
        return n * 2

    @app.task(name="otel.boom", retries=1, backoff=0)
    def boom() -> None:
        raise ConnectionError("upstream refused")

    @app.task(name="otel.refuse", retries=3)
    async def refuse() -> None:
        raise Fail("not today")

    return app
