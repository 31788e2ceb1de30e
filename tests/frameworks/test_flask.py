"""conveyor.contrib.flask through Flask's test client: the app factory, an enqueue in a view,
the job run by a real worker inside the app context, and the dashboard mounted by config."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("flask")
pytest.importorskip("a2wsgi")

from tests.frameworks.flask_app import create_app, jobs


def test_factory_view_enqueue_worker_and_dashboard(tmp_path: Path) -> None:
    flask_app = create_app(
        {
            "CONVEYOR_URL": f"sqlite:///{tmp_path}/jobs.db",
            "CONVEYOR_DASHBOARD_PATH": "/jobs",
            "CONVEYOR_DASHBOARD": {"token": "t0ken"},
        }
    )
    assert jobs.app.url == f"sqlite:///{tmp_path}/jobs.db"
    client = flask_app.test_client()
    answer = client.post("/signup", data={"email": "ada@example.com"})
    assert answer.status_code == 202
    job_id = answer.get_json()["job"]
    assert jobs.app.get_job(job_id).queue == "mail"  # type: ignore[union-attr]

    assert jobs.app.worker(burst=True).run() == 0
    assert jobs.app.get_job(job_id).return_value == {  # type: ignore[union-attr]
        "email": "ada@example.com",
        "app": "shop",
        "sender": "shop@example.com",
    }

    assert client.get("/jobs/").status_code in (401, 403)
    page = client.get("/jobs/", headers={"Authorization": "Bearer t0ken"})
    assert page.status_code == 200 and b"conveyor" in page.data
    assert b"/jobs/static/" in page.data


def test_a_second_app_from_the_factory_takes_over(tmp_path: Path) -> None:
    first = create_app({"CONVEYOR_URL": f"sqlite:///{tmp_path}/first.db"})
    first.test_client().post("/signup", data={"email": "a@example.com"})
    second = create_app(
        {"CONVEYOR_URL": f"sqlite:///{tmp_path}/second.db", "MAIL_SENDER": "second@example.com"}
    )
    assert jobs.app.url.endswith("second.db") and jobs.app.stats().total("pending") == 0
    job_id = second.test_client().post("/signup", data={"email": "b@example.com"}).get_json()["job"]
    jobs.app.worker(burst=True).run()
    assert jobs.app.get_job(job_id).return_value["sender"] == "second@example.com"  # type: ignore[union-attr]
    jobs.app.close()
