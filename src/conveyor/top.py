"""``conveyor top``: queues, workers and the last failures, live in a terminal.

Refreshed every second from the admin API (one ``stats``, one ``workers`` and two small
``jobs`` calls a refresh, whatever the number of jobs), drawn with rich's Live on the
terminal's alternate screen, as htop does; q or Ctrl-C quits. Outside a terminal it prints one
snapshot and exits (as ``top -b -n 1``).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .limits import USAGE_COLUMNS, usage_row
from .render import Column, build_table

if TYPE_CHECKING:
    from .app import Conveyor
    from .job import Job, Stats, WorkerInfo

#: Jobs per queue shown, in this order.
SHOWN = ("pending", "active", "scheduled", "retry", "dead")


@dataclass
class Rates:
    """Completed jobs per second, from the difference between two refreshes."""

    last: dict[str, int] = field(default_factory=dict)
    processed: int | None = None
    at: float = 0.0
    per_queue: dict[str, float] = field(default_factory=dict)
    total: float | None = None

    def update(self, stats: Stats, now: float) -> None:
        done = {q: counts.get("completed", 0) for q, counts in stats.queues.items()}
        if self.processed is not None and now > self.at:
            span = now - self.at
            # Completed jobs are pruned after result_ttl: a count can fall; a rate cannot.
            self.per_queue = {q: max(0, n - self.last.get(q, n)) / span for q, n in done.items()}
            self.total = max(0, stats.processed - self.processed) / span
        self.last, self.processed, self.at = done, stats.processed, now


@dataclass(frozen=True)
class Snapshot:
    stats: Stats
    workers: list[WorkerInfo]
    failures: list[Job]
    taken: float


def snapshot(app: Conveyor, failures: int = 6) -> Snapshot:
    stats = app.stats()
    workers = app.workers()
    failed = app.jobs(state="dead", limit=failures) + app.jobs(state="retry", limit=failures)
    epoch = datetime.fromtimestamp(0, UTC)
    failed.sort(key=lambda j: j.finished_at or j.enqueued_at or epoch, reverse=True)
    return Snapshot(stats, workers, failed[:failures], time.time())


def view(app: Conveyor, shot: Snapshot, rates: Rates, store: str, width: int) -> Any:
    """The screen, ``width`` columns wide: a header line, then the queues, workers and last
    failures tables."""
    from rich.console import Group
    from rich.text import Text

    stats = shot.stats
    rate = "rate -" if rates.total is None else f"{rates.total:,.1f} jobs/s"
    stamp = datetime.fromtimestamp(shot.taken).strftime("%H:%M:%S")
    header = Text.assemble(
        ("conveyor top", "bold"),
        f"  {store} · namespace {app.namespace}\n",
        f"processed {stats.processed:,} · failed {stats.failed:,} · {rate}  ",
        (stamp, "dim"),
        ("   q quits", "dim"),
    )

    styles = {"pending": "blue", "active": "yellow", "scheduled": "cyan", "retry": "magenta", "dead": "red"}
    names = sorted(stats.queues, key=lambda q: (q != "default", q))
    queue_rows: list[list[object]] = []
    queue_styles: list[list[str | None]] = []
    for queue in names:
        counts = stats.queues[queue]
        age = stats.oldest_pending.get(queue)
        per_second = rates.per_queue.get(queue)
        queue_rows.append(
            [
                f"{queue} (paused)" if queue in stats.paused else queue,
                *(f"{counts.get(s, 0):,}" for s in SHOWN),
                "-" if per_second is None else f"{per_second:,.1f}/s",
                "-" if age is None else _age(age),
            ]
        )
        queue_styles.append(
            [
                "yellow" if queue in stats.paused else None,
                *(styles[s] if counts.get(s, 0) else "dim" for s in SHOWN),
                None,
                None,
            ]
        )
    queues = build_table(
        [
            Column("queue", least=10),
            *(Column(s, right=True) for s in SHOWN),
            Column("rate", right=True, drop=2),
            Column("latency", right=True, drop=1),
        ],
        queue_rows or [["no jobs yet", *("" for _ in SHOWN), "", ""]],
        width,
        styles=queue_styles or None,
    )
    workers = build_table(
        [
            Column("worker"),
            Column("busy", right=True),
            Column("seen", right=True, drop=2),
            Column("queues", least=8, drop=1),
        ],
        [
            [
                w.id,
                f"{len(w.running)}/{w.concurrency}",
                _age(shot.taken - w.last_seen) + " ago",
                ",".join(w.queues),
            ]
            for w in shot.workers
        ]
        or [["no workers alive", "", "", ""]],
        width,
    )
    failures = build_table(
        [
            Column("last failures"),
            Column("state"),
            Column("task", least=12, drop=1),
            Column("error", least=20, drop=2),
        ],
        [
            [job.id, job.state, job.task, (job.last_error or "").splitlines()[0] if job.last_error else ""]
            for job in shot.failures
        ]
        or [["none", "", "", ""]],
        width,
        styles=[[None, "red" if j.state == "dead" else "magenta", None, None] for j in shot.failures] or None,
    )
    parts: list[Any] = [header, Text(""), queues, Text("")]
    if stats.limits:
        limits = build_table(
            [
                Column(name, right=n > 2, drop=1 if name == "keys" else 0)
                for n, name in enumerate(USAGE_COLUMNS)
            ],
            [usage_row(u) for u in stats.limits],
            width,
        )
        parts += [limits, Text("")]
    return Group(*parts, workers, Text(""), failures)


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@contextlib.contextmanager
def _keys() -> Iterator[None]:
    """stdin in cbreak mode (one key at a time, no echo) while drawing; restored after."""
    try:
        import termios
        import tty
    except ImportError:  # not POSIX: Ctrl-C still quits
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a key; True if it was q (or Q)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([sys.stdin], [], [], left)
        if not ready:
            return False
        key = os.read(sys.stdin.fileno(), 1)
        if key in (b"q", b"Q") or not key:
            return True


def run_top(app: Conveyor, store: str, interval: float = 1.0) -> None:
    """Draw until q or Ctrl-C on a terminal; print one snapshot otherwise."""
    from rich.console import Console
    from rich.live import Live

    rates = Rates()
    console = Console()
    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    shot = snapshot(app)
    rates.update(shot.stats, shot.taken)
    if not interactive:
        console.print(view(app, shot, rates, store, console.width))
        return
    try:
        with _keys(), Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                live.update(view(app, shot, rates, store, console.width), refresh=True)
                if _quit_pressed(interval):
                    return
                shot = snapshot(app)
                rates.update(shot.stats, shot.taken)
    except KeyboardInterrupt:
        return
