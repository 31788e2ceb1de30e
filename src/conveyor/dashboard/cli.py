"""``conveyor dashboard module:app``: serve the dashboard alone with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..app import Conveyor


def _load_app(spec: str) -> Conveyor:
    """``module:attribute`` → the Conveyor object, exactly as ``conveyor worker`` finds it."""
    from ..cli import load_app  # imported here: conveyor.cli imports this module

    return load_app(spec)


@click.command("dashboard")
@click.argument("app_spec", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--password",
    envvar="CONVEYOR_DASHBOARD_PASSWORD",
    default=None,
    help="Password for the login page [env CONVEYOR_DASHBOARD_PASSWORD; prefer it: arguments show in ps].",
)
@click.option(
    "--token",
    envvar="CONVEYOR_DASHBOARD_TOKEN",
    default=None,
    help="Token for 'Authorization: Bearer' (and the login page) [env CONVEYOR_DASHBOARD_TOKEN].",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option("--metrics-public", is_flag=True, help="Serve /metrics without login (for Prometheus).")
@click.option(
    "--root-path",
    default="",
    help="URL prefix that a proxy in front strips before forwarding (links keep it).",
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Trust X-Forwarded-Proto/For from a proxy at $FORWARDED_ALLOW_IPS (default 127.0.0.1).",
)
def dashboard_command(
    app_spec: str,
    host: str,
    port: int,
    password: str | None,
    token: str | None,
    read_only: bool,
    metrics_public: bool,
    root_path: str,
    proxy_headers: bool,
) -> None:
    """Serve the web dashboard of APP (module:attribute, e.g. myapp.tasks:app).

    Bound to a loopback address (the default) it opens without login for a browser on this
    machine; bound to any other address it needs --password or --token (or the environment
    variables) and refuses to start without them.
    """
    from .security import is_loopback

    conveyor_app = _load_app(app_spec)
    has_secret = bool(password or token)
    if not is_loopback(host) and not has_secret:
        raise click.UsageError(
            f"--host {host} is reachable from other machines, so the dashboard needs a password: "
            "set CONVEYOR_DASHBOARD_PASSWORD (or --token / CONVEYOR_DASHBOARD_TOKEN), or use "
            "--host 127.0.0.1."
        )
    try:
        import uvicorn

        from . import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs its extras ({exc.name} is missing): pip install 'conveyor[dashboard]'"
        ) from exc
    asgi = create_app(
        conveyor_app,
        password=password,
        token=token,
        read_only=read_only,
        metrics_public=metrics_public,
        # Off loopback a login is always required, whatever the client address looks like.
        require_login=None if is_loopback(host) else True,
    )
    shown = f"[{host}]" if ":" in host else host
    mode = "read-only" if read_only else "read-write"
    click.echo(f"conveyor dashboard on http://{shown}:{port}{root_path}/ ({mode})")
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        root_path=root_path,
        proxy_headers=proxy_headers,
        log_level="warning",
        server_header=False,
    )
