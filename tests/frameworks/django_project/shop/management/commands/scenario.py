"""``manage.py scenario NAME [JSON]``: one step of a test, its findings printed as JSON."""

import json
import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from conveyor.contrib.django import get_app


class Rollback(Exception):
    pass


def enqueue() -> dict[str, Any]:
    from shop import tasks

    return {
        "ship": tasks.ship.enqueue("a").id,
        "add": tasks.add.enqueue(1, 2).id,
        "add_async": tasks.add_async.enqueue(2, 3).id,
        "whoami": tasks.whoami.enqueue().id,
        "boom": tasks.boom.enqueue().id,
        "record": tasks.record.enqueue("r1").id,
        "later": tasks.add.using(run_after=timezone.now() + timedelta(hours=1), priority=-7).enqueue(5, 5).id,
    }


def atomic() -> dict[str, Any]:
    from shop import tasks
    from shop.models import Order

    app = get_app()
    found: dict[str, Any] = {"joins": app.joins_transactions()}
    with transaction.atomic():
        Order.objects.create(name="tx-kept")
        kept = tasks.ship.enqueue("kept")
        kept_task = tasks.record.enqueue("tx-task")
        # Another connection (the store's own) must not see the job before the commit.
        found["seen_before_commit"] = app.get_job(kept.id) is not None
    found["kept"], found["kept_task"] = kept.id, kept_task.id
    try:
        with transaction.atomic():
            Order.objects.create(name="tx-lost")
            found["lost"] = tasks.ship.enqueue("lost").id
            found["lost_task"] = tasks.add.enqueue(1, 1).id
            raise Rollback
    except Rollback:
        pass
    with transaction.atomic():  # unique jobs wait for the commit on every store
        first, second = tasks.refresh.enqueue("k"), tasks.refresh.enqueue("k")
        found["unique_before_commit"] = app.get_job(first.id) is not None
    found["unique"] = sorted(
        (job.state if (job := app.get_job(handle.id)) else None) or "none" for handle in (first, second)
    )
    found["states"] = {
        key: (job.state if (job := app.get_job(found[key])) else None)
        for key in ("kept", "kept_task", "lost", "lost_task")
    }
    try:
        with transaction.atomic():
            tasks.ship.enqueue(object())  # type: ignore[arg-type]
    except TypeError as exc:
        found["bad_argument"] = str(exc)
    return found


def results(ids: dict[str, str]) -> dict[str, Any]:
    from shop import tasks
    from shop.models import Order

    app = get_app()
    out: dict[str, Any] = {"orders": sorted(Order.objects.values_list("name", flat=True))}
    for key in ("add", "add_async", "whoami", "boom", "record", "later"):
        result = getattr(tasks, key if key != "later" else "add").get_result(ids[key])
        result.refresh()
        entry: dict[str, Any] = {"status": str(result.status), "attempts": result.attempts}
        if result.is_finished and result.status == "SUCCESSFUL":
            entry["value"] = result.return_value
        entry["errors"] = [(e.exception_class_path, e.traceback.splitlines()[-1]) for e in result.errors]
        job = app.get_job(ids[key])
        assert job is not None
        entry["queue"], entry["priority"], entry["state"] = job.queue, job.priority, job.state
        out[key] = entry
    ship = app.get_job(ids["ship"])
    out["ship"] = {"state": ship.state if ship else None, "value": ship.return_value if ship else None}
    return out


def dashboard() -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.create_user("staff", password="pw", is_staff=True)
    User.objects.create_user("plain", password="pw")
    anonymous = Client().get("/admin/jobs/")
    plain = Client()
    plain.login(username="plain", password="pw")
    staff = Client()
    staff.login(username="staff", password="pw")
    overview = staff.get("/admin/jobs/")
    queues = staff.get("/admin/jobs/queues")
    # The dashboard's own CSRF protection: the session's token (from a page) and the Origin.
    token = re.search(r'"X-CSRF-Token": "([^"]+)"', queues.content.decode())
    csrf = {"csrf_token": token.group(1) if token else ""}
    paused = staff.post("/admin/jobs/queues/mail/pause", csrf, HTTP_ORIGIN="http://testserver")
    forged = staff.post("/admin/jobs/queues/mail/resume", csrf, HTTP_ORIGIN="http://evil.example")
    return {
        "anonymous": [anonymous.status_code, anonymous.get("Location")],
        "plain": plain.get("/admin/jobs/").status_code,
        "staff": overview.status_code,
        "staff_page": "conveyor" in overview.content.decode(),
        "static_link": "/admin/jobs/static/" in overview.content.decode(),
        "queues": queues.status_code,
        "pause": paused.status_code,
        "forged": forged.status_code,
        "paused": sorted(get_app().stats().paused),
    }


def other() -> dict[str, Any]:
    from shop import tasks

    result = tasks.multiply.enqueue(6, 7)
    backend = tasks.multiply.get_backend()
    return {"id": result.id, "own_store": backend.app is not get_app(), "url": backend.app.url}


def other_result(result_id: str) -> dict[str, Any]:
    from shop import tasks

    result = tasks.multiply.get_result(result_id)
    return {"status": str(result.status), "value": result.return_value if result.is_finished else None}


def worker_app() -> dict[str, Any]:
    """What ``manage.py conveyor_worker`` serves: the project's app, tasks discovered."""
    from conveyor.contrib.django import worker

    app = worker.app
    return {"tasks": sorted(app.tasks), "schedules": sorted(app.schedules), "same": app is get_app()}


SCENARIOS = {
    "enqueue": enqueue,
    "atomic": atomic,
    "dashboard": dashboard,
    "other": other,
    "worker_app": worker_app,
}


class Command(BaseCommand):
    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("data", nargs="?", default="null")

    def handle(self, *args: Any, name: str, data: str, **options: Any) -> None:
        if name == "results":
            found = results(json.loads(data))
        elif name == "other_result":
            found = other_result(json.loads(data))
        else:
            found = SCENARIOS[name]()
        self.stdout.write(json.dumps(found))
