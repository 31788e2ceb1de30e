"""The project's conveyor app, configured from Django settings.

``CONVEYOR_URL`` names the store; ``CONVEYOR`` is a dict of ``Conveyor`` keyword arguments
(lower or upper case keys: ``{"NAMESPACE": "shop"}`` and ``{"namespace": "shop"}`` are the
same), plus ``database``: the Django database alias whose transactions jobs join (default
``"default"``). Without either setting the app reads ``$CONVEYOR_URL`` as any app does.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from ...app import Conveyor
from ...errors import ConfigurationError
from .transaction import DjangoConveyor

#: Keys of ``CONVEYOR`` (and of a ``ConveyorBackend``'s ``OPTIONS``) that configure the app:
#: ``Conveyor``'s own arguments, read from its signature so that none is ever missing here,
#: and ``database``.
APP_OPTIONS = frozenset(inspect.signature(Conveyor.__init__).parameters) - {"self"} | {"database"}

_app: DjangoConveyor | None = None
_lock = threading.Lock()


def app_options(
    options: Mapping[str, Any], where: str, allowed: frozenset[str] = APP_OPTIONS
) -> dict[str, Any]:
    """``options`` with lower-case keys, checked against ``allowed`` (a typo must not pass
    for a default)."""
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{where} must be a dict of Conveyor options, not {type(options).__name__}")
    normalized = {str(key).lower(): value for key, value in options.items()}
    unknown = sorted(set(normalized) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; expected some of "
            f"{', '.join(sorted(allowed))}"
        )
    return normalized


def configured_options() -> dict[str, Any]:
    """The project's app options from ``CONVEYOR`` and ``CONVEYOR_URL`` (which wins)."""
    options = app_options(getattr(settings, "CONVEYOR", {}), "settings.CONVEYOR")
    url = getattr(settings, "CONVEYOR_URL", None)
    if url:
        options["url"] = url
    return options


def build_app(options: Mapping[str, Any]) -> DjangoConveyor:
    options = dict(options)
    return DjangoConveyor(options.pop("url", None), **options)


def get_app() -> DjangoConveyor:
    """The project's app, built from settings on first use (building it opens nothing)."""
    global _app
    if _app is None:
        with _lock:
            if _app is None:
                _app = build_app(configured_options())
    return _app


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """``get_app().task``: register a function on the project's app, bare (``@task``) or with
    options (``@task(queue="mail", retries=5)``)."""
    app = get_app()
    return app.task(fn, **options) if fn is not None else app.task(**options)


def _forget_app(*, setting: str, **kwargs: Any) -> None:
    """``override_settings`` of the app's settings gives the next ``get_app()`` a new app."""
    global _app
    if setting in ("CONVEYOR", "CONVEYOR_URL"):
        with _lock:
            old, _app = _app, None
        if old is not None:
            old.close()


setting_changed.connect(_forget_app, dispatch_uid="conveyor.contrib.django.project")

__all__ = ["APP_OPTIONS", "Conveyor", "app_options", "build_app", "configured_options", "get_app", "task"]
