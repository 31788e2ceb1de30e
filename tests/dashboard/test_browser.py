"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The dashboard runs under uvicorn on a free loopback port over a real SQLite store, with a real
worker thread running the jobs. Screenshots of each page land in build/screenshots/
(docs/screenshots/ with `make screenshots`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conveyor.periodic import Scheduler
from conveyor.worker.worker import Worker
from tests.dashboard.helpers import PASSWORD, XSS_ARG, XSS_ERROR, XSS_IMG, Demo, build_app, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
# `make screenshots` points this at docs/screenshots; a test run leaves the work tree alone.
SHOTS = ROOT / os.environ.get("CONVEYOR_SCREENSHOTS_DIR", "build/screenshots")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Live:
    demo: Demo
    url: str
    worker: Worker
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Dashboard (uvicorn thread) + worker (thread) over one SQLite file, for the module."""
    db = tmp_path_factory.mktemp("browser") / "jobs.db"
    demo = build_app(f"sqlite:///{db}")
    _seed(demo)
    port = _free_port()
    config = uvicorn.Config(
        demo.app.dashboard(password=PASSWORD, refresh=1.0),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server_thread = threading.Thread(target=server.run, daemon=True)
    server_thread.start()
    wait_for(lambda: server.started, 10, "uvicorn to start")
    worker = demo.app.worker(concurrency=4)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    wait_for(lambda: bool(demo.app.workers()), 10, "the worker's first heartbeat")
    wait_for(lambda: demo.app.stats().total("pending") == 0, 15, "the seed jobs to run")
    _seed_failures(demo)
    try:
        yield Live(demo, f"http://127.0.0.1:{port}", worker)
    finally:
        worker.stop()
        worker_thread.join(15)
        server.should_exit = True
        server_thread.join(10)
        demo.app.close()


def _seed(demo: Demo) -> None:
    """A store that looks like a product's: mail, reports, billing and images jobs."""
    tasks = demo.app.tasks
    jobs = [tasks["mail.send"].job(f"user{i}@example.com", "Your receipt", body="Thanks!") for i in range(24)]
    jobs += [tasks["images.resize"].job(f"uploads/{i:04d}.jpg", 640, 480) for i in range(18)]
    jobs += [tasks["reports.build"].job(i, fmt="csv" if i % 2 else "pdf") for i in range(8)]
    demo.app.enqueue_many(jobs)
    for i in range(6):
        tasks["reports.build"].using(delay=3600 * (i + 1)).enqueue(100 + i, fmt="xlsx")
    tasks["mail.send"].using(delay=900).enqueue("team@example.com", "Weekly digest")


def _seed_failures(demo: Demo) -> None:
    """Declined charges (dead at once) and failing reports (retrying in 10 minutes)."""
    tasks = demo.app.tasks
    demo.switches.set("billing", True)
    demo.switches.set("reports", True)
    failing = [tasks["billing.charge"].enqueue(c, 4900) for c in ("cus_Lw2Q", "cus_9Xk1", "cus_Hb07")]
    failing += [tasks["reports.build"].enqueue(n, fmt="pdf") for n in (2024, 2025)]

    def settled() -> bool:
        return all(demo.app.get_job(j.id).state in ("dead", "retry") for j in failing)  # type: ignore[union-attr]

    wait_for(settled, 10, "the failing seed jobs to fail")
    demo.switches.set("billing", False)
    demo.switches.set("reports", False)


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    page: Any
    dialogs: list[str]
    csp_violations: list[str]
    errors: list[str]


@pytest.fixture
def page(browser: Any, live: Live) -> Iterator[Watched]:
    """A logged-out page in a fresh context; records dialogs, CSP violations and JS errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=live.url)
    page = context.new_page()
    page.set_default_timeout(10000)
    watched = Watched(page, [], [], [])

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            watched.csp_violations.append(text)
        elif message.type == "error" and not text.startswith("Failed to load resource"):
            watched.errors.append(text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    yield watched
    context.close()
    assert watched.dialogs == [], watched.dialogs
    assert watched.csp_violations == [], watched.csp_violations
    assert watched.errors == [], watched.errors


def _log_in(page: Any, password: str = PASSWORD) -> None:
    page.goto("/")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_log_in_and_see_every_page(page: Watched, live: Live) -> None:
    p = page.page
    p.goto("/")
    p.wait_for_url(re.compile(r"/login\?next=%2F$"))
    _shot(p, "login")
    p.fill("input[name=password]", "not the password")
    p.click("button[type=submit]")
    assert p.locator(".alert").inner_text() == "Wrong password or token."
    p.fill("input[name=password]", PASSWORD)
    p.click("button[type=submit]")
    p.wait_for_url(re.compile(r"/$"))

    p.wait_for_selector("#chart canvas")  # uPlot drew the chart from /api/stats
    assert p.locator(".card").first.is_visible()
    assert p.locator("#queue-table").get_by_text("mail", exact=True).is_visible()
    _shot(p, "overview")

    p.click("nav >> text=Queues")
    p.wait_for_selector("#queues")
    _shot(p, "queues")

    p.click("nav >> text=Jobs")
    p.click(".tab >> text=completed")
    p.wait_for_selector("tr[data-job]")
    p.select_option("select[name=limit]", "20")
    p.click("button >> text=Filter")
    p.wait_for_url("**limit=20**")
    assert p.locator("tr[data-job]").count() == 20
    _shot(p, "jobs")

    p.click("nav >> text=Scheduled")
    assert p.locator("tr[data-job]").count() == 7
    assert p.locator("td.actions").get_by_role("button", name="Run now").count() == 7
    _shot(p, "scheduled")

    p.click("nav >> text=Retries")
    assert p.locator("tr[data-job]").count() == 2
    assert p.get_by_text("warehouse query took longer").first.is_visible()
    _shot(p, "retries")

    p.click("nav >> text=Dead")
    assert p.locator("tr[data-job]").count() >= 3
    assert p.get_by_text("card declined for cus_Lw2Q").first.is_visible()
    _shot(p, "dead")

    p.locator("tr[data-job] a.mono").first.click()
    p.wait_for_selector("#args")
    assert "card declined" in p.locator("#error").inner_text()
    assert "Traceback" in p.locator("#traceback").inner_text()
    _shot(p, "job")

    p.click("nav >> text=Workers")
    p.wait_for_selector("#workers td")
    assert p.locator("#workers").get_by_text("alive").is_visible()
    _shot(p, "workers")

    p.goto("/jobs/all/delete?state=dead")
    assert "Delete all dead jobs?" in p.locator("h1").inner_text()
    _shot(p, "confirm")


def test_retry_a_dead_job_and_watch_it_complete(page: Watched, live: Live) -> None:
    demo = live.demo
    demo.switches.set("billing", True)
    job = demo.app.tasks["billing.charge"].enqueue("cus_retry_me", 1200)
    wait_for(lambda: demo.app.get_job(job.id).state == "dead", 10, "the job to die")  # type: ignore[union-attr]
    demo.switches.set("billing", False)  # the card works now

    p = page.page
    _log_in(p)
    p.click("nav >> text=Dead")
    row = p.locator(f'tr[data-job="{job.id}"]')
    assert "card declined for cus_retry_me" in row.inner_text()
    row.locator("a.mono").click()
    p.wait_for_url(f"**/jobs/{job.id}")
    assert p.locator(".page-head .badge").inner_text() == "dead"
    p.get_by_role("button", name="Retry").click()
    p.wait_for_url(f"**/jobs/{job.id}")
    assert "queued to run now" in p.locator(".flash").inner_text()
    # the page polls with htmx until the job is final
    p.wait_for_selector(".page-head .badge.state-completed", timeout=15000)
    assert demo.app.get_job(job.id).state == "completed"  # type: ignore[union-attr]
    assert p.locator("#result").is_visible()


def test_xss_in_arguments_and_errors_shows_as_text(page: Watched, live: Live) -> None:
    demo = live.demo
    job = demo.app.tasks["evil.echo"].enqueue(XSS_ARG, XSS_IMG, note=XSS_ARG)
    wait_for(lambda: demo.app.get_job(job.id).state == "dead", 10, "the evil job to die")  # type: ignore[union-attr]

    p = page.page
    _log_in(p)
    p.goto(f"/jobs?state=dead&q={XSS_IMG}")
    row = p.locator(f'tr[data-job="{job.id}"]')
    assert json.dumps(XSS_ARG) in row.locator(".args").inner_text()
    assert XSS_ERROR in row.locator(".error-cell").inner_text()
    p.goto(f"/jobs/{job.id}")
    # arguments are shown as JSON: the payloads appear as JSON strings, as text
    assert json.dumps(XSS_ARG) in p.locator("#args").inner_text()
    assert json.dumps(XSS_IMG) in p.locator("#args").inner_text()
    assert json.dumps(XSS_ARG) in p.locator("#kwargs").inner_text()
    assert XSS_ERROR in p.locator("#error").inner_text()
    assert p.locator("main img").count() == 0  # the <img onerror> is text, not an element
    assert p.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    p.wait_for_timeout(300)
    _shot(p, "job-xss")
    # the fixture asserts: no dialog opened, no CSP violation reported, no JS error


def test_post_without_csrf_token_is_refused(page: Watched, live: Live) -> None:
    demo = live.demo
    demo.switches.set("billing", True)
    job = demo.app.tasks["billing.charge"].enqueue("cus_csrf", 100)
    wait_for(lambda: demo.app.get_job(job.id).state == "dead", 10, "the job to die")  # type: ignore[union-attr]
    demo.switches.set("billing", False)

    p = page.page
    _log_in(p)
    status = p.evaluate(
        """async (path) => {
            const r = await fetch(path, {method: "POST", body: new URLSearchParams({next: "/"})});
            return r.status;
        }""",
        f"/jobs/{job.id}/delete",
    )
    assert status == 403
    # the logged-in context's cookies, but a wrong token
    response = p.request.post(
        f"/jobs/{job.id}/delete", form={"csrf_token": "guess"}, headers={"origin": live.url}
    )
    assert response.status == 403
    assert demo.app.get_job(job.id) is not None


def test_unauthenticated_request_is_refused(browser: Any, live: Live) -> None:
    context = browser.new_context(base_url=live.url)
    try:
        api = context.request.get("/api/stats", headers={"accept": "application/json"})
        assert api.status == 401
        post = context.request.post(
            "/queues/mail/pause", form={"csrf_token": "x"}, headers={"origin": live.url}
        )
        assert post.status in (401, 403)
        assert "mail" not in live.demo.app.stats().paused
        page = context.new_page()
        page.goto("/workers")
        page.wait_for_url(re.compile(r"/login\?next=%2Fworkers$"))
    finally:
        context.close()


def test_pause_a_queue_and_see_its_jobs_wait(page: Watched, live: Live) -> None:
    demo = live.demo
    p = page.page
    _log_in(p)
    p.click("nav >> text=Queues")
    queue = "default"
    row = p.locator(f'tr[data-queue="{queue}"]')
    row.get_by_role("button", name="Pause").click()
    p.wait_for_url("**/queues")
    assert "paused" in p.locator(f'tr[data-queue="{queue}"]').inner_text()
    assert queue in demo.app.stats().paused

    jobs = demo.app.enqueue_many(
        [demo.app.tasks["images.resize"].job(f"new/{i}.png", 32, 32) for i in range(5)]
    )
    time.sleep(1.5)  # a worker polling every 0.25 s would have taken them by now
    assert {demo.app.get_job(j.id).state for j in jobs} == {"pending"}  # type: ignore[union-attr]
    p.reload()
    assert "5" in p.locator(f'tr[data-queue="{queue}"] td.num').first.inner_text()
    _shot(p, "queues-paused")

    p.locator(f'tr[data-queue="{queue}"]').get_by_role("button", name="Resume").click()
    p.wait_for_url("**/queues")
    wait_for(
        lambda: {demo.app.get_job(j.id).state for j in jobs} == {"completed"},  # type: ignore[union-attr]
        10,
        "the resumed queue's jobs to run",
    )


def test_periodic_page_shows_schedules_and_runs_one_now(page: Watched, live: Live) -> None:
    app = live.demo.app
    app.periodic(app.tasks["reports.build"], cron="0 6 * * *", tz="Europe/Berlin", args=(9,), name="nightly")
    app.periodic(app.tasks["images.resize"], every=3600, args=("logo.png", 64, 64), name="logo")
    # Yesterday's and this hour's ticks, enqueued as a worker's scheduler would have; the
    # worker thread runs them.
    scheduler = Scheduler(app)
    scheduler.run_due(time.time() - 2 * 86400)
    ticked = scheduler.run_due(time.time())
    wait_for(
        lambda: all(app.get_job(j.id).state == "completed" for j in ticked),  # type: ignore[union-attr]
        10,
        "the ticks' jobs to run",
    )
    p = page.page
    _log_in(p)
    p.click("nav >> text=Periodic")
    p.wait_for_selector("#periodic")
    nightly = p.locator('tr[data-schedule="nightly"]')
    assert "0 6 * * *" in nightly.inner_text() and "Europe/Berlin" in nightly.inner_text()
    assert "completed" in nightly.inner_text()
    _shot(p, "periodic")

    p.locator('tr[data-schedule="logo"]').get_by_role("button", name="Run now").click()
    p.wait_for_url("**/periodic")
    assert "Enqueued logo now" in p.locator(".flash").inner_text()
    wait_for(
        lambda: (
            {j.state for j in app.jobs(meta={"periodic": "logo"})} == {"completed"}
            and len(app.jobs(meta={"periodic": "logo"})) == 2
        ),
        10,
        "the run-now job to run",
    )


def test_overview_updates_live(page: Watched, live: Live) -> None:
    demo = live.demo
    p = page.page
    _log_in(p)
    p.wait_for_selector("#chart canvas")
    demo.app.pause("reports")
    try:
        demo.app.enqueue_many([demo.app.tasks["reports.build"].job(900 + i) for i in range(3)])
        # htmx polls the page and swaps the cards and, out of band, the queue table
        pending_card = p.locator("#cards .card", has_text="Pending").locator(".card-value")
        playwright_api.expect(pending_card).to_have_text("3", timeout=8000)
        row = p.locator("#queue-table tr", has_text="reports")
        playwright_api.expect(row.locator("td.num").first).to_have_text("3", timeout=8000)
        assert p.url.endswith("/")  # no navigation happened
    finally:
        demo.app.resume("reports")
    wait_for(lambda: demo.app.stats().total("pending") == 0, 10, "the reports to run")


def test_a_waiting_job_links_its_dependency_and_back(page: Watched, live: Live) -> None:
    demo = live.demo
    tasks = demo.app.tasks
    report = tasks["reports.build"].using(delay=3600).enqueue(77, fmt="csv")
    mail = tasks["mail.send"].using(after=[report]).enqueue("boss@example.com", "Report 77")

    p = page.page
    _log_in(p)
    p.goto("/jobs?state=waiting")
    assert p.locator(".tab.active").inner_text().lower().startswith("waiting")
    row = p.locator(f'tr[data-job="{mail.id}"]')
    assert "boss@example.com" in row.inner_text()
    row.locator("a.mono").first.click()
    p.wait_for_url(f"**/jobs/{mail.id}")
    assert p.locator(".page-head .badge").inner_text() == "waiting"
    p.locator("#dependencies a").click()
    p.wait_for_url(f"**/jobs/{report.id}")
    p.locator("#dependents a").click()
    p.wait_for_url(f"**/jobs/{mail.id}")
    _shot(p, "job-waiting")
    p.get_by_role("button", name="Cancel").click()
    p.wait_for_url(f"**/jobs/{mail.id}")
    assert p.locator(".page-head .badge").inner_text() == "cancelled"
    assert demo.app.cancel(report.id) == 1


def test_a_batch_page_from_its_jobs_page(page: Watched, live: Live) -> None:
    demo = live.demo
    tasks = demo.app.tasks
    batch = demo.app.batch(
        [tasks["images.resize"].job(f"uploads/batch/{i}.jpg", 320, 240) for i in range(3)]
        + [tasks["images.resize"].job(XSS_ARG, 1, 1)],
        on_success=tasks["mail.send"].job("owner@example.com", "Your photos are ready"),
    )
    p = page.page
    _log_in(p)
    p.goto(f"/jobs/{batch.jobs[0].id}")
    p.click("#batch-link")
    p.wait_for_url(f"**/batches/{batch.id}")
    assert p.locator(f'#batch-jobs tr[data-job="{batch.jobs[3].id}"]').is_visible()
    # The page polls with htmx until every job ended, then shows the callback it fired.
    p.wait_for_selector('#batch-counts [data-count="completed"]:text-is("4")', timeout=15000)
    p.wait_for_selector("#batch-callbacks a.mono", timeout=15000)
    assert p.locator("progress").get_attribute("value") == "4"
    assert page.dialogs == []  # the XSS argument stayed text
    _shot(p, "batch")
