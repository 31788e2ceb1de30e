"""Every security point of the dashboard, over HTTP (Starlette's TestClient) on a real store."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

from conveyor.dashboard.security import COOKIE, CSP
from tests.dashboard.conftest import BASE, ClientFactory
from tests.dashboard.helpers import (
    PASSWORD,
    TOKEN,
    XSS_ARG,
    XSS_ERROR,
    XSS_IMG,
    Demo,
    csrf_from,
    dead_job,
    drain,
    log_in,
)

HTML = {"accept": "text/html"}
JSON = {"accept": "application/json"}


def _states(demo: Demo) -> dict[str, Any]:
    stats = demo.app.stats()
    jobs = sorted((j.id, j.state, j.attempts) for j in demo.app.jobs(limit=1000))
    return {"queues": stats.queues, "paused": stats.paused, "jobs": jobs}


# -- headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/jobs",
        "/static/dashboard.css",
        "/static/vendor/htmx.min.js",
        "/no-such-page",
        "/metrics",
    ],
)
def test_security_headers_on_every_response(make_client: ClientFactory, path: str) -> None:
    client = make_client()
    for logged_in in (False, True):
        if logged_in:
            log_in(client)
        response = client.get(path, headers=HTML)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_csp_is_strict() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in CSP


def test_no_inline_script_in_any_page(make_client: ClientFactory, demo: Demo) -> None:
    job = dead_job(demo)
    client = make_client()
    log_in(client)
    pages = ["/", "/queues", "/jobs", "/dead", "/scheduled", "/retries", "/workers", f"/jobs/{job.id}"]
    pages += ["/queues/billing/purge", "/jobs/all/delete?state=dead"]
    for path in pages:
        html = client.get(path, headers=HTML).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"inline script in {path}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline event handler in {path}"
        assert "style=" not in html, f"inline style in {path}"


# -- who may see it --------------------------------------------------------------------------
WHERE_FROM = [
    pytest.param(BASE, ("203.0.113.7", 50000), id="remote"),
    pytest.param("http://127.0.0.1:8080", ("127.0.0.1", 40000), id="loopback"),
    pytest.param("http://[::1]:8080", ("::1", 40000), id="loopback-ipv6"),
    # What nginx's default proxy_pass delivers for a client anywhere: loopback to loopback,
    # Host rewritten to the upstream, no forwarding header.
    pytest.param("http://127.0.0.1:8080", ("127.0.0.1", 51234), id="behind-default-nginx"),
]


@pytest.mark.parametrize(("base_url", "peer"), WHERE_FROM)
def test_without_a_credential_nothing_is_served(
    make_client: ClientFactory, demo: Demo, base_url: str, peer: tuple[str, int]
) -> None:
    """Where a request comes from proves nothing: loopback is what every request looks like
    behind a reverse proxy on the same machine."""
    demo.app.tasks["mail.send"].enqueue("secret-address@example.com", "hello")
    client = make_client(base_url=base_url, client=peer, password=None)  # no secret, no hook
    for path in ["/", "/jobs?state=pending", "/api/stats", "/metrics", "/workers", "/queues"]:
        response = client.get(path, headers=HTML)
        assert response.status_code == 403, path
        assert "Dashboard locked" in response.text
        assert "CONVEYOR_DASHBOARD_PASSWORD" in response.text
        assert "secret-address" not in response.text
        assert client.get(path, headers=JSON).status_code == 403
    response = client.post("/queues/mail/pause", data={})
    assert response.status_code == 403
    assert demo.app.stats().paused == frozenset()
    # A token link cannot open a dashboard that has no token.
    assert client.get("/?token=anything", headers=HTML).status_code == 401


def test_token_link_signs_the_browser_in(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client(token=TOKEN)
    assert client.get("/jobs?state=dead", headers=HTML).status_code == 303  # to the login page
    response = client.get(f"/jobs?state=dead&token={TOKEN}&queue=mail", headers=HTML)
    assert response.status_code == 303
    # The token leaves the address bar at once: it must not sit in history or a Referer.
    assert response.headers["location"] == "/jobs?state=dead&queue=mail"
    assert "HttpOnly" in response.headers["set-cookie"]
    assert client.get("/jobs?state=dead", headers=HTML).status_code == 200
    page = client.get("/", headers=HTML)
    assert page.status_code == 200 and TOKEN not in page.text
    token = csrf_from(page.text)
    response = client.post("/queues/mail/pause", data={"csrf_token": token})
    assert response.status_code == 303
    assert demo.app.stats().paused == frozenset({"mail"})


def test_wrong_token_link_and_post_with_token_do_not_sign_in(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client(token=TOKEN)
    response = client.get("/?token=wrong", headers=HTML)
    assert response.status_code == 303 and "/login" in response.headers["location"]
    assert client.get("/?token=wrong", headers=JSON).status_code == 401
    assert client.get("/", headers=HTML).status_code == 303  # still not signed in
    # Only a GET link signs in; a POST carrying the token in its query changes nothing.
    response = client.post(f"/queues/mail/pause?token={TOKEN}", data={})
    assert response.status_code in (401, 403)
    assert demo.app.stats().paused == frozenset()
    assert client.get("/", headers=HTML).status_code == 303


def test_token_link_under_a_sub_path(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_DASHBOARD_PASSWORD", raising=False)
    outer = Starlette(routes=[Mount("/ops/jobs", app=demo.app.dashboard(token=TOKEN))])
    with TestClient(outer, base_url=BASE, follow_redirects=False) as client:
        response = client.get(f"/ops/jobs/dead?token={TOKEN}", headers=HTML)
        assert response.status_code == 303
        assert response.headers["location"] == "/ops/jobs/dead"
        assert "Path=/ops/jobs/" in response.headers["set-cookie"]
        assert client.get("/ops/jobs/dead", headers=HTML).status_code == 200


def test_insecure_no_auth_serves_everyone_but_keeps_csrf(
    make_client: ClientFactory, demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="conveyor.dashboard"):
        client = make_client(insecure_no_auth=True)
    assert any("insecure_no_auth" in r.getMessage() for r in caplog.records)
    assert client.get("/", headers=HTML).status_code == 200
    assert client.get("/api/stats", headers=JSON).status_code == 200
    assert client.post("/queues/mail/pause", data={}).status_code == 403
    token = csrf_from(client.get("/", headers=HTML).text)
    assert client.post("/queues/mail/pause", data={"csrf_token": token}).status_code == 303
    with pytest.warns(DeprecationWarning, match="insecure_no_auth"):
        old = make_client(require_login=False)
    assert old.get("/", headers=HTML).status_code == 200


def test_password_from_environment(make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DASHBOARD_PASSWORD", "from-env")
    client = make_client(password=None)
    assert client.get("/", headers=HTML).status_code == 303
    log_in(client, "from-env")
    assert client.get("/", headers=HTML).status_code == 200


def test_secret_required_even_on_loopback_once_configured(make_client: ClientFactory) -> None:
    client = make_client(base_url="http://127.0.0.1:8080", client=("127.0.0.1", 40000))
    response = client.get("/", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2F"


def test_unauthenticated_requests_refused(make_client: ClientFactory, demo: Demo) -> None:
    job = dead_job(demo)
    client = make_client()
    response = client.get("/jobs?state=dead", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    for path in ["/api/stats", "/metrics", f"/jobs/{job.id}"]:
        response = client.get(path, headers=JSON)
        assert response.status_code == 401
        assert job.id not in response.text
    token = csrf_from(client.get("/login", headers=HTML).text)
    response = client.post(f"/jobs/{job.id}/retry", data={"csrf_token": token})
    assert response.status_code == 401
    assert client.get("/", headers={**HTML, "hx-request": "true"}).headers["hx-redirect"].startswith("/login")
    assert demo.app.get_job(job.id).state == "dead"  # type: ignore[union-attr]


def test_wrong_password_refused(make_client: ClientFactory) -> None:
    client = make_client()
    token = csrf_from(client.get("/login", headers=HTML).text)
    for wrong in ["", "wrong", PASSWORD + " ", PASSWORD.upper(), PASSWORD[:-1]]:
        response = client.post("/login", data={"csrf_token": token, "password": wrong}, headers=HTML)
        assert response.status_code == 401
        assert "Wrong password or token." in response.text
        assert client.get("/", headers=HTML).status_code == 303  # still not logged in


def test_login_sets_a_safe_session_cookie(make_client: ClientFactory) -> None:
    client = make_client()
    before = csrf_from(client.get("/login", headers=HTML).text)
    response = client.post("/login", data={"csrf_token": before, "password": PASSWORD}, headers=HTML)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    after = csrf_from(client.get("/", headers=HTML).text)
    assert after != before  # the CSRF token is rotated at login

    tls = make_client(base_url="https://dash.test")
    page = tls.get("/login", headers=HTML)
    assert "Secure" in page.headers["set-cookie"]
    forced = make_client(secure_cookies=True)
    assert "Secure" in forced.get("/login", headers=HTML).headers["set-cookie"]


def test_login_needs_csrf_and_logout_ends_session(make_client: ClientFactory) -> None:
    client = make_client()
    client.get("/login", headers=HTML)
    response = client.post("/login", data={"password": PASSWORD}, headers=HTML)
    assert response.status_code == 403
    token = log_in(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/", headers=HTML).status_code == 303


def test_forged_or_unsigned_session_is_refused(make_client: ClientFactory) -> None:
    client = make_client()
    forged = URLSafeTimedSerializer(b"not the key", salt="conveyor.dashboard").dumps({"a": True, "c": "x"})
    client.cookies.set(COOKIE, forged)
    assert client.get("/", headers=HTML).status_code == 303
    client.cookies.set(COOKIE, '{"a": true, "c": "x"}')
    assert client.get("/", headers=HTML).status_code == 303


def test_changing_the_password_ends_sessions(make_client: ClientFactory) -> None:
    old = make_client()
    log_in(old)
    new = make_client(password="a new password")
    new.cookies = old.cookies
    assert new.get("/", headers=HTML).status_code == 303


def test_bearer_token_for_api_use(make_client: ClientFactory, demo: Demo) -> None:
    job = dead_job(demo)
    client = make_client(token=TOKEN, origin="")
    del client.headers["origin"]
    auth = {"authorization": f"Bearer {TOKEN}"}
    response = client.get("/api/stats", headers={**JSON, **auth})
    assert response.status_code == 200
    assert response.json()["states"]["dead"] == 1
    assert client.get("/metrics", headers=auth).status_code == 200
    for bad in ("Bearer nope", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"):
        assert client.get("/api/stats", headers={**JSON, "authorization": bad}).status_code == 401
    # A script with the token needs no cookie and no CSRF token: browsers never send this header.
    response = client.post(f"/jobs/{job.id}/retry", headers=auth)
    assert response.status_code == 303
    assert demo.app.get_job(job.id).state == "pending"  # type: ignore[union-attr]


def test_authorize_hook(make_client: ClientFactory) -> None:
    client = make_client(authorize=lambda request: request.headers.get("x-user") == "admin")
    assert client.get("/", headers={**HTML, "x-user": "admin"}).status_code == 200
    refused = client.get("/", headers={**HTML, "x-user": "mallory"})
    assert refused.status_code == 403
    assert "Not authorized" in refused.text

    async def check(request: Request) -> bool:
        await asyncio.sleep(0)
        return request.headers.get("x-user") == "admin"

    both = make_client(authorize=check, password=PASSWORD)
    assert both.get("/", headers={**HTML, "x-user": "admin"}).status_code == 200
    assert both.get("/", headers=HTML).status_code == 303  # falls back to the login
    log_in(both)
    assert both.get("/", headers=HTML).status_code == 200


# -- CSRF and Origin -------------------------------------------------------------------------
def _post_routes(demo: Demo) -> list[tuple[str, dict[str, Any]]]:
    job = dead_job(demo)
    return [
        (f"/jobs/{job.id}/retry", {}),
        (f"/jobs/{job.id}/delete", {}),
        (f"/jobs/{job.id}/cancel", {}),
        ("/jobs/bulk", {"action": "delete", "ids": [job.id]}),
        ("/jobs/all/retry", {"state": "dead"}),
        ("/jobs/all/delete", {"state": "dead"}),
        ("/queues/billing/pause", {}),
        ("/queues/billing/resume", {}),
        ("/queues/billing/purge", {}),
        ("/logout", {}),
    ]


def test_csrf_token_required_on_every_post(make_client: ClientFactory, demo: Demo) -> None:
    routes = _post_routes(demo)
    client = make_client()
    good = log_in(client)
    before = _states(demo)
    for path, data in routes:
        for token in (None, "", "wrong-token", good + "x", good[:-1]):
            form = dict(data) if token is None else {**data, "csrf_token": token}
            response = client.post(path, data=form, headers=HTML)
            assert response.status_code == 403, (path, token, response.status_code)
            assert "security token" in response.text
        # the header form (used by htmx) is checked the same way
        response = client.post(path, data=data, headers={**HTML, "x-csrf-token": "forged"})
        assert response.status_code == 403
    assert _states(demo) == before
    assert client.get("/", headers=HTML).status_code == 200  # still logged in


def test_origin_must_match(make_client: ClientFactory, demo: Demo) -> None:
    routes = _post_routes(demo)
    client = make_client()
    token = log_in(client)
    before = _states(demo)
    for path, data in routes:
        form = {**data, "csrf_token": token}
        for origin in (
            "https://evil.example",
            "http://dash.test.evil.example",
            "null",
            "http://dash.test:8081",
        ):
            response = client.post(path, data=form, headers={**HTML, "origin": origin})
            assert response.status_code == 403, (path, origin)
            assert "did not come from a page of this dashboard" in response.text
        # no Origin: the Referer decides; neither: refused
        response = client.post(
            path, data=form, headers={**HTML, "origin": "", "referer": "https://evil.example/x"}
        )
        assert response.status_code == 403
        client.headers.pop("origin")
        try:
            assert client.post(path, data=form, headers=HTML).status_code == 403
        finally:
            client.headers["origin"] = BASE
    assert _states(demo) == before
    # the same request from the right page works
    path = "/queues/billing/pause"
    response = client.post(
        path, data={"csrf_token": token}, headers={"origin": "", "referer": f"{BASE}/queues"}
    )
    assert response.status_code == 303
    assert demo.app.stats().paused == frozenset({"billing"})


def test_trusted_origins(make_client: ClientFactory, demo: Demo) -> None:
    client = make_client(trusted_origins=["https://jobs.example.com"], origin="https://jobs.example.com")
    token = log_in(client)
    response = client.post("/queues/mail/pause", data={"csrf_token": token})
    assert response.status_code == 303
    assert "mail" in demo.app.stats().paused


def test_public_url_is_the_origin_behind_a_proxy(make_client: ClientFactory, demo: Demo) -> None:
    """Behind a proxy that rewrites Host, the browser's Origin is the public URL's."""
    public = "http://jobs.example.com"
    client = make_client(public_url=f"{public}/ops", origin=public)  # Host: dash.test
    token = log_in(client)
    for origin in ("http://dash.test", "https://jobs.example.com", "http://jobs.example.com:8443"):
        response = client.post("/queues/mail/pause", data={"csrf_token": token}, headers={"origin": origin})
        assert response.status_code == 403, origin
    assert demo.app.stats().paused == frozenset()
    response = client.post("/queues/mail/pause", data={"csrf_token": token}, headers={"origin": public})
    assert response.status_code == 303
    assert demo.app.stats().paused == frozenset({"mail"})
    # An https public URL makes the cookie Secure even though the proxy speaks http to us.
    probe = make_client(public_url="https://jobs.example.com")
    assert "; Secure" in probe.get("/login", headers=HTML).headers["set-cookie"]
    with pytest.raises(ValueError, match="public_url"):
        make_client(public_url="jobs.example.com")


# -- read-only, GET safety, static files -------------------------------------------------------
def test_read_only_mode(make_client: ClientFactory, demo: Demo) -> None:
    job = dead_job(demo)
    demo.app.tasks["reports.build"].using(delay=3600).enqueue(7)
    client = make_client(read_only=True)
    token = log_in(client)
    for path in ["/", "/queues", "/jobs?state=dead", "/dead", "/scheduled", f"/jobs/{job.id}"]:
        html = client.get(path, headers=HTML).text
        assert "read-only" in html
        forms = re.findall(r'<form method="post" action="([^"]+)"', html)
        assert forms == ["/logout"], (path, forms)
        buttons = set(re.findall(r"<button\b[^>]*>([^<]*)</button>", html))
        assert buttons <= {"Log out", "Filter"}, (path, buttons)
        assert "/purge" not in html and "/jobs/all/" not in html, path
    before = _states(demo)
    for path, data in _post_routes(demo)[:-1]:
        response = client.post(path, data={**data, "csrf_token": token}, headers=HTML)
        assert response.status_code == 403
        assert "read-only" in response.text
    assert client.get("/queues/mail/purge", headers=HTML).status_code == 403
    after = _states(demo)
    assert after["paused"] == frozenset()
    assert {state for _, state, _ in after["jobs"]} == {"dead", "scheduled"}
    assert len(after["jobs"]) == len(before["jobs"]) + 1  # the dead job _post_routes made


def test_get_never_changes_state(make_client: ClientFactory, demo: Demo) -> None:
    job = dead_job(demo)
    demo.app.tasks["reports.build"].using(delay=3600).enqueue(3)
    demo.app.tasks["mail.send"].enqueue("a@example.com", "hi")
    client = make_client()
    log_in(client)
    before = _states(demo)
    paths = [
        "/", "/queues", "/jobs", "/dead", "/scheduled", "/retries", "/workers", "/api/stats", "/metrics",
        f"/jobs/{job.id}", f"/jobs/{job.id}/retry", f"/jobs/{job.id}/delete", f"/jobs/{job.id}/cancel",
        "/jobs/bulk?action=delete&ids=" + job.id, "/jobs/all/retry?state=dead", "/jobs/all/delete?state=dead",
        "/queues/mail/pause", "/queues/mail/purge", "/queues/reports/purge", "/logout",
    ]  # fmt: skip
    for path in paths:
        for method in ("GET", "HEAD"):
            response = client.request(method, path, headers=HTML)
            assert response.status_code < 500, (method, path)
    assert _states(demo) == before
    assert client.get("/", headers=HTML).status_code == 200  # GET /logout did not log out


def _raw_get(app: Any, raw_path: str) -> tuple[int, bytes]:
    """Send a path exactly as given (no client-side normalisation of ``..``)."""
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"dash.test")],
        "client": ("203.0.113.7", 1),
        "server": ("dash.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        requested = False
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


@pytest.mark.parametrize(
    "raw_path",
    [
        "/static/../server.py",
        "/static/../../app.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/static/vendor/../../security.py",
        "/static/..%5cserver.py",
        "/static/%2e%2e%2f%2e%2e%2fjob.py",
        "/static//etc/passwd",
        "/static/../templates/base.html",
    ],
)
def test_no_path_traversal_in_static(demo: Demo, raw_path: str) -> None:
    app = demo.app.dashboard(password=PASSWORD)
    status, body = _raw_get(app, raw_path)
    assert status in (400, 401, 403, 404), (raw_path, status)
    assert b"import" not in body and b"root:" not in body and b"{% block" not in body


def test_static_files_are_served(demo: Demo) -> None:
    app = demo.app.dashboard(password=PASSWORD)
    for path in ("/static/vendor/htmx.min.js", "/static/vendor/uPlot.iife.min.js", "/static/dashboard.js"):
        status, body = _raw_get(app, path)
        assert status == 200 and len(body) > 1000


# -- escaping ------------------------------------------------------------------------------------
def test_everything_is_escaped(make_client: ClientFactory, demo: Demo) -> None:
    app = demo.app
    evil = app.tasks["evil.echo"].using(queue="<b>q</b>").enqueue(XSS_ARG, XSS_IMG, note=XSS_ARG)
    drain(app)
    assert XSS_ERROR in (app.get_job(evil.id).last_error or "")  # type: ignore[union-attr]
    client = make_client()
    log_in(client)
    pages = [
        f"/jobs/{evil.id}",
        "/jobs?state=dead",
        "/dead",
        "/queues",
        "/",
        "/jobs?state=dead&q=" + XSS_IMG,
        "/jobs?state=dead&task=" + XSS_ARG,
        "/queues/%3Cb%3Eq%3C%2Fb%3E/purge",
        "/jobs/all/delete?state=dead&queue=%3Cb%3Eq%3C/b%3E",
    ]
    for path in pages:
        html = client.get(path, headers=HTML).text
        for raw in ("<script>alert", "<img src=x", "<b>q</b>", "<img"):
            assert raw not in html, (path, raw)
    detail = client.get(f"/jobs/{evil.id}", headers=HTML).text
    assert "&lt;script&gt;alert(&#39;xss-arg&#39;)&lt;/script&gt;" in detail
    assert "&lt;img src=x onerror=alert(&#39;xss-error&#39;)&gt;" in detail
    assert "&lt;b&gt;q&lt;/b&gt;" in detail


def test_open_redirects_refused(make_client: ClientFactory) -> None:
    client = make_client()
    page = client.get("/login?next=//evil.example/x", headers=HTML)
    token = csrf_from(page.text)
    assert 'name="next" value="/"' in page.text
    for target in ("//evil.example", "https://evil.example", "/\\evil.example", "javascript:alert(1)"):
        response = client.post("/login", data={"csrf_token": token, "password": PASSWORD, "next": target})
        assert response.status_code == 303
        assert response.headers["location"] == "/", target
        token = csrf_from(client.get("/", headers=HTML).text)
        client.post("/logout", data={"csrf_token": token})
        token = csrf_from(client.get("/login", headers=HTML).text)
    token = log_in(client)
    response = client.post("/queues/mail/pause", data={"csrf_token": token, "next": "//evil.example"})
    assert response.headers["location"] == "/queues"


# -- mounting ------------------------------------------------------------------------------------
def test_mounted_under_a_sub_path(demo: Demo) -> None:
    dead_job(demo)
    host = Starlette(routes=[Mount("/admin/jobs", app=demo.app.dashboard(password=PASSWORD))])
    client = TestClient(host, base_url=BASE, headers={"origin": BASE}, follow_redirects=False)
    response = client.get("/admin/jobs/dead", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/jobs/login?next=%2Fdead"
    assert "Path=/admin/jobs/" in response.headers["set-cookie"]
    page = client.get("/admin/jobs/login", headers=HTML)
    assert 'href="/admin/jobs/static/dashboard.css"' in page.text
    log_in(client, prefix="/admin/jobs")
    html = client.get("/admin/jobs/dead", headers=HTML).text
    links = re.findall(r'(?:href|action|hx-get|data-src)="([^"]+)"', html)
    assert links and all(link.startswith("/admin/jobs/") for link in links), links
    assert client.get("/admin/jobs/static/vendor/htmx.min.js").status_code == 200
    client.close()
