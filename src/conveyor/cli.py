"""The ``conveyor`` command: run workers, look at queues and jobs, steer them.

User errors (a bad ``module:app``, an unknown task, a store that cannot be reached) print one
line and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import orjson

from .app import Conveyor
from .errors import ConveyorError
from .job import STATES, Job

F = TypeVar("F", bound=Callable[..., Any])

STATE_COLOURS = {
    "scheduled": "cyan",
    "pending": "blue",
    "active": "yellow",
    "retry": "magenta",
    "completed": "green",
    "dead": "red",
    "cancelled": "dim",
}


def load_app(target: str) -> Conveyor:
    """The ``Conveyor`` named by ``module:attribute`` (as uvicorn and flask name apps).

    The module is found from the working directory first, as ``python -m`` would.
    """
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise click.UsageError(
            f"{target!r} is not module:attribute; name the Conveyor app, e.g. myapp.tasks:app"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.ClickException(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(obj, Conveyor):
        raise click.ClickException(f"{target} is a {type(obj).__name__}, not a conveyor.Conveyor app")
    return obj


def _admin_app(app_target: str | None, url: str | None, namespace: str) -> Conveyor:
    if app_target:
        return load_app(app_target)
    return Conveyor(url, namespace=namespace)


def store_options(fn: F) -> F:
    """--app / --url / --namespace: which store an admin command looks at."""
    fn = click.option(
        "--namespace", default="conveyor", show_default=True, help="Namespace of the app in the store."
    )(fn)
    fn = click.option(
        "--url", envvar="CONVEYOR_URL", help="Store URL (default $CONVEYOR_URL, else sqlite:///conveyor.db)."
    )(fn)
    fn = click.option(
        "--app", "app_target", metavar="MODULE:APP", help="Take the store from this app instead of --url."
    )(fn)
    return fn


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    seconds = (datetime.now(UTC) - value).total_seconds()
    if abs(seconds) < 1:
        return "now"
    span = abs(seconds)
    text = (
        f"{span:.0f}s"
        if span < 60
        else f"{span / 60:.0f}m"
        if span < 3600
        else f"{span / 3600:.1f}h"
        if span < 86400
        else f"{span / 86400:.1f}d"
    )
    return f"{text} ago" if seconds > 0 else f"in {text}"


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None
        except (ConnectionError, OSError) as exc:
            raise click.ClickException(f"cannot reach the store: {exc}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="conveyor")
def main() -> None:
    """conveyor: background jobs for Python on SQLite, PostgreSQL or Redis.

    \b
    Run a worker:        conveyor worker myapp.tasks:app --queues mail,default
    See the queues:      conveyor info
    See dead jobs:       conveyor jobs --state dead
    Retry them:          conveyor retry --all-dead
    Try it all:          conveyor demo
    """


@main.command()
@click.argument("target", metavar="MODULE:APP")
@click.option(
    "--queues",
    "-q",
    default=None,
    help="Queues to serve: 'a,b,c' in strict order, or weighted 'critical:6,default:3,low:1'. "
    "Default: every queue, 'default' first.",
)
@click.option(
    "--concurrency", "-c", default=10, show_default=True, help="Threads (and async slots) per process."
)
@click.option(
    "--processes",
    "-p",
    default=1,
    show_default=True,
    help="Worker processes, supervised and replaced when they die.",
)
@click.option("--burst", is_flag=True, help="Exit once no job is ready.")
@click.option(
    "--grace", default=30.0, show_default=True, help="Seconds running jobs get to finish after SIGTERM."
)
@click.option(
    "--prefetch", default=None, type=int, help="Jobs held ready beyond --concurrency (default: as many)."
)
@click.option(
    "--log-level", default="INFO", show_default=True, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"])
)
def worker(
    target: str,
    queues: str | None,
    concurrency: int,
    processes: int,
    burst: bool,
    grace: float,
    prefetch: int | None,
    log_level: str,
) -> None:
    """Run jobs of the app MODULE:APP until stopped.

    SIGTERM or Ctrl-C stops fetching and lets running jobs finish for --grace seconds, then
    hands the rest back to the store; a second signal exits at once (leases bring the jobs
    back). A worker that dies loses nothing: its jobs return when their leases expire.
    """
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
    )
    if processes < 1 or concurrency < 1:
        raise click.UsageError("--processes and --concurrency must be at least 1")
    if processes > 1:
        from .worker.supervisor import Supervisor, child_command

        argv = [
            "worker",
            target,
            "--concurrency",
            str(concurrency),
            "--grace",
            str(grace),
            "--log-level",
            log_level,
        ]
        if queues:
            argv += ["--queues", queues]
        if burst:
            argv.append("--burst")
        if prefetch is not None:
            argv += ["--prefetch", str(prefetch)]
        load_app(target)  # fail here, once, rather than in every child
        sys.exit(Supervisor(child_command(argv), processes, grace, burst=burst).run())
    from .worker.supervisor import SUPERVISED_ENV, watch_parent

    app = load_app(target)
    supervisor = os.environ.get(SUPERVISED_ENV)
    runner = app.worker(queues, concurrency, burst=burst, grace=grace, prefetch=prefetch)
    # What is loaded by now (modules, the app and its tasks) lives as long as the process:
    # out of the cyclic collector's sight, no collection walks it again during the run, and
    # neither does the interpreter's teardown at exit (~50 ms with redis-py loaded).
    gc.freeze()
    runner.supervised = supervisor is not None
    if supervisor is not None:
        watch_parent(int(supervisor), runner.stop)
    sys.exit(runner.run())


@main.command()
@store_options
def info(app_target: str | None, url: str | None, namespace: str) -> None:
    """Jobs per queue and state, totals, and the workers alive."""
    from rich.console import Console
    from rich.table import Table

    app = _admin_app(app_target, url, namespace)
    stats = app.stats()
    console = Console()
    table = Table(title=f"conveyor · {app.url.split('@')[-1]} · namespace {app.namespace}")
    table.add_column("queue")
    for state in STATES:
        table.add_column(state, justify="right", style=STATE_COLOURS[state])
    table.add_column("oldest pending", justify="right")
    for queue in sorted(stats.queues, key=lambda q: (q != "default", q)):
        counts = stats.queues[queue]
        name = f"{queue} [yellow](paused)[/]" if queue in stats.paused else queue
        age = stats.oldest_pending.get(queue)
        table.add_row(
            name, *[str(counts.get(s, 0) or "") for s in STATES], "-" if age is None else f"{age:.1f}s"
        )
    console.print(table)
    console.print(f"processed {stats.processed} · failed {stats.failed}")
    workers = app.workers()
    if workers:
        wt = Table(title="workers")
        for col in ("id", "queues", "concurrency", "running", "last seen"):
            wt.add_column(col)
        for w in workers:
            seen = datetime.fromtimestamp(w.last_seen, UTC)
            wt.add_row(w.id, ",".join(w.queues), str(w.concurrency), str(len(w.running)), _when(seen))
        console.print(wt)
    else:
        console.print("[dim]no workers alive[/]")


@main.command()
@store_options
@click.option("--state", "-s", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--queue", "-q", help="Only jobs of this queue.")
@click.option("--search", help="Only jobs whose task name or arguments contain this text.")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--offset", default=0)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def jobs(
    app_target: str | None,
    url: str | None,
    namespace: str,
    state: str | None,
    queue: str | None,
    search: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    app = _admin_app(app_target, url, namespace)
    found = app.jobs(state=state, queue=queue, limit=limit, offset=offset, search=search)
    if as_json:
        for job in found:
            click.echo(orjson.dumps(_job_dict(job)).decode())
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(found)} jobs" + (f" · {state}" if state else ""))
    for col in ("id", "task", "queue", "state", "attempts", "enqueued", "args", "last error"):
        table.add_column(col, overflow="fold")
    for job in found:
        args = "[encrypted]" if job.encrypted else orjson.dumps(job.args).decode()
        table.add_row(
            job.id,
            escape(job.task),
            escape(job.queue),
            f"[{STATE_COLOURS.get(job.state, 'white')}]{job.state}[/]",
            f"{job.attempts}/{job.max_attempts}",
            _when(job.enqueued_at),
            escape(args[:60]),
            escape((job.last_error or "")[:80]),
        )
    Console().print(table)


def _job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "task": job.task,
        "args": job.args,
        "kwargs": job.kwargs,
        "queue": job.queue,
        "priority": job.priority,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "enqueued_at": job.enqueued_at.isoformat() if job.enqueued_at else None,
        "run_at": job.run_at.isoformat() if job.run_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "last_error": job.last_error,
        "result": job.return_value,
        "worker": job.worker,
        # Encrypted with a key this process does not hold: args, kwargs and result are hidden.
        "encrypted": job.encrypted,
    }


@main.command()
@store_options
@click.argument("job_id")
def show(app_target: str | None, url: str | None, namespace: str, job_id: str) -> None:
    """Everything about one job, with its error and traceback."""
    app = _admin_app(app_target, url, namespace)
    job = app.get_job(job_id)
    if job is None:
        raise click.ClickException(f"no job {job_id}")
    details = _job_dict(job)
    details["traceback"] = job.traceback
    click.echo(orjson.dumps(details, option=orjson.OPT_INDENT_2).decode())


def _act(action: str, ids: tuple[str, ...], app: Conveyor) -> None:
    changed: int = getattr(app, action)(*ids)  # one store call for all the ids
    click.echo(f"{action}: {changed} of {len(ids)} jobs")
    if changed < len(ids):
        sys.exit(1)


@main.command()
@store_options
@click.argument("ids", nargs=-1)
@click.option("--all-dead", is_flag=True, help="Retry every dead job (of --queue, if given).")
@click.option("--queue", "-q", help="With --all-dead: only this queue.")
def retry(
    app_target: str | None,
    url: str | None,
    namespace: str,
    ids: tuple[str, ...],
    all_dead: bool,
    queue: str | None,
) -> None:
    """Run dead, cancelled or waiting jobs again now, attempts reset."""
    app = _admin_app(app_target, url, namespace)
    if all_dead:
        click.echo(f"retry: {app.retry_all('dead', queue)} dead jobs back to pending")
        return
    if not ids:
        raise click.UsageError("give job ids, or --all-dead")
    _act("retry", ids, app)


@main.command()
@store_options
@click.argument("ids", nargs=-1, required=True)
def cancel(app_target: str | None, url: str | None, namespace: str, ids: tuple[str, ...]) -> None:
    """Cancel jobs that have not started."""
    _act("cancel", ids, _admin_app(app_target, url, namespace))


@main.command()
@store_options
@click.argument("ids", nargs=-1, required=True)
def delete(app_target: str | None, url: str | None, namespace: str, ids: tuple[str, ...]) -> None:
    """Delete jobs, whatever their state."""
    _act("delete", ids, _admin_app(app_target, url, namespace))


@main.command()
@store_options
@click.argument("queue")
def pause(app_target: str | None, url: str | None, namespace: str, queue: str) -> None:
    """Stop workers taking jobs from QUEUE (enqueue still works)."""
    _admin_app(app_target, url, namespace).pause(queue)
    click.echo(f"queue {queue!r} paused")


@main.command()
@store_options
@click.argument("queue")
def resume(app_target: str | None, url: str | None, namespace: str, queue: str) -> None:
    """Let workers take jobs from QUEUE again."""
    _admin_app(app_target, url, namespace).resume(queue)
    click.echo(f"queue {queue!r} resumed")


@main.command()
@click.argument("target", metavar="MODULE:APP")
@click.argument("task_name")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--queue", "-q", help="Override the task's queue.")
@click.option("--delay", type=float, help="Run no sooner than this many seconds from now.")
@click.option("--priority", type=int, help="Override the task's priority.")
def enqueue(
    target: str,
    task_name: str,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    delay: float | None,
    priority: int | None,
) -> None:
    """Enqueue one job of the registered task TASK_NAME; prints its id."""
    app = load_app(target)
    task = app.tasks.get(task_name)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise click.ClickException(f"no task {task_name!r} on {target}; registered: {known}")
    try:
        args, kwargs = orjson.loads(args_json), orjson.loads(kwargs_json)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.BadParameter("--args takes a JSON list and --kwargs a JSON object")
    options: dict[str, Any] = {}
    if queue:
        options["queue"] = queue
    if delay is not None:
        options["delay"] = delay
    if priority is not None:
        options["priority"] = priority
    try:
        job = task.using(**options).enqueue(*args, **kwargs)
    except TypeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(job.id)


@main.command()
@click.argument("target", metavar="MODULE:APP")
def migrate(target: str) -> None:
    """Create or upgrade the store's schema (applied automatically on first use too)."""
    app = load_app(target)
    run = getattr(app.backend, "migrate", None)
    if run is None:
        click.echo("this store needs no migrations")
        return
    applied = run()
    click.echo(f"applied migrations: {', '.join(map(str, applied))}" if applied else "schema is up to date")


@main.command()
@click.option("--jobs", "count", default=300, show_default=True, help="How many demo jobs to enqueue.")
@click.option("--db", default="conveyor-demo.db", show_default=True, help="SQLite file for the demo.")
@click.option("--concurrency", default=16, show_default=True)
def demo(count: int, db: str, concurrency: int) -> None:
    """Enqueue demo jobs into SQLite and run a real worker on them, live.

    Some jobs succeed, some fail and retry, some die, some wait for a later time, some are
    async: every path of the job lifecycle shows.
    """
    from .demo import run_demo

    sys.exit(run_demo(count, db, concurrency))


def _register_optional() -> None:
    try:
        from .dashboard.cli import dashboard_command
    except ImportError:

        @main.command(name="dashboard")
        def dashboard_missing() -> None:
            """Serve the web dashboard (needs: pip install 'conveyor[dashboard]')."""
            raise click.ClickException("the dashboard needs: pip install 'conveyor[dashboard]'")

        return
    main.add_command(dashboard_command, name="dashboard")


_register_optional()
