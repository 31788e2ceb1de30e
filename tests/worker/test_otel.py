"""OpenTelemetry across processes: the test enqueues inside a span with its own tracer
provider, a real ``conveyor worker`` process runs the jobs with another, and both write their
spans with the SDK's exporter to files; the worker's spans must continue the test's traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from tests.harness import WorkerProcesses
from tests.worker.otel_tasks import build, provider_to

TARGET = "tests.worker.otel_app:app"


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_job_continues_the_trace_that_enqueued_it(store_url: str, tmp_path: Path, pool: str) -> None:
    producer_file, consumer_file = tmp_path / "app.jsonl", tmp_path / "worker.jsonl"
    app = build(store_url, str(producer_file))
    tasks = app.tasks
    requests = trace.get_tracer("test", tracer_provider=provider_to(str(producer_file)))
    with requests.start_as_current_span("request") as request:
        jobs = [tasks["otel.ok"].enqueue(21), tasks["otel.boom"].enqueue(), tasks["otel.refuse"].enqueue()]
    for job in jobs:
        stored = app.get_job(job.id)
        assert stored is not None and stored.meta is not None and stored.meta["otel"]["traceparent"]
    workers = WorkerProcesses(TARGET, app, tmp_path, store_url, CONVEYOR_SPANS=str(consumer_file))
    try:
        assert workers.start("--burst", "--pool", pool).wait(90) == 0, workers.logs()
    finally:
        workers.close()

    trace_id = format(request.get_span_context().trace_id, "#034x")
    produced = {
        s["attributes"]["messaging.message.id"]: s
        for s in _spans(producer_file)
        if s["kind"] == "SpanKind.PRODUCER"
    }
    consumed: dict[str, list[dict[str, Any]]] = {}
    for span in _spans(consumer_file):
        assert span["kind"] == "SpanKind.CONSUMER"
        consumed.setdefault(span["attributes"]["messaging.message.id"], []).append(span)
    assert set(produced) == set(consumed) == {j.id for j in jobs}
    for job in jobs:
        send = produced[job.id]
        assert send["context"]["trace_id"] == trace_id  # the producer span is the request's child
        assert send["name"] == "send default" and send["attributes"]["messaging.system"] == "conveyor"
        for run in consumed[job.id]:
            assert run["context"]["trace_id"] == trace_id
            assert run["parent_id"] == send["context"]["span_id"]
            assert [link["context"]["span_id"] for link in run["links"]] == [send["context"]["span_id"]]
            assert run["attributes"]["conveyor.task"] == send["attributes"]["conveyor.task"]
    ok_runs, boom_runs, refuse_runs = (consumed[j.id] for j in jobs)
    assert [r["status"]["status_code"] for r in ok_runs] == ["UNSET"]
    # Two attempts of the failing job: two spans, each with its error and its delivery count.
    assert sorted(r["attributes"]["messaging.message.delivery_count"] for r in boom_runs) == [1, 2]
    for run in boom_runs + refuse_runs:
        assert run["status"]["status_code"] == "ERROR"
        assert any(e["name"] == "exception" for e in run["events"])
    assert "upstream refused" in json.dumps(boom_runs)
    assert len(refuse_runs) == 1  # Fail: no retry
