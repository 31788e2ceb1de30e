"""The web dashboard: an ASGI app over the admin API, for every store.

``app.dashboard()`` (or ``create_app(app)``) returns a Starlette app to mount in Starlette,
FastAPI, Django (ASGI) or Flask (through a2wsgi), or to serve with ``conveyor dashboard``.
See docs/dashboard.md. Needs ``conveyor[dashboard]``; importing this package alone imports
no web framework, so the CLI can list the command without it: ``create_app`` is loaded from
``server`` on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name != "create_app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from .server import create_app
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"the dashboard needs its extras ({exc.name} is missing): pip install 'conveyor[dashboard]'"
        ) from exc
    return create_app
