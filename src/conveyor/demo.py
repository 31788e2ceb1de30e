"""``conveyor demo``: a few hundred jobs through a real worker on SQLite, shown live.

The tasks below are the demo's app (``conveyor.demo:app``); the worker subprocess imports
them by that name, exactly as it would import yours.
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .app import Conveyor
from .errors import Fail

DEMO_URL_ENV = "CONVEYOR_DEMO_URL"

app = Conveyor(os.environ.get(DEMO_URL_ENV, "sqlite:///conveyor-demo.db"), namespace="demo", lease=10)


@app.task(name="images.resize", queue="default")
def resize_image(image_id: int, width: int) -> dict[str, int]:
    time.sleep(random.uniform(0.005, 0.04))
    return {"image": image_id, "width": width, "height": width * 3 // 4}


@app.task(name="mail.send", queue="mail", retries=2)
async def send_email(to: str, subject: str) -> str:
    await asyncio.sleep(random.uniform(0.01, 0.05))
    return f"sent {subject!r} to {to}"


@app.task(name="api.sync", queue="default", retries=3, backoff=0.4)
def flaky_api(record_id: int) -> str:
    time.sleep(0.01)
    if random.random() < 0.45:
        raise ConnectionError(f"upstream timed out for record {record_id} (token=demo-secret-token)")
    return "synced"


@app.task(name="billing.charge", queue="critical", retries=5)
def charge_card(order_id: int, cents: int) -> dict[str, Any]:
    time.sleep(0.005)
    if order_id % 9 == 0:
        raise Fail(f"card declined for order {order_id}")
    return {"order": order_id, "charged": cents}


@app.task(name="reports.export", queue="low", timeout=0.5, retries=1, backoff=0.2)
def slow_export(report_id: int) -> str:
    # Sleeps in short steps: a timeout interrupts Python code between calls.
    for _ in range(200 if report_id % 4 == 0 else 5):
        time.sleep(0.01)
    return f"report {report_id} exported"


@app.task(name="reports.nightly", queue="low")
def nightly_report(day: str) -> str:
    return f"report for {day}"


def enqueue_demo_jobs(count: int) -> int:
    specs = []
    for i in range(count):
        kind = i % 10
        if kind < 4:
            specs.append(resize_image.job(i, random.choice([320, 640, 1280])))
        elif kind < 6:
            specs.append(send_email.job(f"user{i}@example.com", f"Welcome #{i}"))
        elif kind < 8:
            specs.append(flaky_api.job(i))
        elif kind == 8:
            specs.append(charge_card.job(i, 100 * (i % 50 + 1)))
        else:
            specs.append(slow_export.job(i))
    later = [nightly_report.using(delay=2 + i * 0.5).job(f"2026-11-{i + 1:02d}") for i in range(6)]
    app.enqueue_many(specs + later)
    return len(specs) + len(later)


def run_demo(count: int, db: str, concurrency: int) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    path = Path(db).resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    os.environ[DEMO_URL_ENV] = url
    app.url = url
    total = enqueue_demo_jobs(count)
    console.print(f"[bold]conveyor demo[/]: {total} jobs enqueued into {path}")
    log_path = path.with_suffix(".log")
    log_file = log_path.open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            "conveyor.demo:app",
            "--concurrency",
            str(concurrency),
            "--queues",
            "critical:6,default:3,mail:3,low:1",
            "--grace",
            "5",
        ],
        env={**os.environ, DEMO_URL_ENV: url},
        # The worker's line per job goes to a file: on the terminal it would scroll the
        # live view away.
        stderr=log_file,
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    bar = progress.add_task("finished", total=total)
    started = time.monotonic()
    try:
        with Live(console=console, refresh_per_second=8) as live:
            while True:
                stats = app.stats()
                done = stats.total("completed") + stats.total("dead")
                progress.update(bar, completed=done)
                live.update(_view(progress, stats.queues))
                if done >= total:
                    break
                if worker.poll() is not None:
                    console.print(
                        f"[red]the worker exited with {worker.returncode}[/]; its log: {_shown(log_path)}"
                    )
                    return 1
                time.sleep(0.125)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
        log_file.close()
    elapsed = time.monotonic() - started
    stats = app.stats()
    console.print(
        f"\n{stats.total('completed')} completed, {stats.total('dead')} dead, "
        f"{stats.failed} failed runs retried or buried, in {elapsed:.1f} s."
    )
    dead = app.jobs(state="dead", limit=3)
    if dead:
        console.print("[bold]A few dead jobs[/] (errors are stored redacted):")
        for job in dead:
            console.print(f"  {job.id}  {job.task}  [red]{job.last_error}[/]")
    command = conveyor_command()
    url = shlex.quote(f"sqlite:///{_shown(path, quote=False)}")
    console.print(
        f"\nThe worker's log, a line per job: {_shown(log_path)}\n"
        "\nLook around:\n"
        f"  {command} info --url {url} --namespace demo\n"
        f"  {command} jobs --url {url} --namespace demo --state dead\n"
        f"  {command} retry --url {url} --namespace demo --all-dead",
        markup=False,
        soft_wrap=True,
    )
    return 0


def conveyor_command() -> str:
    """How to run ``conveyor`` from this shell: the bare name when it finds this install,
    else this install's script by its path (e.g. ``.venv/bin/conveyor`` before the virtual
    environment is activated), else ``python -m conveyor``."""
    here = Path(sys.executable).parent
    found = shutil.which("conveyor")
    if found is not None and Path(found).resolve().parent == here.resolve():
        return "conveyor"
    script = here / "conveyor"
    path = script if script.exists() else None
    if path is None:
        path = Path(sys.executable)
    shown = _shown(path)
    return shown if script.exists() else f"{shown} -m conveyor"


def _shown(path: Path, *, quote: bool = True) -> str:
    """``path`` for a command line: relative to the working directory when inside it."""
    try:
        text = str(path.relative_to(Path.cwd()))
    except ValueError:
        text = str(path)
    return shlex.quote(text) if quote else text


def _view(progress: Any, queues: dict[str, dict[str, int]]) -> Any:
    from rich.console import Group
    from rich.table import Table

    states = ("scheduled", "pending", "active", "retry", "completed", "dead")
    table = Table(box=None, pad_edge=False)
    table.add_column("queue")
    colours = ("cyan", "blue", "yellow", "magenta", "green", "red")
    for state, colour in zip(states, colours, strict=True):
        table.add_column(state, justify="right", style=colour)
    for queue in sorted(queues):
        table.add_row(queue, *[str(queues[queue].get(s, 0)) for s in states])
    return Group(progress, table)
