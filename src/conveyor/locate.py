"""Finding the app a command works on, the same way for every ``conveyor`` command.

In order: ``--app MODULE:APP``; an explicit ``--url``; ``$CONVEYOR_APP``; ``app = "MODULE:APP"``
under ``[tool.conveyor]`` in the working directory's ``pyproject.toml``; ``$CONVEYOR_URL``;
``sqlite:///conveyor.db``. What was found without being named on the command line is said on
stderr (the store's URL without its password), so an empty listing from the wrong store never
passes for an empty queue.

An explicit ``--url`` comes before the environment and pyproject.toml: a flag typed for this
one command (the demo prints such commands) must not be overridden by a setting made for
the whole shell or project.

Kept apart from ``conveyor.cli`` so that other commands (``conveyor.dashboard.cli``) can use
it without importing the CLI module, which imports them.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .app import DEFAULT_URL, Conveyor
from .redaction import redact_url

APP_ENV = "CONVEYOR_APP"
URL_ENV = "CONVEYOR_URL"


@dataclass(frozen=True, slots=True)
class Found:
    """The app a command opened, and where it came from."""

    app: Conveyor
    #: ``--app``, ``--url``, ``$CONVEYOR_APP``, ``pyproject.toml``, ``$CONVEYOR_URL`` or ``default``.
    source: str
    #: The ``MODULE:APP`` loaded, or None when only a store was opened.
    target: str | None

    @property
    def explicit(self) -> bool:
        return self.source in ("--app", "--url")

    def describe(self) -> str:
        """One line: which store, through which app, found how."""
        store = f"store {redact_url(self.app.url)}"
        if self.app.namespace != "conveyor":
            store += f" (namespace {self.app.namespace})"
        if self.source == "default":
            return (
                f"{store}: the default; no --app, ${APP_ENV}, [tool.conveyor] app in "
                f"pyproject.toml, --url or ${URL_ENV} was given"
            )
        if self.target is not None:
            return f"app {self.target} (from {self.source}), {store}"
        return f"{store} (from {self.source})"


def find_app(
    app: str | None = None,
    url: str | None = None,
    *,
    namespace: str = "conveyor",
    need_app: bool = False,
    quiet: bool = False,
) -> Found:
    """The app (or bare store) a command should use; see the module docstring for the order.

    ``app`` and ``url`` are what the command line gave (None when not given). With
    ``need_app`` (commands that run or enqueue tasks) a store alone is not enough: finding no
    app is a usage error naming the ways to give one. Unless ``quiet``, an app or store found
    without ``--app``/``--url`` is announced on stderr.
    """
    found = _find(app, url, namespace, need_app)
    if not found.explicit and not quiet:
        click.echo(f"conveyor: {found.describe()}", err=True)
    return found


def _find(app: str | None, url: str | None, namespace: str, need_app: bool) -> Found:
    if app:
        return Found(load_app(app), "--app", app)
    if url and not need_app:
        return Found(Conveyor(url, namespace=namespace), "--url", None)
    target = os.environ.get(APP_ENV)
    if target:
        return Found(load_app(target, f"${APP_ENV}"), f"${APP_ENV}", target)
    target = pyproject_app(Path.cwd())
    if target:
        return Found(load_app(target, "pyproject.toml"), "pyproject.toml", target)
    if need_app:
        raise click.UsageError(
            "which app? give MODULE:APP (e.g. myapp.tasks:app), or set $CONVEYOR_APP, or put "
            'app = "myapp.tasks:app" under [tool.conveyor] in pyproject.toml'
        )
    env_url = os.environ.get(URL_ENV)
    if env_url:
        return Found(Conveyor(env_url, namespace=namespace), f"${URL_ENV}", None)
    return Found(Conveyor(DEFAULT_URL, namespace=namespace), "default", None)


def pyproject_app(directory: Path) -> str | None:
    """``[tool.conveyor] app`` of ``directory/pyproject.toml``, if it names one."""
    import tomllib  # here: a worker started with its app named never reads the file

    path = directory / "pyproject.toml"
    try:
        with path.open("rb") as file:
            data: dict[str, Any] = tomllib.load(file)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    value = data.get("tool", {}).get("conveyor", {}).get("app")
    if value is None:
        return None
    if not isinstance(value, str):
        raise click.ClickException(f'{path}: [tool.conveyor] app must be a string, "module:attribute"')
    return value


def load_app(target: str, origin: str | None = None) -> Conveyor:
    """The ``Conveyor`` named by ``module:attribute`` (as uvicorn and flask name apps).

    The module is found from the working directory first, as ``python -m`` would. Errors
    are one line (``origin``, e.g. ``$CONVEYOR_APP``, says where a bad target came from).
    """
    where = f" (from {origin})" if origin else ""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.UsageError(
            f"{target!r}{where} is not module:attribute; name the Conveyor app, e.g. myapp.tasks:app"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name!r}{where}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.ClickException(
                f"module {module_name!r} has no attribute {attribute!r}{where}"
            ) from None
    if not isinstance(obj, Conveyor):
        raise click.ClickException(f"{target}{where} is a {type(obj).__name__}, not a conveyor.Conveyor app")
    return obj
