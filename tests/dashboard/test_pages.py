"""Pages, filters, pagination, actions, /metrics and the CLI command, over a real store."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from conveyor.dashboard import cli as dashboard_cli
from conveyor.metrics import ConveyorCollector, RunTimeMetrics
from conveyor.periodic import Scheduler
from tests.dashboard.conftest import ClientFactory
from tests.dashboard.helpers import PASSWORD, TOKEN, Demo, csrf_from, dead_job, drain, log_in

HTML = {"accept": "text/html"}


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', html)


def test_pagination_never_loads_everything(make_client: ClientFactory, demo: Demo) -> None:
    send = demo.app.tasks["mail.send"]
    jobs = demo.app.enqueue_many([send.job(f"u{i}@example.com", f"n{i}") for i in range(25)])
    in_claim_order = [j.id for j in jobs]
    client = make_client()
    log_in(client)
    first = client.get("/jobs?state=pending&limit=10", headers=HTML).text
    assert _ids(first) == in_claim_order[:10]
    assert "1\N{EN DASH}10 of 25" in first
    # Each page links the next by a cursor (the last job's place), never by an offset.
    second_link = re.search(r'rel="next" href="([^"]+)"', first)
    assert second_link and "after=" in second_link[1] and "offset" not in second_link[1]
    second = client.get(html.unescape(second_link[1]), headers=HTML).text
    assert _ids(second) == in_claim_order[10:20]
    assert (
        "11\N{EN DASH}20 of 25" in second and 'rel="first" href="/jobs?state=pending&amp;limit=10"' in second
    )
    third_link = re.search(r'rel="next" href="([^"]+)"', second)
    assert third_link
    last = client.get(html.unescape(third_link[1]), headers=HTML).text
    assert _ids(last) == in_claim_order[20:]
    assert 'rel="next"' not in last
    # silly values are clamped or ignored, never an error or an unbounded query
    assert len(_ids(client.get("/jobs?state=pending&limit=100000", headers=HTML).text)) == 25
    assert client.get("/jobs?state=nope&limit=x&offset=-5", headers=HTML).status_code == 200
    assert (
        _ids(client.get("/jobs?state=pending&limit=10&after=garbage", headers=HTML).text)
        == in_claim_order[:10]
    )


def test_a_search_says_how_many_jobs_it_read(make_client: ClientFactory, demo: Demo) -> None:
    send = demo.app.tasks["mail.send"]
    demo.app.enqueue_many([send.job(f"u{i}@example.com", f"n{i}") for i in range(25)])
    client = make_client()
    log_in(client)
    found = client.get("/jobs?state=pending&q=u7%40", headers=HTML).text
    assert len(_ids(found)) == 1
    assert "Searched the first 25 pending jobs of this list." in found
    none = client.get("/jobs?state=dead&q=nobody", headers=HTML).text
    assert "No dead jobs match these filters among the 0 searched." in none


def test_filters_by_queue_task_and_argument_text(make_client: ClientFactory, demo: Demo) -> None:
    tasks = demo.app.tasks
    a = tasks["mail.send"].enqueue("alice@example.com", 'say "hi"')
    b = tasks["mail.send"].enqueue("bob@example.com", "hello")
    c = tasks["images.resize"].enqueue("alice.png", 10, 10)
    d = tasks["reports.build"].enqueue(42)
    client = make_client()
    log_in(client)

    def ids(query: str) -> set[str]:
        return set(_ids(client.get(f"/jobs?state=pending&{query}", headers=HTML).text))

    assert ids("queue=mail") == {a.id, b.id}
    assert ids("task=mail.send") == {a.id, b.id}
    assert ids("task=images.resize") == {c.id}
    assert ids("q=alice") == {a.id, c.id}
    assert ids("q=" + 'say "hi"') == {a.id}
    assert ids("q=42") == {d.id}
    assert ids("task=mail.send&q=alice") == {a.id}
    assert ids("task=mail.send&q=nobody") == set()
    assert ids("queue=default&q=alice") == {c.id}


def test_task_and_text_together_paginate(make_client: ClientFactory, demo: Demo) -> None:
    send = demo.app.tasks["mail.send"]
    resize = demo.app.tasks["images.resize"]
    specs = []
    for i in range(30):
        specs.append(send.job(f"match{i}@example.com" if i % 3 == 0 else f"other{i}@example.com", "s"))
        specs.append(resize.job(f"match{i}.png", 1, 1))
    demo.app.enqueue_many(specs)
    client = make_client()
    log_in(client)
    seen: list[str] = []
    url = "/jobs?state=pending&task=mail.send&q=match&limit=4"
    while url:
        html = client.get(url, headers=HTML).text
        seen += _ids(html)
        found = re.search(r'rel="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == len(set(seen)) == 10
    for job_id in seen:
        job = demo.app.get_job(job_id)
        assert job is not None and job.task == "mail.send" and "match" in job.args[0]


def test_job_actions(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    job = dead_job(demo)
    response = client.post(f"/jobs/{job.id}/retry", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{job.id}"
    assert demo.app.get_job(job.id).state == "pending"  # type: ignore[union-attr]
    page = client.get(response.headers["location"], headers=HTML).text
    assert "queued to run now" in page  # the flash message, shown once
    assert "queued to run now" not in client.get(f"/jobs/{job.id}", headers=HTML).text

    later = demo.app.tasks["reports.build"].using(delay=3600).enqueue(1)
    assert client.post(f"/jobs/{later.id}/cancel", data={"csrf_token": token}).status_code == 303
    assert demo.app.get_job(later.id).state == "cancelled"  # type: ignore[union-attr]
    assert client.post(f"/jobs/{later.id}/delete", data={"csrf_token": token}).status_code == 303
    assert demo.app.get_job(later.id) is None
    assert client.get(f"/jobs/{later.id}", headers=HTML).status_code == 404
    assert client.post(f"/jobs/{job.id}/explode", data={"csrf_token": token}).status_code == 404


def test_run_now_moves_scheduled_and_retry_jobs(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    later = demo.app.tasks["reports.build"].using(delay=3600).enqueue(5)
    html = client.get("/scheduled", headers=HTML).text
    assert f'formaction="/jobs/{later.id}/retry"' in html
    response = client.post(f"/jobs/{later.id}/retry", data={"csrf_token": token, "next": "/scheduled"})
    assert response.headers["location"] == "/scheduled"
    assert demo.app.get_job(later.id).state == "pending"  # type: ignore[union-attr]


def test_bulk_and_all_actions(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    first, second, third = (dead_job(demo, customer=f"c{i}") for i in range(3))
    response = client.post(
        "/jobs/bulk", data={"csrf_token": token, "action": "retry", "ids": [first.id, second.id]}
    )
    assert response.status_code == 303
    assert [demo.app.get_job(j.id).state for j in (first, second, third)] == ["pending", "pending", "dead"]  # type: ignore[union-attr]

    confirm = client.get("/jobs/all/delete?state=dead", headers=HTML)
    assert confirm.status_code == 200
    assert "Delete all dead jobs?" in confirm.text and "1 dead jobs" in confirm.text
    assert demo.app.get_job(third.id) is not None  # the confirmation page changed nothing
    client.post("/jobs/all/delete", data={"csrf_token": token, "state": "dead"})
    assert demo.app.get_job(third.id) is None

    fourth = dead_job(demo)
    assert "Retry all dead jobs?" in client.get("/jobs/all/retry?state=dead", headers=HTML).text
    client.post("/jobs/all/retry", data={"csrf_token": token, "state": "dead"})
    assert demo.app.get_job(fourth.id).state == "pending"  # type: ignore[union-attr]
    bad = client.post("/jobs/all/retry", data={"csrf_token": token, "state": "active"}, headers=HTML)
    assert bad.status_code == 400


def test_queue_pause_resume_purge(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    send = demo.app.tasks["mail.send"]
    waiting = [send.enqueue("a@example.com", "x"), send.using(delay=600).enqueue("b@example.com", "y")]
    done = send.enqueue("c@example.com", "z")
    drain(demo.app)
    waiting.append(send.enqueue("d@example.com", "w"))
    assert client.post("/queues/mail/pause", data={"csrf_token": token}).status_code == 303
    assert demo.app.stats().paused == frozenset({"mail"})
    html = client.get("/queues", headers=HTML).text
    assert "paused" in html and ">Resume<" in html
    client.post("/queues/mail/resume", data={"csrf_token": token})
    assert demo.app.stats().paused == frozenset()

    confirm = client.get("/queues/mail/purge", headers=HTML).text
    assert "Purge queue mail?" in confirm
    assert all(demo.app.get_job(j.id) is not None for j in waiting)
    client.post("/queues/mail/purge", data={"csrf_token": token})
    assert all(demo.app.get_job(j.id) is None for j in waiting[1:])
    assert demo.app.get_job(done.id).state == "completed"  # type: ignore[union-attr]


def test_workers_page_and_stats_feed(make_client: ClientFactory, demo: Demo) -> None:
    import threading

    worker = demo.app.worker(concurrency=3)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        from tests.dashboard.helpers import wait_for

        wait_for(lambda: bool(demo.app.workers()), 10, "a heartbeat")
        client = make_client()
        log_in(client)
        html = client.get("/workers", headers=HTML).text
        info = demo.app.workers()[0]
        assert info.host in html and str(info.pid) in html and "alive" in html and "0 / 3" in html
    finally:
        worker.stop()
        thread.join(10)
    feed = client.get("/api/stats", headers={"accept": "application/json"}).json()
    assert len(feed["history"]["t"]) == 60
    assert feed["history"]["t"] == sorted(feed["history"]["t"])


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_from_the_store(make_client: ClientFactory, demo: Demo) -> None:
    dead_job(demo)
    demo.app.tasks["mail.send"].enqueue("a@example.com", "x")
    demo.app.pause("mail")
    client = make_client()
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers={"authorization": f"Bearer {PASSWORD}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = _metrics(response.text)
    assert values[("conveyor_jobs", (("queue", "billing"), ("state", "dead")))] == 1
    assert values[("conveyor_jobs", (("queue", "mail"), ("state", "pending")))] == 1
    assert values[("conveyor_processed_total", ())] == 1  # every finished run, failed ones too
    assert values[("conveyor_failed_total", ())] == 1
    assert values[("conveyor_queue_paused", (("queue", "mail"),))] == 1
    assert values[("conveyor_queue_paused", (("queue", "billing"),))] == 0
    assert values[("conveyor_oldest_pending_seconds", (("queue", "mail"),))] >= 0
    assert values[("conveyor_workers_alive", ())] == 0

    public = make_client(token=TOKEN, metrics_public=True)
    assert public.get("/metrics").status_code == 200
    assert public.get("/api/stats", headers={"accept": "application/json"}).status_code == 401
    assert (
        make_client(metrics=False)
        .get("/metrics", headers={"authorization": f"Bearer {PASSWORD}"})
        .status_code
        == 404
    )


def test_collector_and_run_time_middleware(demo: Demo) -> None:
    registry = CollectorRegistry()
    registry.register(ConveyorCollector(demo.app))
    histograms = CollectorRegistry()
    demo.app.add_middleware(RunTimeMetrics(histograms))
    demo.app.tasks["images.resize"].enqueue("a.png", 1, 1)
    dead_job(demo)
    assert registry.get_sample_value("conveyor_processed_total") == 2
    assert registry.get_sample_value("conveyor_failed_total") == 1
    assert registry.get_sample_value("conveyor_jobs", {"queue": "default", "state": "completed"}) == 1
    count = histograms.get_sample_value(
        "conveyor_job_run_seconds_count", {"task": "images.resize", "outcome": "completed"}
    )
    assert count == 1
    failed = histograms.get_sample_value(
        "conveyor_job_run_seconds_count", {"task": "billing.charge", "outcome": "failed"}
    )
    assert failed == 1


# -- the CLI command -----------------------------------------------------------------------------
def _served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """No dashboard secret in the environment, and uvicorn.run recording its calls instead of
    serving: (args, kwargs) each."""
    monkeypatch.delenv("CONVEYOR_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("CONVEYOR_DASHBOARD_TOKEN", raising=False)
    calls: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append((a, k)))
    return calls


def test_cli_refuses_a_public_address_without_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _served(monkeypatch)
    result = CliRunner().invoke(
        dashboard_cli.dashboard_command, ["tests.dashboard.cli_app:app", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "needs a password" in result.output
    assert calls == []


def test_cli_serves_with_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _served(monkeypatch)
    runner = CliRunner()
    result = runner.invoke(
        dashboard_cli.dashboard_command,
        ["tests.dashboard.cli_app:app", "--host", "0.0.0.0", "--port", "9999", "--read-only"],
        env={"CONVEYOR_DASHBOARD_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    (args, kwargs) = calls[0]
    assert kwargs["host"] == "0.0.0.0" and kwargs["port"] == 9999
    settings = args[0].state.dashboard.settings
    assert settings.read_only and not settings.insecure_no_auth and settings.secrets == (PASSWORD.encode(),)
    assert "token=" not in result.output  # a configured secret: no sign-in link is made
    result = runner.invoke(dashboard_cli.dashboard_command, ["tests.dashboard.cli_app:nothing"])
    assert "nothing" in result.output
    assert result.exit_code != 0
    result = runner.invoke(dashboard_cli.dashboard_command, ["tests.dashboard.cli_app"])
    assert result.exit_code != 0


def test_cli_on_loopback_without_a_secret_makes_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _served(monkeypatch)
    runner = CliRunner()
    result = runner.invoke(dashboard_cli.dashboard_command, ["tests.dashboard.cli_app:app", "--port", "8123"])
    assert result.exit_code == 0, result.output
    link = re.search(r"(http://127\.0\.0\.1:8123/)\?token=([\w-]+)", result.output)
    assert link, result.output
    settings = calls[0][0][0].state.dashboard.settings
    assert settings.secrets == (link.group(2).encode(),) and not settings.insecure_no_auth
    assert len(link.group(2)) >= 32
    again = runner.invoke(dashboard_cli.dashboard_command, ["tests.dashboard.cli_app:app", "--port", "8123"])
    assert link.group(2) not in again.output  # a new token at every start


def test_cli_public_url_sets_the_root_path_and_the_link(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _served(monkeypatch)
    runner = CliRunner()
    args = ["tests.dashboard.cli_app:app", "--public-url", "https://ops.example.com/jobs"]
    result = runner.invoke(dashboard_cli.dashboard_command, [*args, "--forwarded-allow-ips", "10.0.0.5"])
    assert result.exit_code == 0, result.output
    assert "https://ops.example.com/jobs/?token=" in result.output
    (asgi,), kwargs = calls[0]
    assert kwargs["root_path"] == "/jobs"
    assert kwargs["proxy_headers"] is True and kwargs["forwarded_allow_ips"] == "10.0.0.5"
    assert asgi.state.dashboard.settings.public_origin == "https://ops.example.com"
    bad = runner.invoke(dashboard_cli.dashboard_command, [args[0], "--public-url", "ops"])
    assert bad.exit_code == 2 and "--public-url" in bad.output


def test_cli_insecure_no_auth_is_loud(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _served(monkeypatch)
    runner = CliRunner()
    help_text = runner.invoke(dashboard_cli.dashboard_command, ["--help"]).output
    assert "DANGEROUS" in help_text
    args = ["tests.dashboard.cli_app:app", "--insecure-no-auth"]
    result = runner.invoke(dashboard_cli.dashboard_command, args)
    assert result.exit_code == 0, result.output
    assert "token=" not in result.output
    settings = calls[0][0][0].state.dashboard.settings
    assert settings.insecure_no_auth and settings.secrets == ()


def test_cli_opens_a_store_by_url_without_an_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("CONVEYOR_APP", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml naming an app here
    calls = _served(monkeypatch)
    url = f"sqlite:///{tmp_path}/other.db"
    result = CliRunner().invoke(dashboard_cli.dashboard_command, ["--url", url, "--namespace", "billing"])
    assert result.exit_code == 0, result.output
    shown = calls[0][0][0].state.dashboard.app
    assert shown.url == url and shown.namespace == "billing"


def test_the_dashboard_command_does_not_import_the_cli() -> None:
    import subprocess
    import sys

    code = "import sys, conveyor.dashboard.cli; print('conveyor.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_running_job_shows_progress_and_meta_and_can_be_stopped(
    make_client: ClientFactory, demo: Demo
) -> None:
    import time

    job = demo.app.tasks["reports.build"].using(meta={"tenant": "<acme>"}).enqueue(7)
    backend = demo.app.backend
    (claimed,) = backend.fetch(None, 1, "w-1", 30.0, time.time())
    assert claimed.id == job.id
    assert backend.set_progress(
        job.id, "w-1", b'{"done": 40, "total": 100, "message": "<b>rows</b>", "at": 0}'
    )
    client = make_client()
    log_in(client)
    page = client.get(f"/jobs/{job.id}", headers=HTML).text
    assert '<progress value="40" max="100">' in page and "40.0%" in page
    assert "&lt;b&gt;rows&lt;/b&gt;" in page and "<b>rows</b>" not in page  # escaped
    assert "&#34;tenant&#34;: &#34;&lt;acme&gt;&#34;" in page  # the metadata, escaped
    assert ">Stop<" in page
    token = csrf_from(page)
    response = client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    assert "asked to stop" in client.get(response.headers["location"], headers=HTML).text
    stopping = client.get(f"/jobs/{job.id}", headers=HTML).text
    assert 'id="stopping"' in stopping and "cancelled by the dashboard (from 203.0.113.7)" in stopping
    assert ">Stop<" not in stopping
    assert backend.cancel_requests("w-1", ["reports"]) == [
        (job.id, "cancelled by the dashboard (from 203.0.113.7)")
    ]


def test_periodic_page_run_now_and_metrics(make_client: ClientFactory, demo: Demo) -> None:
    app = demo.app
    app.periodic(app.tasks["reports.build"], cron="0 6 * * *", tz="Europe/Berlin", args=(7,), name="nightly")
    app.periodic(app.tasks["images.resize"], every=3600, args=("logo.png", 64, 64), name="logo")
    scheduler = Scheduler(app)
    scheduler.run_due(time.time() - 2 * 86400)
    ticked = scheduler.run_due(time.time())  # the nightly's and the hourly's latest ticks
    stored = [app.get_job(job.id) for job in ticked]
    assert {job.meta["periodic"] for job in stored if job and job.meta} == {"nightly", "logo"}
    client = make_client()
    token = log_in(client)
    page = client.get("/periodic", headers=HTML).text
    assert 'href="/periodic" class="active"' in page
    assert "0 6 * * *" in page and "Europe/Berlin" in page and "every 1h" in page
    assert f'href="/jobs/{ticked[0].id}"' in page and "Run now" in page

    refused = client.post("/periodic/logo/run", data={"csrf_token": "guess"})
    assert refused.status_code == 403
    response = client.post("/periodic/logo/run", data={"csrf_token": token, "next": "/periodic"})
    assert response.status_code == 303 and response.headers["location"] == "/periodic"
    run = app.jobs(meta={"periodic": "logo"}, state="pending")
    assert len(run) == 2 and {tuple(j.args) for j in run} == {("logo.png", 64, 64)}
    assert "Enqueued logo now" in client.get("/periodic", headers=HTML).text
    assert client.post("/periodic/nothing/run", data={"csrf_token": token}).status_code == 404
    assert client.post("/periodic/logo/run", data={"csrf_token": token}).status_code == 303
    read_only = make_client(read_only=True)
    read_only_token = log_in(read_only)
    assert "Run now" not in read_only.get("/periodic", headers=HTML).text
    assert read_only.post("/periodic/logo/run", data={"csrf_token": read_only_token}).status_code == 403

    metrics = client.get("/metrics").text
    since = {
        sample.labels["schedule"]: sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "conveyor_periodic_seconds_since_enqueue"
        for sample in family.samples
    }
    assert set(since) == {"nightly", "logo"} and all(0 <= v < 60 for v in since.values())
