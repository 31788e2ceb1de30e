"""``conveyor dashboard module:app``: serve the dashboard alone with uvicorn."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import click

from ..locate import find_app


def _base_url(host: str, port: int, root_path: str, public_url: str | None) -> str:
    """The address people open, ending in a slash."""
    if public_url:
        return public_url.rstrip("/") + "/"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{root_path.rstrip('/')}/"


@click.command("dashboard")
@click.argument("target", metavar="[MODULE:APP]", required=False)
@click.option("--app", "app_target", metavar="MODULE:APP", help="The app, as the argument names it.")
@click.option(
    "--url",
    help="A store to show when no app is named (else $CONVEYOR_APP, [tool.conveyor] app in "
    "pyproject.toml, $CONVEYOR_URL, sqlite:///conveyor.db).",
)
@click.option(
    "--namespace", default="conveyor", show_default=True, help="Namespace in the store (with --url)."
)
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
    help="Token for sign-in links (?token=), 'Authorization: Bearer' and the login page "
    "[env CONVEYOR_DASHBOARD_TOKEN]. Without a password or token, a random one is made at start.",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option("--metrics-public", is_flag=True, help="Serve /metrics without login (for Prometheus).")
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="The URL people open when a reverse proxy is in front (https://ops.example.com/jobs): "
    "the CSRF check compares the browser's Origin with it instead of the Host header the proxy "
    "sends, the sign-in link uses it, and its path is the default --root-path.",
)
@click.option(
    "--root-path",
    default=None,
    help="URL prefix that a proxy in front strips before forwarding (links keep it).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Comma-separated proxy addresses (or *) whose X-Forwarded-Proto/For headers are trusted.",
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Trust X-Forwarded-Proto/For from a proxy at $FORWARDED_ALLOW_IPS (default 127.0.0.1).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="DANGEROUS: serve every page and action to anyone who reaches the port, with no "
    "password or token. Only behind something else that authenticates (an SSO proxy); "
    "behind a plain reverse proxy it opens every job to the world.",
)
def dashboard_command(
    target: str | None,
    app_target: str | None,
    url: str | None,
    namespace: str,
    host: str,
    port: int,
    password: str | None,
    token: str | None,
    read_only: bool,
    metrics_public: bool,
    public_url: str | None,
    root_path: str | None,
    forwarded_allow_ips: str | None,
    proxy_headers: bool,
    insecure_no_auth: bool,
) -> None:
    """Serve the web dashboard of an app (MODULE:APP, e.g. myapp.tasks:app) or of a store
    (--url), found as every command finds it.

    Every page needs a credential. With no --password or --token (nor their environment
    variables) on a loopback address, a random token is made and the link that carries it is
    printed once: open it to sign in, as with Jupyter. On any other address a password or
    token is required. Behind a reverse proxy, pass --public-url (see docs/dashboard.md).
    """
    from .security import full_origin, is_loopback

    if public_url is not None and full_origin(public_url) is None:
        raise click.BadParameter("an absolute http:// or https:// URL", param_hint="--public-url")
    if root_path is None:
        root_path = urlsplit(public_url).path.rstrip("/") if public_url else ""
    conveyor_app = find_app(target or app_target, url, namespace=namespace).app
    made_token = None
    if not (password or token or insecure_no_auth):
        if not is_loopback(host):
            raise click.UsageError(
                f"--host {host} is reachable from other machines, so the dashboard needs a password: "
                "set CONVEYOR_DASHBOARD_PASSWORD (or --token / CONVEYOR_DASHBOARD_TOKEN), or use "
                "--host 127.0.0.1."
            )
        made_token = token = secrets.token_urlsafe(24)
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
        public_url=public_url,
        insecure_no_auth=insecure_no_auth,
    )
    base = _base_url(host, port, root_path, public_url)
    mode = "read-only" if read_only else "read-write"
    click.echo(f"conveyor dashboard on {base} ({mode})")
    if made_token is not None:
        click.echo(f"Open this link to sign in (the token is new at every start): {base}?token={made_token}")
    uvicorn.run(
        asgi,
        host=host,
        port=port,
        root_path=root_path,
        proxy_headers=proxy_headers or forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="warning",
        server_header=False,
    )
