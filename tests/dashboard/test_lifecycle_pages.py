"""The dashboard's reschedule action (scheduled and retry pages, a job's page) and what it
shows of a job's life: its snoozes, unique key and expiry (issue 15)."""

from __future__ import annotations

import time

from tests.dashboard.conftest import ClientFactory
from tests.dashboard.helpers import Demo, csrf_from, log_in

HTML = {"accept": "text/html"}


def test_reschedule_from_the_scheduled_page_and_a_job_page(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    build = demo.app.tasks["reports.build"]
    later = build.using(delay=600).enqueue(1)
    other = build.using(delay=600).enqueue(2)
    page = client.get("/scheduled", headers=HTML).text
    assert f'formaction="/jobs/{later.id}/reschedule"' in page and 'value="reschedule"' in page
    form = {"csrf_token": csrf_from(page), "delay": "2", "unit": "3600", "next": "/scheduled"}
    response = client.post(f"/jobs/{later.id}/reschedule", data=form)
    assert response.status_code == 303 and response.headers["location"] == "/scheduled"
    moved = demo.app.get_job(later.id)
    assert moved is not None and moved.run_at is not None
    assert abs(moved.run_at.timestamp() - (time.time() + 7200)) < 60
    # the bulk form: every selected job, in seconds
    bulk = {
        "csrf_token": token,
        "action": "reschedule",
        "ids": [later.id, other.id],
        "delay": "0",
        "unit": "1",
    }
    assert client.post("/jobs/bulk", data=bulk).status_code == 303
    assert {demo.app.get_job(i).state for i in (later.id, other.id)} == {"pending"}  # type: ignore[union-attr]
    # a job's own page, once it no longer waits: refused with a message, nothing changed
    job_page = client.get(f"/jobs/{later.id}", headers=HTML).text
    assert 'id="reschedule"' in job_page and 'id="snoozes"' in job_page
    assert demo.app.cancel(later.id) == 1
    follow = client.post(f"/jobs/{later.id}/reschedule", data={**form, "next": f"/jobs/{later.id}"})
    assert "could not be rescheduled" in client.get(follow.headers["location"], headers=HTML).text


def test_reschedule_needs_the_csrf_token_and_a_sane_time(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    token = log_in(client)
    later = demo.app.tasks["reports.build"].using(delay=600).enqueue(1)
    before = demo.app.get_job(later.id)
    forged = client.post(f"/jobs/{later.id}/reschedule", data={"delay": "0", "unit": "1"})
    assert forged.status_code == 403
    for delay in ("soon", "-1", "nan", "1e300"):
        bad = client.post(
            f"/jobs/{later.id}/reschedule", data={"csrf_token": token, "delay": delay, "unit": "1"}
        )
        assert bad.status_code == 400, delay
    assert demo.app.get_job(later.id) == before


def test_the_job_page_shows_a_unique_key_and_an_expiry(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client()
    log_in(client)
    job = (
        demo.app.tasks["mail.send"]
        .using(unique_key="welcome:42", unique_for=60, expires=600)
        .enqueue("a@b.c", "hi")
    )
    page = client.get(f"/jobs/{job.id}", headers=HTML).text
    assert "welcome:42" in page and "Expires" in page
