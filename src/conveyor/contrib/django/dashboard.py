"""The dashboard as a Django view, behind Django's own login: staff users only.

``path("admin/jobs/", include("conveyor.contrib.django.urls"))`` in ``urls.py`` serves it
under ``/admin/jobs/``, in a WSGI or an ASGI deployment alike. A request from a user who is
not logged in is sent to ``settings.LOGIN_URL`` (Django's admin login, when it is the
login); a logged-in user who is not staff gets 403. Admitted requests go to the dashboard's
ASGI app, which trusts Django's decision (``insecure_no_auth``) and still checks every
state-changing request's Origin against the host (its own CSRF protection; Django's CSRF
middleware is skipped for this view alone, since the dashboard's forms carry no Django
token).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from .project import get_app

#: Dashboard options from ``settings.CONVEYOR_DASHBOARD`` (``create_app`` keywords, e.g.
#: ``{"read_only": True, "title": "shop jobs"}``).
SETTING = "CONVEYOR_DASHBOARD"

_dashboard: Any = None
_lock = threading.Lock()


def _asgi_app() -> Any:
    global _dashboard
    if _dashboard is None:
        with _lock:
            if _dashboard is None:
                options = dict(getattr(settings, SETTING, {}))
                options.setdefault("insecure_no_auth", True)
                _dashboard = get_app().dashboard(**options)
    return _dashboard


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


@csrf_exempt  # type: ignore[untyped-decorator]
def dashboard(request: HttpRequest, path: str = "") -> HttpResponse:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not is_staff(request):
        return HttpResponseForbidden("The jobs dashboard is for staff users.")
    return async_to_sync(_call)(_asgi_app(), request, path)


async def _call(app: Callable[..., Any], request: HttpRequest, path: str) -> HttpResponse:
    """One request through an ASGI app, answered as a Django response."""
    full = request.path
    sub = "/" + path
    root = full[: len(full) - len(sub)] if full.endswith(sub) else full.rstrip("/")
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1"))
        for key, value in request.META.items()
        if key.startswith("HTTP_")
    ]
    if "HTTP_HOST" not in request.META:  # the dashboard's Origin check compares against it
        headers.append((b"host", request.get_host().encode("latin-1")))
    for meta, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
        if request.META.get(meta):
            headers.append((name, str(request.META[meta]).encode("latin-1")))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": root + sub,
        "raw_path": (root + sub).encode(),
        "root_path": root,
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (request.META.get("REMOTE_ADDR") or "127.0.0.1", 0),
        "server": (request.get_host().rsplit(":", 1)[0], int(request.get_port())),
    }
    body = request.body
    sent = False
    status = 500
    response_headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, response_headers
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    response = HttpResponse(b"".join(chunks), status=status)
    for raw_name, value in response_headers:
        header = raw_name.decode("latin-1")
        if header.lower() == "set-cookie":  # several may come; Django keeps cookies apart
            response.cookies.load(value.decode("latin-1"))
            continue
        response.headers[header] = value.decode("latin-1")
    return response
