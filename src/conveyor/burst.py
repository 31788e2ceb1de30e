"""``conveyor worker --burst`` on a terminal: a progress bar of the jobs done, with the
worker's log lines printed above it rather than through it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker.worker import Worker


class _ConsoleStream:
    """A text stream for the log handler that prints each line above the live bar."""

    def __init__(self, console: Any) -> None:
        self._console = console

    def write(self, text: str) -> int:
        from rich.text import Text

        for line in text.rstrip("\n").split("\n"):
            self._console.print(Text.from_ansi(line), soft_wrap=True, highlight=False)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return True


def run_with_progress(runner: Worker, level: str, fmt: str) -> int:
    """Run ``runner`` (a burst worker) in this thread under a progress bar; its exit code.

    The bar's total is what was done plus what still waits, read from the store every half
    second, so jobs enqueued meanwhile (or by the jobs themselves) extend it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .logs import configure

    app = runner.app
    progress = Progress(
        TextColumn("[bold]burst"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    done = threading.Event()

    def waiting() -> int:
        stats = app.stats()
        return stats.total("pending") + stats.total("active") + stats.total("retry")

    def rate() -> str:
        span = progress.get_time() - started
        return f"{runner.processed / span:,.0f} jobs/s" if span > 0 else ""

    def follow(bar: Any) -> None:
        while not done.wait(0.5):
            try:
                left = waiting()
            except Exception:  # the store is down: the worker says so in its log
                continue
            processed = runner.processed
            progress.update(bar, completed=processed, total=max(processed + left, 1), rate=rate())

    with progress:
        configure(level, fmt, _ConsoleStream(progress.console))  # type: ignore[arg-type]
        bar = progress.add_task("burst", total=max(waiting(), 1), rate="")
        started = progress.get_time()
        thread = threading.Thread(target=follow, args=(bar,), name="conveyor-progress", daemon=True)
        thread.start()
        try:
            code = runner.run()
        finally:
            done.set()
            thread.join(2)
        progress.update(bar, completed=runner.processed, total=max(runner.processed, 1), rate=rate())
    return code
