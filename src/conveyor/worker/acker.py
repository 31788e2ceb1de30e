"""The acker: records finished runs in the store, in batches, off the threads that ran them."""

from __future__ import annotations

import logging
import queue
import threading
import time

from ..backends import Backend
from ..job import Failure
from .outcome import Outcome

log = logging.getLogger("conveyor.worker")

MAX_BATCH = 1000


class Acker:
    """Collects outcomes and writes each batch with one ``complete`` and one ``fail`` call.

    Under load the batches grow by themselves: while one write is in flight the next
    outcomes queue up. If the store is unreachable the batch is kept and retried, so a
    finished job is never reported lost by this process (its lease may still expire and run
    it again: delivery is at-least-once).
    """

    def __init__(self, backend: Backend, worker_id: str) -> None:
        self._backend = backend
        self._worker_id = worker_id
        self._inbox: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="conveyor-acker", daemon=True)
        self._thread.start()

    def put(self, outcome: Outcome) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._inbox.put(outcome)

    def flush(self, timeout: float) -> bool:
        """Wait until every outcome put so far is written; False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._inbox.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                batch.append(item)
            self._write(batch)
            with self._lock:
                self._pending -= len(batch)
                if self._pending == 0:
                    self._idle.set()

    def _write(self, batch: list[Outcome]) -> None:
        completed = [o for o in batch if not isinstance(o, Failure)]
        failed = [o for o in batch if isinstance(o, Failure)]
        pause = 0.05
        while True:
            try:
                now = time.time()
                if completed:
                    self._backend.complete(completed, self._worker_id, now)
                    completed = []
                if failed:
                    self._backend.fail(failed, self._worker_id, now)
                return
            except Exception as exc:
                log.warning("could not record %d finished jobs, retrying: %s", len(batch), exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
