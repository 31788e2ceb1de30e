"""Flask integration: ``ConveyorExtension``, with ``init_app`` for the app-factory pattern.

::

    jobs = ConveyorExtension()            # in extensions.py; tasks register on it at import

    @jobs.task(queue="mail")
    def send_welcome(email: str) -> None: ...

    def create_app() -> Flask:
        flask_app = Flask(__name__)
        flask_app.config["CONVEYOR_URL"] = "postgresql:///shop"
        jobs.init_app(flask_app)
        return flask_app

Config keys: ``CONVEYOR_URL`` (the store; else ``$CONVEYOR_URL``, as any app), and
``CONVEYOR_DASHBOARD_PATH`` (e.g. ``"/jobs"``: the dashboard served under that path, through
a2wsgi) with ``CONVEYOR_DASHBOARD`` (``app.dashboard()`` keywords, e.g. ``{"password": ...}``).
Each job runs inside the Flask app's application context, so ``current_app`` and extensions
bound to it work in tasks. The worker loads the conveyor app from a module that runs the
factory: with ``wsgi.py`` holding ``app = create_app()`` and ``from .extensions import jobs``,
``conveyor worker wsgi:jobs.app``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flask import Flask

from ..app import Conveyor
from ..errors import ConfigurationError
from ..middleware import Middleware
from ..running import CurrentJob

EXTENSION = "conveyor"


class AppContext(Middleware):
    """Runs each job inside the Flask app's application context."""

    def __init__(self, flask_app: Flask) -> None:
        self.flask_app = flask_app

    def around_run(self, job: CurrentJob, call_next: Callable[[], Any]) -> Any:
        with self.flask_app.app_context():
            return call_next()

    async def around_run_async(self, job: CurrentJob, call_next: Callable[[], Awaitable[Any]]) -> Any:
        with self.flask_app.app_context():
            return await call_next()


class ConveyorExtension:
    """A conveyor app for a Flask app: ``jobs.app`` is the ``Conveyor``, ``jobs.task``
    registers tasks on it (before or after ``init_app``). ``options`` are ``Conveyor``
    keyword arguments; the URL may wait for ``init_app`` and the Flask config."""

    def __init__(self, flask_app: Flask | None = None, *, url: str | None = None, **options: Any) -> None:
        self.app = Conveyor(url, **options)
        #: ``app.task``: ``@jobs.task`` or ``@jobs.task(queue=..., retries=...)``.
        self.task = self.app.task
        self._url_given = url is not None
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Flask) -> None:
        """Bind to ``flask_app``: its ``CONVEYOR_URL`` (unless the constructor gave a URL), its
        application context around every job, and the dashboard if configured. A factory
        may call it again for a new Flask app (as test suites do): the latest app wins, and a
        store opened under another URL is closed first."""
        url = flask_app.config.get("CONVEYOR_URL")
        if url and not self._url_given and url != self.app.url:
            self.app.close()
            self.app.url = url
        context = next((mw for mw in self.app.middleware if isinstance(mw, AppContext)), None)
        if context is None:
            self.app.add_middleware(AppContext(flask_app))
        else:
            context.flask_app = flask_app
        flask_app.extensions[EXTENSION] = self
        path = flask_app.config.get("CONVEYOR_DASHBOARD_PATH")
        if path:
            self._mount_dashboard(
                flask_app, str(path).rstrip("/"), dict(flask_app.config.get("CONVEYOR_DASHBOARD", {}))
            )

    def _mount_dashboard(self, flask_app: Flask, path: str, options: dict[str, Any]) -> None:
        try:
            from a2wsgi import ASGIMiddleware
        except ImportError:
            raise ConfigurationError(
                "CONVEYOR_DASHBOARD_PATH needs a2wsgi: pip install 'conveyor[flask]'"
            ) from None
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        dashboard: Any = ASGIMiddleware(self.app.dashboard(**options))
        flask_app.wsgi_app = DispatcherMiddleware(flask_app.wsgi_app, {path: dashboard})  # type: ignore[method-assign]


def get_extension(flask_app: Flask) -> ConveyorExtension:
    """The extension ``init_app`` attached to ``flask_app``."""
    found = flask_app.extensions.get(EXTENSION)
    if not isinstance(found, ConveyorExtension):
        raise ConfigurationError("this Flask app has no ConveyorExtension: call jobs.init_app(app)")
    return found
