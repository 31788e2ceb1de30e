"""The web dashboard: an ASGI app over the admin API, for every store.

``app.dashboard()`` (or ``create_app(app)``) returns a Starlette app to mount in Starlette,
FastAPI, Django (ASGI) or Flask (through a2wsgi), or to serve with ``conveyor dashboard``.
See docs/dashboard.md. Needs ``conveyor[dashboard]``; importing this package alone imports
no web framework, so the CLI can list the command without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..app import Conveyor
    from .security import Authorize

__all__ = ["create_app"]


def create_app(
    conveyor_app: Conveyor,
    *,
    password: str | None = None,
    token: str | None = None,
    read_only: bool = False,
    authorize: Authorize | None = None,
    secure_cookies: bool | None = None,
    require_login: bool | None = None,
    metrics: bool = True,
    metrics_public: bool = False,
    trusted_origins: Sequence[str] = (),
    session_key: str | bytes | None = None,
    session_max_age: int = 12 * 3600,
    title: str = "conveyor",
    refresh: float = 3.0,
) -> Starlette:
    """The dashboard for ``conveyor_app`` as an ASGI (Starlette) app.

    Access: with ``password`` or ``token`` (default ``$CONVEYOR_DASHBOARD_PASSWORD`` and
    ``$CONVEYOR_DASHBOARD_TOKEN``) every page needs a login, or ``Authorization: Bearer
    <token>`` for scripts. ``authorize(request) -> bool`` (may be async) lets the host app
    admit its own users; a False answer falls back to the login, if there is one. With none
    of these, the dashboard serves only a browser on this machine over a loopback address
    and refuses everyone else with a page saying what to configure. ``require_login``
    overrides the loopback rule: True always asks for a login; False never does (only behind
    something else that checks, such as an authenticating proxy).

    ``read_only`` hides every action and refuses every POST. ``secure_cookies`` forces the
    Secure cookie flag (default: set when the request came over TLS). ``trusted_origins``
    adds origins accepted in the CSRF Origin check (besides the request's own host), for
    proxies that rewrite ``Host``. ``session_key`` signs the session cookie (default: derived
    from the password/token). ``metrics`` serves ``/metrics``; ``metrics_public`` serves it
    without login, for a Prometheus that cannot log in. ``refresh`` is seconds between
    live updates.
    """
    try:
        from .server import create_app as build
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"the dashboard needs its extras ({exc.name} is missing): pip install 'conveyor[dashboard]'"
        ) from exc
    return build(
        conveyor_app,
        password=password,
        token=token,
        read_only=read_only,
        authorize=authorize,
        secure_cookies=secure_cookies,
        require_login=require_login,
        metrics=metrics,
        metrics_public=metrics_public,
        trusted_origins=trusted_origins,
        session_key=session_key,
        session_max_age=session_max_age,
        title=title,
        refresh=refresh,
    )
