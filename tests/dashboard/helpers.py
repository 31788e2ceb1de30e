"""A small app with realistic tasks, and tools to drive the dashboard in tests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor import Conveyor, Fail, Job

PASSWORD = "correct horse battery staple"
TOKEN = "tok-0123456789abcdef"
XSS_ARG = "<script>alert('xss-arg')</script>"
XSS_IMG = '<img src=x onerror="alert(1)">'
XSS_ERROR = "<img src=x onerror=alert('xss-error')><script>alert('xss-error')</script>"


class Switches:
    """Per-app toggles the tasks read, so a test can make a task fail and then recover."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.lock = threading.Lock()

    def is_broken(self, key: str) -> bool:
        with self.lock:
            return key in self.broken

    def set(self, key: str, broken: bool) -> None:
        with self.lock:
            (self.broken.add if broken else self.broken.discard)(key)


@dataclass
class Demo:
    app: Conveyor
    switches: Switches


def build_app(url: str, **options: Any) -> Demo:
    """An app with the tasks a real product might have, on the store at ``url``."""
    app = Conveyor(url, lease=5.0, **options)
    switches = Switches()

    @app.task(name="mail.send", queue="mail", retries=0)
    def send(to: str, subject: str, body: str = "") -> str:
        if switches.is_broken("mail"):
            raise ConnectionError(f"SMTP server refused connection for {to}")
        return f"sent to {to}"

    @app.task(name="reports.build", queue="reports", retries=2, backoff=600.0)
    def build(report_id: int, fmt: str = "pdf") -> dict[str, Any]:
        if switches.is_broken("reports"):
            raise TimeoutError("warehouse query took longer than 30 s")
        return {"report": report_id, "format": fmt, "pages": report_id % 7 + 1}

    @app.task(name="billing.charge", queue="billing", retries=0)
    def charge(customer: str, cents: int) -> None:
        if switches.is_broken("billing"):
            raise Fail(f"card declined for {customer}")

    @app.task(name="images.resize", retries=0)
    def resize(path: str, width: int, height: int) -> str:
        return f"{path}@{width}x{height}"

    @app.task(name="evil.echo", retries=0)
    def echo(*values: Any, **named: Any) -> None:
        raise Fail(XSS_ERROR)

    return Demo(app, switches)


def drain(app: Conveyor, timeout: float = 10.0) -> None:
    """Run a burst worker until no job is ready."""
    worker = app.worker(concurrency=4, burst=True)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(5)
        raise AssertionError("burst worker did not finish")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def dead_job(demo: Demo, customer: str = "cus_42", cents: int = 1999) -> Job:
    """A job in ``dead``: a billing charge that is declined."""
    app = demo.app
    demo.switches.set("billing", True)
    job = app.tasks["billing.charge"].enqueue(customer, cents)
    drain(app)
    demo.switches.set("billing", False)
    state = app.get_job(job.id)
    assert state is not None and state.state == "dead", state
    return job


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"|"X-CSRF-Token": "([^"]+)"')


def csrf_from(html: str) -> str:
    """The session's CSRF token from a form field, or from the header htmx sends."""
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1) or found.group(2)


def log_in(client: httpx.Client, password: str = PASSWORD, prefix: str = "") -> str:
    """Log in through the form like a browser; returns the CSRF token of the session."""
    page = client.get(f"{prefix}/login", headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    response = client.post(
        f"{prefix}/login",
        data={"csrf_token": csrf_from(page.text), "password": password, "next": "/"},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get(f"{prefix}/", headers={"accept": "text/html"})
    assert home.status_code == 200, home.text
    return csrf_from(home.text)
