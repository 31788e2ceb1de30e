"""Who may see the dashboard, and which requests may change anything.

The rules, in the order ``Guard`` applies them:

* Every response carries a strict Content-Security-Policy (no inline script), ``X-Frame-Options:
  DENY``, ``nosniff`` and ``Referrer-Policy: same-origin``; pages are never cached.
* Static files and the login page are public; everything else needs access.
* Access is granted by a valid session (after logging in with the password or token, or after
  opening a link that carries the token as ``?token=``, as Jupyter's does), by an
  ``Authorization: Bearer`` header carrying the token (for scripts; no cookie, so no CSRF), or by
  the host application's ``authorize(request)`` hook. Nothing else: where a request comes from
  proves nothing, because a reverse proxy on the same machine makes every request look local
  (nginx's default ``proxy_pass`` sends no forwarding header and rewrites ``Host``).
* With no password, token or hook the dashboard serves nothing but a page saying how to set
  one, unless it was built with ``insecure_no_auth=True``. ``conveyor dashboard`` never gets
  there: without a secret it makes a random token and prints the link that carries it.
* Every state change is a POST carrying the session's CSRF token and an ``Origin`` (or
  ``Referer``) naming the origin the browser used: the configured public URL, else the request's
  ``Host``. Read-only mode refuses them all. GET never changes a job.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Authorize = Callable[[Request], "bool | Awaitable[bool]"]

COOKIE = "conveyor_dashboard"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
#: The query parameter of a sign-in link (``/?token=...``).
TOKEN_PARAM = "token"
#: Paths served to anyone: the assets the login page needs, and the login itself.
_PUBLIC_PREFIXES = ("/static/",)
_PUBLIC_PATHS = frozenset({"/login"})


class Refused(Exception):
    """A request the dashboard will not serve; rendered as an error page (or JSON)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass(frozen=True)
class Settings:
    """The dashboard's security configuration, fixed when the app is created."""

    secrets: tuple[bytes, ...] = ()
    read_only: bool = False
    authorize: Authorize | None = None
    secure_cookies: bool | None = None
    insecure_no_auth: bool = False
    metrics: bool = True
    metrics_public: bool = False
    trusted_origins: frozenset[str] = frozenset()
    #: ``scheme://host[:port]`` of the configured public URL, when one is set.
    public_origin: str | None = None
    session_max_age: int = 12 * 3600
    session_key: bytes = field(default=b"", repr=False)

    @staticmethod
    def create(
        *,
        password: str | None,
        token: str | None,
        read_only: bool,
        authorize: Authorize | None,
        secure_cookies: bool | None,
        insecure_no_auth: bool,
        metrics: bool,
        metrics_public: bool,
        trusted_origins: Sequence[str],
        public_url: str | None,
        session_key: str | bytes | None,
        session_max_age: int,
    ) -> Settings:
        password = password if password is not None else os.environ.get("CONVEYOR_DASHBOARD_PASSWORD")
        token = token if token is not None else os.environ.get("CONVEYOR_DASHBOARD_TOKEN")
        found = tuple(s.encode() for s in (password, token) if s)
        if session_key is None:
            # Derived from the secrets, so several dashboard processes behind one balancer
            # accept each other's sessions, and changing the password logs everybody out.
            # Without secrets the session only holds a CSRF token: a random key will do.
            key = (
                hmac.new(b"\0".join(found), b"conveyor.dashboard.session", hashlib.sha256).digest()
                if found
                else os.urandom(32)
            )
        else:
            key = session_key.encode() if isinstance(session_key, str) else session_key
        public_origin = None if not public_url else full_origin(public_url)
        if public_url and public_origin is None:
            raise ValueError(f"public_url must be an absolute http(s) URL, got {public_url!r}")
        if secure_cookies is None and public_origin is not None and public_origin.startswith("https:"):
            secure_cookies = True
        return Settings(
            secrets=found,
            read_only=read_only,
            authorize=authorize,
            secure_cookies=secure_cookies,
            insecure_no_auth=insecure_no_auth,
            metrics=metrics,
            metrics_public=metrics_public,
            trusted_origins=frozenset(_origin_netloc(o) for o in trusted_origins),
            public_origin=public_origin,
            session_max_age=session_max_age,
            session_key=key,
        )

    @property
    def can_log_in(self) -> bool:
        return bool(self.secrets)

    def check_secret(self, candidate: str) -> bool:
        """Constant-time comparison against every configured secret."""
        given = candidate.encode()
        ok = False
        for secret in self.secrets:
            ok |= hmac.compare_digest(given, secret)
        return ok and bool(given)


@dataclass
class Session:
    """What the signed session cookie holds: whether the user logged in, the CSRF token,
    and a one-shot message for the next page."""

    authenticated: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: str | None = None
    dirty: bool = False

    def log_in(self) -> None:
        # A fresh CSRF token at login: a token planted before login is worthless after it.
        self.authenticated = True
        self.csrf = secrets.token_urlsafe(32)
        self.dirty = True

    def log_out(self) -> None:
        self.authenticated = False
        self.csrf = secrets.token_urlsafe(32)
        self.dirty = True

    def set_flash(self, text: str) -> None:
        self.flash = text
        self.dirty = True

    def pop_flash(self) -> str | None:
        text, self.flash = self.flash, None
        if text is not None:
            self.dirty = True
        return text


@dataclass(frozen=True)
class Access:
    """How the current request was let in. ``api`` requests (Bearer) skip the CSRF check:
    a browser never adds that header on its own."""

    api: bool = False
    logged_in: bool = False


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("[") and "]" in host:
        host = host[1 : host.index("]")]
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin_netloc(origin: str) -> str:
    """``scheme://host:port`` → ``host[:port]`` with the default ports dropped."""
    parts = urlsplit(origin.strip().lower())
    netloc = parts.netloc or parts.path
    for default in (":80", ":443"):
        if netloc.endswith(default):
            netloc = netloc[: -len(default)]
    return netloc


def full_origin(url: str) -> str | None:
    """``https://Host:443/path`` → ``https://host``: scheme and host lower-cased, the default
    port dropped, as browsers write the ``Origin`` header. None for anything but http(s)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return None
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def session(request: Request) -> Session:
    found: Session = request.scope["conveyor.session"]
    return found


def access(request: Request) -> Access:
    found: Access = request.scope.get("conveyor.access", Access())
    return found


def csrf_token(request: Request) -> str:
    return session(request).csrf


def origin_ok(request: Request, settings: Settings) -> bool:
    """The POST comes from a page of this dashboard: its Origin (or, failing that, its
    Referer) names the origin the browser used, or a trusted origin. That origin is the
    configured public URL (scheme and host) when there is one: behind a proxy, ``Host`` is
    whatever the proxy chose to send. Without one it is the request's ``Host``. A browser
    always sends Origin or Referer on a POST; a request with neither is refused."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null" or "://" not in source:
        return False
    netloc = _origin_netloc(source)
    if not netloc:
        return False
    if netloc in settings.trusted_origins:
        return True
    if settings.public_origin is not None:
        given = full_origin(source)
        return given is not None and hmac.compare_digest(given, settings.public_origin)
    host = _origin_netloc("//" + request.headers.get("host", "")) if "host" in request.headers else ""
    return bool(host) and hmac.compare_digest(netloc, host)


def check_csrf(request: Request, settings: Settings, form_token: str | None) -> None:
    """Refuse a state-changing request without a same-origin source and the session's token."""
    if access(request).api:
        return
    if not origin_ok(request, settings):
        raise Refused(403, "Request refused", "The request did not come from a page of this dashboard.")
    given = form_token or request.headers.get(CSRF_HEADER) or ""
    if not given or not hmac.compare_digest(given.encode(), session(request).csrf.encode()):
        raise Refused(
            403, "Request refused", "The form was missing its security token or it expired; reload and retry."
        )


def check_writable(settings: Settings) -> None:
    if settings.read_only:
        raise Refused(
            403, "Read-only dashboard", "This dashboard is read-only: it cannot change jobs or queues."
        )


def _without_token(request: Request) -> str:
    """The path and query of a sign-in link with its token taken out, to redirect to."""
    root = (request.scope.get("root_path") or "").rstrip("/")
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
    query = urlencode(kept)
    return root + (get_route_path(request.scope) or "/") + ("?" + query if query else "")


class Guard:
    """ASGI middleware: headers on every response, the session cookie, and the access rule."""

    def __init__(self, app: ASGIApp, settings: Settings, refuse: Callable[[Request, Refused], Any]) -> None:
        self.app = app
        self.settings = settings
        self.refuse = refuse
        self.serializer = URLSafeTimedSerializer(settings.session_key, salt="conveyor.dashboard")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = self._load(request)
        scope["conveyor.session"] = state
        scope["conveyor.settings"] = self.settings

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                headers.extend(SECURITY_HEADERS)
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                if state.dirty:
                    headers.append((b"set-cookie", self._cookie(request, state).encode("latin-1")))
                message["headers"] = headers
            await send(message)

        path = get_route_path(scope)
        if path.startswith(_PUBLIC_PREFIXES):
            state.dirty = False  # assets need no session; only pages hand one out
        try:
            if TOKEN_PARAM in request.query_params and request.method in ("GET", "HEAD"):
                response = self._sign_in_link(request, state)
                await response(scope, receive, send_with_headers)
                return
            if not self._public(path):
                scope["conveyor.access"] = granted = await self._admit(request, state, path)
                if granted.api:
                    state.dirty = False  # scripts with a token get no cookie
        except Refused as refused:
            response = self.refuse(request, refused)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _sign_in_link(self, request: Request, state: Session) -> Response:
        """``?token=...``: a valid token logs the session in and redirects to the same page
        without it, so the token leaves the address bar and never reaches a Referer."""
        given = request.query_params.get(TOKEN_PARAM, "")
        if not (self.settings.secrets and self.settings.check_secret(given)):
            raise Refused(401, "Not authenticated", "The token in this link was not accepted.")
        state.log_in()
        return RedirectResponse(_without_token(request), status_code=303)

    def _public(self, path: str) -> bool:
        if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
            return True
        return path == "/metrics" and self.settings.metrics_public

    async def _admit(self, request: Request, state: Session, path: str) -> Access:
        settings = self.settings
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        # Other schemes (say, Basic from an authenticating proxy in front) are not ours.
        if scheme.lower() == "bearer":
            if settings.secrets and settings.check_secret(value.strip()):
                return Access(api=True)
            raise Refused(401, "Not authenticated", "The bearer token was not accepted.")
        if state.authenticated and settings.can_log_in:
            return Access(logged_in=True)
        if settings.authorize is not None:
            verdict = settings.authorize(request)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is True:
                return Access()
        if settings.insecure_no_auth:
            return Access()
        if not settings.secrets:
            if settings.authorize is not None:
                raise Refused(403, "Not authorized", "You are not allowed to see this dashboard.")
            raise Refused(
                403,
                "Dashboard locked",
                "No password, token or authorize hook is configured, so this dashboard serves "
                "nothing. Set CONVEYOR_DASHBOARD_PASSWORD or CONVEYOR_DASHBOARD_TOKEN (or pass "
                "password=, token= or authorize= to app.dashboard()); `conveyor dashboard` "
                "without them makes a token and prints a link that carries it.",
            )
        raise Refused(401, "Log in", "Log in to see this dashboard.")

    def _load(self, request: Request) -> Session:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self.serializer.loads(raw, max_age=self.settings.session_max_age)
            except BadSignature:
                data = None
            if isinstance(data, dict) and isinstance(data.get("c"), str):
                flash = data.get("f")
                return Session(
                    authenticated=data.get("a") is True,
                    csrf=data["c"],
                    flash=flash if isinstance(flash, str) else None,
                )
        return Session(dirty=True)

    def _cookie(self, request: Request, state: Session) -> str:
        data: dict[str, Any] = {"a": state.authenticated, "c": state.csrf}
        if state.flash:
            data["f"] = state.flash[:300]
        value = self.serializer.dumps(data)
        secure = self.settings.secure_cookies
        if secure is None:
            secure = request.url.scheme in ("https", "wss")
        path = (request.scope.get("root_path") or "").rstrip("/") + "/"
        parts = [
            f"{COOKIE}={value}",
            f"Path={path}",
            f"Max-Age={self.settings.session_max_age}",
            "HttpOnly",
            "SameSite=Strict",
        ]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)
