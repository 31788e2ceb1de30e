"""The canceller: stops the runs that ``app.cancel`` asked to stop."""

from __future__ import annotations

import logging
import threading

from ..backends import Backend
from .executor import Runner

log = logging.getLogger("conveyor.worker")

#: Seconds between two looks at the store while jobs run: a cancel lands within about this
#: plus the time the run takes to notice (an async task at once; a sync one at its next
#: Python instruction).
CANCEL_POLL = 0.5


class Canceller:
    """While this worker runs jobs, asks the store every ``CANCEL_POLL`` seconds which of
    them were asked to stop (one indexed read of a handful of rows, nothing per job), marks
    each one's ``current_job().cancelled`` and stops it. Idle, it asks nothing."""

    def __init__(
        self, backend: Backend, worker_id: str, runner: Runner, interval: float = CANCEL_POLL
    ) -> None:
        self._backend = backend
        self._worker_id = worker_id
        self._runner = runner
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-canceller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def check(self) -> int:
        """One look: stop every run of this worker that was asked to; how many."""
        running = self._runner.running
        if not running:
            return 0
        queues = sorted({here.queue for here in list(running.values())})
        stopped = 0
        for job_id, note in self._backend.cancel_requests(self._worker_id, queues):
            here = running.get(job_id)
            if here is None or here.cancel_note is not None:
                continue
            here.cancel_note = note
            self._runner.stop_run(here)
            stopped += 1
        return stopped

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception as exc:  # a store hiccup: look again next time
                log.warning("could not read cancel requests: %s", exc)
