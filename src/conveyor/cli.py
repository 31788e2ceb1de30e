"""The ``conveyor`` command: run workers, look at queues and jobs, steer them.

User errors (a bad ``module:app``, an unknown task, a store that cannot be reached) print one
line and exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import click
import orjson

from .app import Conveyor
from .backends import Migrates, open_backend
from .errors import ConveyorError
from .extras import missing_extra
from .job import STATES, Job, WorkerInfo
from .limits import USAGE_COLUMNS, usage_row
from .locate import find_app
from .logs import FORMATS, LEVELS
from .logs import configure as configure_logging
from .page import JobPage
from .redaction import redact_url
from .render import Column, echo_json, plural, print_sections, print_table
from .task import check_name

if TYPE_CHECKING:
    from .periodic.status import ScheduleStatus

F = TypeVar("F", bound=Callable[..., Any])

STATE_COLOURS = {
    "waiting": "bright_black",
    "scheduled": "cyan",
    "pending": "blue",
    "active": "yellow",
    "retry": "magenta",
    "completed": "green",
    "dead": "red",
    "cancelled": "dim",
}


def _admin_app(app_target: str | None, url: str | None, namespace: str) -> Conveyor:
    return find_app(app_target, url, namespace=namespace).app


def store_options(fn: F) -> F:
    """--app / --url / --namespace: which store an admin command looks at."""
    fn = click.option(
        "--namespace", default="conveyor", show_default=True, help="Namespace in the store (with --url)."
    )(fn)
    fn = click.option(
        "--url",
        help="Store URL, when no app is named (else $CONVEYOR_URL, else sqlite:///conveyor.db).",
    )(fn)
    fn = click.option(
        "--app",
        "app_target",
        metavar="MODULE:APP",
        help="The app (and its store); else $CONVEYOR_APP, else [tool.conveyor] app in pyproject.toml.",
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
    """The commands, with ``dashboard`` loaded only when named (or listed, by ``--help``): its
    module brings the dashboard's options and imports, which a worker has no use for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "dashboard"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "dashboard" and cmd_name not in self.commands:
            self.add_command(_dashboard_command(), name="dashboard")
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None
        except ImportError as exc:
            line = missing_extra(exc)
            if line is None:
                raise
            raise click.ClickException(line) from None
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
@click.argument("target", metavar="[MODULE:APP]", required=False)
@click.option("--app", "app_target", metavar="MODULE:APP", help="The app, as the argument names it.")
@click.option(
    "--queues",
    "-q",
    default=None,
    help="Queues to serve: 'a,b,c' in strict order, or weighted 'critical:6,default:3,low:1'. "
    "Default: every queue, 'default' first.",
)
@click.option(
    "--concurrency",
    "-c",
    default=None,
    type=int,
    help="Threads per process (default 10), or child processes with --pool process (default: one per CPU).",
)
@click.option(
    "--pool",
    default="thread",
    show_default=True,
    type=click.Choice(["thread", "process"]),
    help="Where sync tasks run: threads, or child processes that a timeout kills (a hard stop).",
)
@click.option(
    "--max-tasks-per-child",
    default=None,
    type=int,
    help="--pool process: replace a child after this many jobs.",
)
@click.option(
    "--max-memory-per-child",
    default=None,
    type=float,
    help="--pool process: replace a child whose resident memory passes this many MB after a job.",
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
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(LEVELS, case_sensitive=False),
    help="INFO logs one line per finished job; WARNING only retries, dead jobs and problems.",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(FORMATS),
    help="text (coloured on a terminal) or json: one JSON object per line, for log shippers.",
)
def worker(
    target: str | None,
    app_target: str | None,
    queues: str | None,
    concurrency: int | None,
    pool: str,
    max_tasks_per_child: int | None,
    max_memory_per_child: float | None,
    processes: int,
    burst: bool,
    grace: float,
    prefetch: int | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run jobs of the app until stopped.

    The app is MODULE:APP, else --app, else $CONVEYOR_APP, else [tool.conveyor] app in the
    working directory's pyproject.toml.

    SIGTERM or Ctrl-C stops fetching and lets running jobs finish for --grace seconds, then
    hands the rest back to the store; a second signal exits at once (leases bring the jobs
    back). A worker that dies loses nothing: its jobs return when their leases expire.
    """
    configure_logging(log_level, log_format)
    if concurrency is None:
        concurrency = 10 if pool == "thread" else os.cpu_count() or 1
    if processes < 1 or concurrency < 1:
        raise click.UsageError("--processes and --concurrency must be at least 1")
    pool_args = _pool_args(pool, max_tasks_per_child, max_memory_per_child)
    found = find_app(target or app_target, need_app=True)
    app, target = found.app, found.target
    assert target is not None  # need_app: an app module was loaded
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
            "--log-format",
            log_format,
        ]
        argv += pool_args
        if queues:
            argv += ["--queues", queues]
        if burst:
            argv.append("--burst")
        if prefetch is not None:
            argv += ["--prefetch", str(prefetch)]
        sys.exit(Supervisor(child_command(argv), processes, grace, burst=burst).run())
    from .worker.supervisor import SUPERVISED_ENV, watch_parent

    supervisor = os.environ.get(SUPERVISED_ENV)
    runner = app.worker(
        queues,
        concurrency,
        burst=burst,
        grace=grace,
        prefetch=prefetch,
        pool=pool,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child=max_memory_per_child,
        app_target=target,
    )
    # What is loaded by now (modules, the app and its tasks) lives as long as the process:
    # out of the cyclic collector's sight, no collection walks it again during the run, and
    # neither does the interpreter's teardown at exit (~50 ms with redis-py loaded).
    gc.freeze()
    runner.supervised = supervisor is not None
    if supervisor is not None:
        watch_parent(int(supervisor), runner.stop)
    if burst and supervisor is None and sys.stdout.isatty() and sys.stderr.isatty():
        from .burst import run_with_progress

        sys.exit(run_with_progress(runner, log_level, log_format))
    sys.exit(runner.run())


def _pool_args(pool: str, max_tasks: int | None, max_memory: float | None) -> list[str]:
    """The pool options checked, as a supervised child's command line repeats them."""
    if pool == "thread" and (max_tasks is not None or max_memory is not None):
        raise click.UsageError("--max-tasks-per-child and --max-memory-per-child need --pool process")
    if max_tasks is not None and max_tasks < 1:
        raise click.UsageError("--max-tasks-per-child must be at least 1")
    if max_memory is not None and max_memory <= 0:
        raise click.UsageError("--max-memory-per-child must be a positive number of MB")
    args = ["--pool", pool]
    if max_tasks is not None:
        args += ["--max-tasks-per-child", str(max_tasks)]
    if max_memory is not None:
        args += ["--max-memory-per-child", str(max_memory)]
    return args


@main.command()
@store_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
def info(app_target: str | None, url: str | None, namespace: str, as_json: bool) -> None:
    """Jobs per queue and state, totals, and the workers alive."""
    app = _admin_app(app_target, url, namespace)
    stats = app.stats()
    workers = app.workers()
    if as_json:
        echo_json(
            {
                "store": redact_url(app.url),
                "namespace": app.namespace,
                "queues": stats.queues,
                "paused": sorted(stats.paused),
                "oldest_pending": stats.oldest_pending,
                "processed": stats.processed,
                "failed": stats.failed,
                "limits": [u.as_dict() for u in stats.limits],
                "workers": [_worker_dict(w) for w in workers],
            }
        )
        return
    columns = [
        Column("queue", least=12),
        *(Column(state, right=True, style=STATE_COLOURS[state]) for state in STATES),
        Column("oldest", right=True, drop=1),
    ]
    rows = []
    for queue in sorted(stats.queues, key=lambda q: (q != "default", q)):
        counts = stats.queues[queue]
        age = stats.oldest_pending.get(queue)
        name = f"{queue} (paused)" if queue in stats.paused else queue
        rows.append([name, *[counts.get(s, 0) for s in STATES], "-" if age is None else f"{age:.1f}s"])
    title = f"{redact_url(app.url)} · namespace {app.namespace}"
    print_table(columns, rows, title=title)
    click.echo(f"processed {stats.processed} · failed {stats.failed}")
    if stats.limits:
        click.echo()
        print_table(
            [
                Column(name, right=n > 2, drop=1 if name == "keys" else 0)
                for n, name in enumerate(USAGE_COLUMNS)
            ],
            [usage_row(u) for u in stats.limits],
        )
    if not workers:
        click.echo("no workers alive")
        return
    click.echo()
    print_table(
        [
            Column("worker"),
            Column("queues", least=10, drop=1),
            Column("threads", right=True, drop=2),
            Column("running", right=True),
            Column("last seen", right=True, drop=3),
        ],
        [
            [
                w.id,
                ",".join(w.queues),
                w.concurrency,
                len(w.running),
                _when(datetime.fromtimestamp(w.last_seen, UTC)),
            ]
            for w in workers
        ],
        title=plural(len(workers), "worker"),
    )


def _worker_dict(w: WorkerInfo) -> dict[str, Any]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "running": list(w.running),
        "started_at": w.started_at,
        "last_seen": w.last_seen,
    }


@main.command()
@store_options
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
def top(app_target: str | None, url: str | None, namespace: str, interval: float) -> None:
    """Queues, workers and the last failures, live.

    Refreshed every --interval seconds; q or Ctrl-C quits. In a pipe, one snapshot.
    """
    from .top import run_top

    if not interval > 0:
        raise click.UsageError("--interval must be seconds > 0")
    app = _admin_app(app_target, url, namespace)
    run_top(app, redact_url(app.url), interval)


@main.command(short_help="List jobs, a page at a time.")
@store_options
@click.option("--state", "-s", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--queue", "-q", help="Only jobs of this queue.")
@click.option(
    "--search",
    help="Only jobs whose task name or arguments contain this text (reads a bounded number of jobs).",
)
@click.option(
    "--task", "-t", help="Only jobs of this task (read through the store's task index where it has one)."
)
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--after", help="Go on from this cursor (printed under the previous page).")
@click.option("--offset", default=0, hidden=True, help="Deprecated: skips by reading; use --after.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def jobs(
    app_target: str | None,
    url: str | None,
    namespace: str,
    state: str | None,
    queue: str | None,
    search: str | None,
    task: str | None,
    limit: int,
    after: str | None,
    offset: int,
    as_json: bool,
) -> None:
    """List jobs, a page at a time, read through the store's index (pending: next to run
    first; the other states newest first): a table on a terminal, tab-separated lines in a
    pipe. Under the page, the command for the next one (--after CURSOR); with --search, how
    many jobs were searched (on stderr; with --json, as {"next": CURSOR, "scanned": ...} when
    there is a next page or a search)."""
    app = _admin_app(app_target, url, namespace)
    try:
        if offset:
            page = JobPage(
                app.jobs(state=state, queue=queue, limit=limit, offset=offset, search=search, task=task), None
            )
        else:
            page = app.jobs_page(state=state, queue=queue, limit=limit, after=after, search=search, task=task)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--after") from None
    found = page.jobs
    if as_json:
        for job in found:
            click.echo(orjson.dumps(_job_dict(job)).decode())
        if page.next is not None or page.scanned is not None:
            tail = {"next": page.next, "scanned": page.scanned, "stopped": page.stopped}
            click.echo(orjson.dumps(tail).decode(), err=True)
        return
    columns = [
        Column("id"),
        Column("state"),
        Column("task", least=16),
        Column("queue", least=8, drop=3),
        Column("tries", right=True, drop=4),
        Column("enqueued", right=True, drop=5),
        Column("args", least=12, drop=6),
        Column("last error", least=20, drop=7),
    ]
    rows = []
    styles = []
    for job in found:
        args = "[encrypted]" if job.encrypted else orjson.dumps(job.args).decode()
        rows.append(
            [
                job.id,
                job.state,
                job.task,
                job.queue,
                f"{job.attempts}/{job.max_attempts}",
                _when(job.enqueued_at),
                args[:200],
                (job.last_error or "")[:200],
            ]
        )
        styles.append([None, STATE_COLOURS.get(job.state), None, None, None, None, "dim", "red"])
    title = plural(len(found), "job") + (f" · {state}" if state else "")
    print_table(columns, rows, title=title, styles=styles)
    if page.scanned is not None:
        where = "the next" if after else "the first"
        stop = ", and stopped there (a search reads that many at most)" if page.stopped else ""
        click.echo(f"searched {where} {plural(page.scanned, 'job')}{stop}", err=True)
    if page.next is not None:
        word = "next" if state == "pending" else "older"
        import shlex

        click.echo(f"{word}: the same command with --after {shlex.quote(page.next)}", err=True)


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
        "meta": job.meta,
        "progress": job.progress,
        "cancel_requested": job.cancel_requested,
        "snoozes": job.snoozes,
        "unique_key": job.unique_key,
        "expires_at": job.expires_at.isoformat() if job.expires_at else None,
        # Encrypted with a key this process does not hold: args, kwargs and result are hidden.
        "encrypted": job.encrypted,
    }


def _stamp(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.isoformat(sep=' ', timespec='milliseconds')} ({_when(value)})"


@main.command()
@store_options
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The raw record as one JSON object.")
def show(app_target: str | None, url: str | None, namespace: str, job_id: str, as_json: bool) -> None:
    """Everything about one job.

    Its state, timings, arguments, error and traceback, in sections; --json for the record.
    """
    app = _admin_app(app_target, url, namespace)
    job = app.get_job(job_id)
    if job is None:
        raise click.ClickException(f"no job {job_id}")
    if as_json:
        details = _job_dict(job)
        details["traceback"] = job.traceback
        details["started_at"] = job.started_at.isoformat() if job.started_at else None
        details["timeout"] = job.timeout
        details["dependencies"] = [d.id for d in app.dependencies(job.id)]
        details["dependents"] = [d.id for d in app.dependents(job.id)]
        echo_json(details, indent=True)
        return
    hidden = "[encrypted]"
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "state",
            [
                ("state", job.state),
                ("task", job.task),
                ("queue", f"{job.queue}, priority {job.priority}"),
                ("attempts", f"{job.attempts} of {job.max_attempts}"),
                ("snoozed", f"{job.snoozes} time{'' if job.snoozes == 1 else 's'}"),
                ("worker", job.worker or "-"),
            ]
            + ([("unique key", job.unique_key)] if job.unique_key else []),
        ),
        (
            "timings",
            [
                ("enqueued", _stamp(job.enqueued_at)),
                ("run at", _stamp(job.run_at)),
                ("started", _stamp(job.started_at)),
                ("finished", _stamp(job.finished_at)),
                ("timeout", "-" if job.timeout is None else f"{job.timeout:g} s"),
            ]
            + ([("expires", _stamp(job.expires_at))] if job.expires_at else []),
        ),
        (
            "arguments",
            [
                ("args", hidden if job.encrypted else orjson.dumps(job.args).decode()),
                ("kwargs", hidden if job.encrypted else orjson.dumps(job.kwargs).decode()),
            ]
            + ([("meta", orjson.dumps(job.meta).decode())] if job.meta else [])
            + ([("result", orjson.dumps(job.return_value).decode())] if job.state == "completed" else []),
        ),
    ]
    if job.progress:
        sections.insert(1, ("progress", [("", _progress_text(job.progress))]))
    if job.batch_id is not None:
        sections.insert(1, ("batch", _batch_lines(app, job.batch_id)))
    if job.cancel_requested:
        sections.insert(1, ("stopping", [("", job.cancel_requested)]))
    workflow = [(f"waits for {d.id}", f"{d.task}, {d.state}") for d in app.dependencies(job.id)]
    workflow += [(f"needed by {d.id}", f"{d.task}, {d.state}") for d in app.dependents(job.id)]
    if workflow:
        sections.append(("dependencies", workflow))
    if job.last_error:
        sections.append(("error", [("", job.last_error)]))
    print_sections(f"job {job.id}", sections, job.traceback, STATE_COLOURS.get(job.state))


def _batch_lines(app: Conveyor, batch_id: str) -> list[tuple[str, str]]:
    """A batch's id, counts and callbacks, as ``show`` and ``batch`` print them."""
    batch = app.get_batch(batch_id)
    if batch is None:
        return [("id", batch_id), ("", "(no longer stored)")]
    counts = batch.status()
    ended = counts["total"] - counts["unfinished"]
    share = ended / counts["total"] if counts["total"] else 0.0
    bar = "#" * round(share * 30) + "." * (30 - round(share * 30))
    lines = [
        ("id", batch.id),
        ("progress", f"[{bar}] {ended} of {counts['total']} ended ({share:.0%})"),
        ("counts", ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total")),
    ]
    if batch.parent:
        lines.append(("parent", batch.parent))
    for kind, job_id in batch.callbacks.items():
        lines.append((f"on_{kind}", job_id if batch.fired[kind] else f"{job_id} (not fired)"))
    return lines


@main.command(name="batch")
@store_options
@click.argument("batch_id")
@click.option(
    "--jobs",
    "limit",
    type=click.IntRange(0, 10_000),
    default=20,
    show_default=True,
    help="How many of its jobs to list (by id, a page).",
)
@click.option("--after", default=None, help="List its jobs after this job id (the next page).")
@click.option("--json", "as_json", is_flag=True, help="Say it as one JSON object.")
def batch_command(
    app_target: str | None,
    url: str | None,
    namespace: str,
    batch_id: str,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """One batch: its counts, callbacks and a page of its jobs."""
    app = _admin_app(app_target, url, namespace)
    batch = app.get_batch(batch_id)
    if batch is None:
        raise click.ClickException(f"no batch {batch_id}")
    jobs = batch.jobs_page(after, limit) if limit else []
    if as_json:
        echo_json(
            {
                "id": batch.id,
                "status": batch.status(),
                "parent": batch.parent,
                "callbacks": {k: {"id": i, "fired": batch.fired[k]} for k, i in batch.callbacks.items()},
                "jobs": [_job_dict(job) for job in jobs],
                "next": jobs[-1].id if limit and len(jobs) == limit else None,
            },
            indent=True,
        )
        return
    lines = [(job.id, f"{job.state:<10} {job.task}") for job in jobs]
    if limit and len(jobs) == limit:
        lines.append(("next page", f"--after {jobs[-1].id}"))
    print_sections(f"batch {batch.id}", [("batch", _batch_lines(app, batch.id)), ("jobs", lines)], None, None)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Say it as one JSON object.")(fn)


def _progress_text(progress: dict[str, Any], width: int = 30) -> str:
    """``[#########.....]  40 of 100 (40%) resizing``: a run's last reported progress."""
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
        share = max(0.0, min(1.0, done / total))
        bar = "#" * round(share * width) + "." * (width - round(share * width))
        text = f"[{bar}] {done:g} of {total:g} ({share:.0%})"
    else:
        text = f"{done} done"
    return f"{text} {message}" if message else text


def _act(action: str, ids: tuple[str, ...], app: Conveyor, as_json: bool) -> None:
    if action == "cancel":
        import getpass

        who = f"conveyor cancel ({getpass.getuser()}@{socket.gethostname()})"
        changed = app.cancel(*ids, by=who)
    else:
        changed = getattr(app, action)(*ids)  # one store call for all the ids
    if as_json:
        echo_json({"action": action, "changed": changed, "of": len(ids)})
    else:
        click.echo(f"{action}: {changed} of {plural(len(ids), 'job')}")
    if changed < len(ids):
        sys.exit(1)


@main.command()
@store_options
@click.argument("ids", nargs=-1)
@click.option("--all-dead", is_flag=True, help="Retry every dead job (of --queue, if given).")
@click.option("--queue", "-q", help="With --all-dead: only this queue.")
@json_option
def retry(
    app_target: str | None,
    url: str | None,
    namespace: str,
    ids: tuple[str, ...],
    all_dead: bool,
    queue: str | None,
    as_json: bool,
) -> None:
    """Run dead, cancelled or waiting jobs again now, attempts reset."""
    app = _admin_app(app_target, url, namespace)
    if all_dead:
        what = "retrying dead jobs" + (f" of queue {queue!r}" if queue else "")
        changed = _in_chunks(
            what, _count(app, "dead", queue), lambda n: app.retry_all("dead", queue, limit=n)
        )
        if as_json:
            echo_json({"action": "retry", "changed": changed, "state": "dead", "queue": queue})
        else:
            click.echo(f"retry: {plural(changed, 'dead job')} back to pending")
        return
    if not ids:
        raise click.UsageError("give job ids, or --all-dead")
    _act("retry", ids, app, as_json)


@main.command()
@store_options
@click.argument("ids", nargs=-1, required=True)
@json_option
def cancel(
    app_target: str | None, url: str | None, namespace: str, ids: tuple[str, ...], as_json: bool
) -> None:
    """Cancel waiting jobs, and stop running ones.

    A waiting job ends cancelled at once; a running one is stopped by its worker within
    about a second, and ends cancelled, never retried.
    """
    _act("cancel", ids, _admin_app(app_target, url, namespace), as_json)


@main.command()
@store_options
@click.argument("ids", nargs=-1)
@click.option("--all", "all_of", is_flag=True, help="Delete every job in --state (of --queue, if given).")
@click.option("--state", "-s", type=click.Choice(STATES), help="With --all: the state whose jobs go.")
@click.option("--queue", "-q", help="With --all: only this queue.")
@click.option("--yes", "-y", is_flag=True, help="With --all: do not ask first (asked only on a terminal).")
@json_option
def delete(
    app_target: str | None,
    url: str | None,
    namespace: str,
    ids: tuple[str, ...],
    all_of: bool,
    state: str | None,
    queue: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete jobs, whatever their state.

    Give ids, or --all --state STATE (and maybe --queue) for every job in one state.
    """
    app = _admin_app(app_target, url, namespace)
    if not all_of:
        if not ids:
            raise click.UsageError("give job ids, or --all --state STATE")
        _act("delete", ids, app, as_json)
        return
    if ids or state is None:
        raise click.UsageError("--all takes --state (and maybe --queue), not job ids")
    where = f" of queue {queue!r}" if queue else ""
    if not yes and sys.stdin.isatty():
        count = _count(app, state, queue)
        click.confirm(f"delete {plural(count, f'{state} job')}{where}?", abort=True)
    changed = _in_chunks(
        f"deleting {state} jobs{where}",
        _count(app, state, queue),
        lambda n: app.delete_all(state, queue, limit=n),
    )
    if as_json:
        echo_json({"action": "delete", "changed": changed, "state": state, "queue": queue})
    else:
        click.echo(f"delete: {plural(changed, f'{state} job')}{where}")


def _count(app: Conveyor, state: str, queue: str | None) -> int:
    stats = app.stats()
    if queue is not None:
        return stats.queues.get(queue, {}).get(state, 0)
    return stats.total(state)


#: Jobs per store call when a bar shows progress (a terminal): small enough for a bar that
#: moves, large enough that the calls cost little more than one.
CHUNK = 1000


def _in_chunks(what: str, total: int, act: Callable[[int | None], int]) -> int:
    """Apply ``act`` (to at most N jobs a call, or all with None; how many changed) until
    nothing is left: on a terminal in chunks with a progress bar on stderr, elsewhere in one
    store call."""
    if not sys.stderr.isatty():
        return act(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    done = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=max(total, 1))
        while True:
            changed = act(CHUNK)
            done += changed
            bar.update(task, completed=done, total=max(total, done), refresh=True)
            if changed < CHUNK:
                return done


@main.command()
@store_options
@click.argument("queue")
@click.option("--force", is_flag=True, help="Pause QUEUE even if no job or task uses it yet.")
@json_option
def pause(
    app_target: str | None, url: str | None, namespace: str, queue: str, force: bool, as_json: bool
) -> None:
    """Stop workers taking jobs from QUEUE (enqueue still works)."""
    app = _admin_app(app_target, url, namespace)
    check_name("queue", queue)
    if not force:
        # A mistyped name would otherwise stay listed as a paused queue for ever.
        stats = app.stats()
        known = set(stats.queues) | set(stats.paused) | {t.options.queue for t in app.tasks.values()}
        if queue not in known:
            listed = ", ".join(sorted(known)) or "none yet"
            raise click.ClickException(
                f"no queue {queue!r} in this store (queues: {listed}); --force pauses it anyway"
            )
    app.pause(queue)
    _said({"queue": queue, "paused": True}, f"queue {queue!r} paused", as_json)


def _said(value: dict[str, Any], text: str, as_json: bool) -> None:
    if as_json:
        echo_json(value)
    else:
        click.echo(text)


@main.command()
@store_options
@click.argument("queue")
@json_option
def resume(app_target: str | None, url: str | None, namespace: str, queue: str, as_json: bool) -> None:
    """Let workers take jobs from QUEUE again."""
    _admin_app(app_target, url, namespace).resume(queue)
    _said({"queue": queue, "paused": False}, f"queue {queue!r} resumed", as_json)


@main.command()
@click.argument("names", metavar="[MODULE:APP] TASK", nargs=-1, required=True)
@click.option("--app", "app_target", metavar="MODULE:APP", help="The app, as the first argument names it.")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--queue", "-q", help="Override the task's queue.")
@click.option("--delay", type=float, help="Run no sooner than this many seconds from now.")
@click.option("--priority", type=int, help="Override the task's priority.")
@click.option(
    "--from-file",
    "from_file",
    type=click.File("rb"),
    help='JSON lines, one job each: an object {"args": [...], "kwargs": {...}} or a list of '
    "arguments; '-' reads stdin. For backfills: enqueued in chunks, with a progress bar.",
)
@click.option(
    "--chunk", default=1000, show_default=True, help="With --from-file: jobs per enqueue_many call."
)
@json_option
def enqueue(
    names: tuple[str, ...],
    app_target: str | None,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    delay: float | None,
    priority: int | None,
    from_file: BinaryIO | None,
    chunk: int,
    as_json: bool,
) -> None:
    """Enqueue one job of the registered task TASK; prints its id.

    With --from-file, one job per line of a JSON-lines file, in chunks of --chunk jobs (each
    chunk is stored whole or not at all); prints how many.

    The app is MODULE:APP, else --app, else $CONVEYOR_APP, else [tool.conveyor] app in the
    working directory's pyproject.toml.
    """
    if len(names) > 2:
        raise click.UsageError(f"expected [MODULE:APP] TASK, got {len(names)} arguments")
    target, task_name = (names[0], names[1]) if len(names) == 2 else (app_target, names[0])
    found = find_app(target, need_app=True)
    app, target = found.app, found.target
    task = app.tasks.get(task_name)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise click.ClickException(f"no task {task_name!r} on {target}; registered: {known}")
    options: dict[str, Any] = {}
    if queue:
        options["queue"] = queue
    if delay is not None:
        options["delay"] = delay
    if priority is not None:
        options["priority"] = priority
    if from_file is not None:
        if chunk < 1:
            raise click.UsageError("--chunk must be at least 1")
        from .backfill import enqueue_file

        count = enqueue_file(app, task.using(**options), from_file, chunk)
        _said(
            {"enqueued": count, "task": task.name}, f"enqueued {plural(count, 'job')} of {task.name}", as_json
        )
        return
    try:
        args, kwargs = orjson.loads(args_json), orjson.loads(kwargs_json)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.BadParameter("--args takes a JSON list and --kwargs a JSON object")
    try:
        job = task.using(**options).enqueue(*args, **kwargs)
    except TypeError as exc:
        raise click.ClickException(str(exc)) from None
    _said({"id": job.id, "task": job.task, "queue": job.queue, "state": job.state}, job.id, as_json)


@main.command(short_help="List periodic schedules: next run, last job.")
@click.argument("target", metavar="[MODULE:APP]", required=False)
@store_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def periodic(
    target: str | None, app_target: str | None, url: str | None, namespace: str, as_json: bool
) -> None:
    """List the periodic schedules: name, schedule, zone, next run, the last enqueued job
    and its state. A table on a terminal, tab-separated lines in a pipe.

    Schedules live in the app's code, so name the app (MODULE:APP, --app, $CONVEYOR_APP or
    pyproject.toml); with a bare store (--url) only what the store recorded is shown.
    """
    app = _admin_app(target or app_target, url, namespace)
    found = app.schedule_status()
    if as_json:
        for s in found:
            click.echo(orjson.dumps(_schedule_dict(s)).decode())
        return
    columns = [
        Column("name", least=12),
        Column("schedule", least=9),
        Column("zone", least=8, drop=3),
        Column("queue", drop=5),
        Column("next run", right=True),
        Column("last job"),
        Column("state"),
        Column("enqueued", right=True, drop=4),
    ]
    rows = []
    styles = []
    for s in found:
        rows.append(
            [
                s.name,
                s.schedule or "(not in the code)",
                s.tz or "-",
                s.queue,
                _next_run(s.next_run, s.tz) if s.defined else "-",
                s.last_job_id or "-",
                s.last_job_state or "-",
                _when(s.last_enqueued),
            ]
        )
        styles.append(
            [
                None,
                None if s.defined else "dim",
                None,
                None,
                None,
                None,
                STATE_COLOURS.get(s.last_job_state or ""),
                None,
            ]
        )
    print_table(columns, rows, title=plural(len(found), "schedule"), styles=styles)


def _next_run(value: datetime | None, tz: str | None) -> str:
    """A time to come in its schedule's zone: ``2026-11-27 09:00:00 EST (in 1.7h)``."""
    if value is None:
        return "never"
    from zoneinfo import ZoneInfo

    local = value.astimezone(ZoneInfo(tz or "UTC"))
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({_when(value)})"


def _schedule_dict(s: ScheduleStatus) -> dict[str, Any]:
    return {
        "name": s.name,
        "task": s.task,
        "schedule": s.schedule,
        "tz": s.tz,
        "queue": s.queue,
        "defined": s.defined,
        "next_run": s.next_run.isoformat() if s.next_run else None,
        "last_tick": s.last_tick.isoformat() if s.last_tick else None,
        "last_enqueued": s.last_enqueued.isoformat() if s.last_enqueued else None,
        "last_job": s.last_job_id,
        "last_job_state": s.last_job_state,
    }


@main.command()
@click.argument("target", metavar="[MODULE:APP]", required=False)
@store_options
def migrate(target: str | None, app_target: str | None, url: str | None, namespace: str) -> None:
    """Create or upgrade the store's schema.

    Stores apply their migrations on first use too, unless the app says migrate=False (the
    choice for hardened deployments); this runs them ahead, e.g. in a deploy. Safe to run
    again: it applies only what is missing, and says what it applied.
    """
    app = _admin_app(target or app_target, url, namespace)
    # A store of its own, opened as it is (not through the app, which may migrate on open):
    # what this command applies is then all it reports.
    backend = open_backend(app.url, app.namespace, replicas=app.replicas, migrate=None)
    try:
        if not isinstance(backend, Migrates):
            click.echo("this store needs no migrations")
            return
        applied = backend.migrate()
    finally:
        backend.close()
    where = f"schema {app.namespace!r} at {redact_url(app.url)}"
    if applied:
        click.echo(f"applied migrations {', '.join(map(str, applied))} to {where}")
    else:
        click.echo(f"{where} is up to date: nothing applied")


@main.command()
@click.option("--jobs", "count", default=300, show_default=True, help="How many demo jobs to enqueue.")
@click.option("--db", default="conveyor-demo.db", show_default=True, help="SQLite file for the demo.")
@click.option("--concurrency", default=16, show_default=True)
def demo(count: int, db: str, concurrency: int) -> None:
    """Run demo jobs through a real worker, live.

    The jobs go into a SQLite file, and a worker process runs them.

    Some jobs succeed, some fail and retry, some die, some wait for a later time, some are
    async: every path of the job lifecycle shows.
    """
    from .demo import run_demo

    sys.exit(run_demo(count, db, concurrency))


def _dashboard_command() -> click.Command:
    """``conveyor dashboard``, or where its extra is missing a command that says so."""
    try:
        from .dashboard.cli import dashboard_command
    except ImportError:

        @click.command(name="dashboard")
        def dashboard_missing() -> None:
            """Serve the web dashboard (needs: pip install 'conveyor[dashboard]')."""
            raise click.ClickException("the dashboard needs: pip install 'conveyor[dashboard]'")

        return dashboard_missing
    if dashboard_command.short_help is None:
        # The command list would cut its first sentence mid-way at 80 columns.
        dashboard_command.short_help = "Serve the web dashboard."
    return dashboard_command
