"""``conveyor dashboard`` behind Debian's nginx with its default proxy settings.

nginx's default ``proxy_pass`` sends no ``X-Forwarded-For`` or ``Forwarded`` header and rewrites
``Host`` to the upstream's loopback address: to the dashboard, every request through it looks
like a browser on the same machine. Nothing may be reachable through it without the token the
command printed at start; with the token's link, the pages and actions work through the proxy.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from conveyor import Job
from tests.dashboard.helpers import XSS_ARG, build_app, csrf_from, dead_job
from tests.harness import start_server
from tests.servers import NginxServer, free_port

ROOT = Path(__file__).resolve().parents[2]
HTML = {"accept": "text/html"}
JSON = {"accept": "application/json"}
SECRET_ARG = "secret-address@example.com"
LINK = re.compile(r"(http://\S+/)\?token=([\w-]+)")


@dataclass
class Proxied:
    public: str  # the nginx address a browser opens
    upstream: str  # where nginx forwards to (the dashboard's own address)
    token: str
    link: str
    dead: Job
    pending: Job
    db_url: str


def _read_link(proc: subprocess.Popen[str], out: IO[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = out.readline()
        if line:
            seen.append(line)
            if LINK.search(line):
                return line
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"conveyor dashboard printed no sign-in link: {''.join(seen)!r}")


def _wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    folder = tmp_path_factory.mktemp("proxy")
    db_url = f"sqlite:///{folder}/jobs.db"
    demo = build_app(db_url)
    dead = dead_job(demo, customer="cus_behind_proxy")
    pending = demo.app.tasks["mail.send"].enqueue(SECRET_ARG, XSS_ARG)
    demo.app.close()

    dash_port, proxy_port = free_port(), free_port()
    public = f"http://127.0.0.1:{proxy_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_DASHBOARD_")}
    env.update(CONVEYOR_URL=db_url, PYTHONUNBUFFERED="1")
    log = (folder / "dashboard.log").open("w+")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "conveyor", "dashboard", "tests.dashboard.proxy_app:app"),
            *("--port", str(dash_port), "--public-url", public),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    nginx = None
    try:
        assert proc.stdout is not None
        line = _read_link(proc, proc.stdout)
        _wait_listening(dash_port)
        nginx = start_server(lambda: NginxServer(f"http://127.0.0.1:{dash_port}", port=proxy_port))
        found = LINK.search(line)
        assert found is not None
        yield Proxied(
            public=public,
            upstream=f"http://127.0.0.1:{dash_port}",
            token=found.group(2),
            link=found.group(0),
            dead=dead,
            pending=pending,
            db_url=db_url,
        )
    finally:
        if nginx is not None:
            nginx.stop()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _client(proxied: Proxied) -> httpx.Client:
    return httpx.Client(base_url=proxied.public, follow_redirects=False, timeout=10)


def _job_exists(proxied: Proxied, job_id: str) -> bool:
    demo = build_app(proxied.db_url)
    try:
        return demo.app.get_job(job_id) is not None
    finally:
        demo.app.close()


def test_the_printed_link_is_the_public_one(proxied: Proxied) -> None:
    assert proxied.link == f"{proxied.public}/?token={proxied.token}"
    assert len(proxied.token) >= 32


def test_nothing_is_reachable_through_the_proxy_without_the_token(proxied: Proxied) -> None:
    pages = ["/", "/queues", "/jobs", "/jobs?state=dead", "/jobs?state=pending", "/scheduled", "/retries"]
    pages += ["/dead", "/workers", f"/jobs/{proxied.dead.id}", f"/jobs/{proxied.pending.id}"]
    apis = ["/api/stats", "/metrics", f"/jobs/{proxied.dead.id}"]
    with _client(proxied) as client:
        for path in pages:
            response = client.get(path, headers=HTML)
            assert response.status_code == 303, path
            assert "/login" in response.headers["location"]
            landing = client.get(response.headers["location"], headers=HTML)
            for text in (SECRET_ARG, "cus_behind_proxy", proxied.dead.id, proxied.pending.id):
                if text not in path:  # the login page names the page asked for, to return to
                    assert text not in response.text + landing.text, (path, text)
        for path in apis:
            response = client.get(path, headers=JSON)
            assert response.status_code == 401, path
            assert SECRET_ARG not in response.text and "cus_behind_proxy" not in response.text
        # The attack of issue 21: a CSRF token from a page, an Origin naming the upstream (any
        # client can set it), a delete. Every action is refused; the jobs stay.
        token = csrf_from(client.get("/login", headers=HTML).text)
        for origin in (proxied.upstream, proxied.public):
            headers = {**HTML, "origin": origin, "x-csrf-token": token}
            actions: list[tuple[str, dict[str, str | list[str]]]] = [
                (f"/jobs/{proxied.dead.id}/delete", {}),
                (f"/jobs/{proxied.pending.id}/cancel", {}),
                ("/jobs/bulk", {"action": "delete", "ids": [proxied.dead.id, proxied.pending.id]}),
                ("/jobs/all/delete", {"state": "dead"}),
                ("/queues/mail/purge", {}),
                ("/queues/mail/pause", {}),
            ]
            for path, data in actions:
                response = client.post(path, data={**data, "csrf_token": token}, headers=headers)
                assert response.status_code in (401, 403), (path, origin, response.status_code)
        # A wrong token in a link is no way in either.
        assert client.get("/?token=" + "x" * 32, headers=JSON).status_code == 401
    assert _job_exists(proxied, proxied.dead.id) and _job_exists(proxied, proxied.pending.id)


def test_with_the_link_the_pages_and_actions_work_through_the_proxy(proxied: Proxied) -> None:
    with _client(proxied) as client:
        response = client.get(proxied.link.removeprefix(proxied.public), headers=HTML)
        assert response.status_code == 303 and response.headers["location"] == "/"
        overview = client.get("/", headers=HTML)
        assert overview.status_code == 200 and "mail" in overview.text
        assert client.get("/api/stats", headers=JSON).json()["states"]["dead"] >= 1
        page = client.get(f"/jobs/{proxied.pending.id}", headers=HTML)
        assert page.status_code == 200 and SECRET_ARG in page.text
        assert XSS_ARG not in page.text  # escaped, even through the proxy
        token = csrf_from(page.text)
        # nginx rewrote Host to the upstream: the browser's Origin is the public URL, which
        # --public-url declared; the upstream's origin is not a page of this dashboard.
        refused = client.post(
            f"/jobs/{proxied.dead.id}/delete",
            data={"csrf_token": token},
            headers={**HTML, "origin": proxied.upstream},
        )
        assert refused.status_code == 403
        deleted = client.post(
            f"/jobs/{proxied.dead.id}/delete",
            data={"csrf_token": token},
            headers={**HTML, "origin": proxied.public},
        )
        assert deleted.status_code == 303
    assert not _job_exists(proxied, proxied.dead.id)


def test_a_browser_signs_in_with_the_link_through_the_proxy(proxied: Proxied) -> None:
    from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS, playwright_api

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page: Any = browser.new_page()
            page.set_default_timeout(10000)
            page.goto(f"{proxied.public}/jobs/{proxied.pending.id}")
            page.wait_for_url(re.compile(r"/login\?next="))
            assert SECRET_ARG not in page.content()
            page.goto(proxied.link)
            page.wait_for_url(f"{proxied.public}/")  # the token left the address bar
            page.goto(f"{proxied.public}/jobs/{proxied.pending.id}")
            assert SECRET_ARG in page.locator("#args").inner_text()
            page.get_by_role("button", name="Cancel").click()
            page.wait_for_selector(".flash, [role=status]")
            assert "cancelled" in page.content()
        finally:
            browser.close()
