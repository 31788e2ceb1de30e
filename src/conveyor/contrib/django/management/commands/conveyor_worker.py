"""``manage.py conveyor_worker``: ``conveyor worker`` for a Django project.

Every option of ``conveyor worker`` is here, read from that command itself so the two never
drift apart; the app is the project's (``conveyor.contrib.django.worker:app``), or with
``--tasks-backend ALIAS`` the app of that ``ConveyorBackend``.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentParser
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError

from conveyor import cli

#: ``conveyor worker`` parameters that name the app: here the project is the app.
_NOT_HERE = {"target", "app_target"}
TARGET = "conveyor.contrib.django.worker:app"


def _worker_options() -> list[click.Option]:
    return [p for p in cli.worker.params if isinstance(p, click.Option) and p.name not in _NOT_HERE]


class Command(BaseCommand):  # type: ignore[misc]  # Django is untyped here
    help = "Run conveyor jobs of this project until stopped (the options of `conveyor worker`)."
    # The worker checks nothing Django's checks would; skipping them starts it faster.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--tasks-backend",
            metavar="ALIAS",
            help="Run the jobs of this TASKS backend (a ConveyorBackend with its own store) "
            "instead of the project's app.",
        )
        for option in _worker_options():
            kwargs: dict[str, Any] = {"dest": f"conveyor_{option.name}", "help": option.help}
            if option.is_flag:
                kwargs["action"] = "store_true"
            else:
                kwargs["default"] = None
                kwargs["metavar"] = option.name.upper() if option.name else None
                if isinstance(option.type, click.Choice):
                    kwargs["choices"] = list(option.type.choices)
                    kwargs["metavar"] = None
                    if not option.type.case_sensitive:
                        kwargs["type"] = str.upper
                if option.show_default and option.default is not None:
                    kwargs["help"] = f"{option.help} [default: {option.default}]"
            parser.add_argument(*option.opts, **kwargs)

    def handle(self, *args: Any, **options: Any) -> None:
        target = TARGET
        if options["tasks_backend"]:
            target = f"conveyor.contrib.django.worker:backends.{options['tasks_backend']}"
        argv = [target]
        for option in _worker_options():
            value = options[f"conveyor_{option.name}"]
            if option.is_flag:
                if value:
                    argv.append(option.opts[0])
            elif value is not None:
                argv += [option.opts[0], str(value)]
        _children_find_project()
        try:
            cli.worker.main(args=argv, prog_name="manage.py conveyor_worker", standalone_mode=False)
        except click.ClickException as exc:
            raise CommandError(exc.format_message()) from None
        except SystemExit as exc:
            if exc.code:
                sys.exit(exc.code)


def _children_find_project() -> None:
    """Child processes (``--processes``, ``--pool process``) import the settings module
    from the project's directory, wherever they are started from."""
    project = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else os.getcwd()
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if project not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (project, *paths) if p)
