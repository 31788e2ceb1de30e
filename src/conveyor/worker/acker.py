"""The acker: records finished runs in the store, in batches, off the threads that ran them."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ..backends import Backend
from ..job import Failure
from .outcome import Outcome

log = logging.getLogger("conveyor.worker")

MAX_BATCH = 1000
MIN_BATCH = 32
LINGER = 0.002  # seconds


class Acker:
    """Collects outcomes and writes each batch with one ``complete`` and one ``fail`` call.

    Under load the batches grow by themselves: while one write is in flight the next
    outcomes queue up. If the store is unreachable the batch is kept and retried, so a
    finished job is never reported lost by this process (its lease may still expire and run
    it again: delivery is at-least-once). While a write keeps failing, ``stalled`` is set:
    the worker fetches nothing more until it succeeds (a full or read-only store, a missing
    permission), rather than run jobs whose end it cannot record.

    ``unwritten`` says how far behind the writes are: the worker claims nothing more while it
    is a whole capacity behind. Without that, a store whose acknowledgements are slower than
    its claims (PostgreSQL at a million jobs) let the outcomes pile up here: 650,000 in a 1M
    drain, each one an active job whose lease every heartbeat had to extend, until a beat
    took 27 s and leases expired (the jobs ran twice) and the worker's memory tripled.
    ``written`` is called after each write (the worker wakes its fetcher there).
    """

    def __init__(
        self,
        backend: Backend,
        worker_id: str,
        written: Callable[[], None] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._backend = backend
        self.max_batch = max_batch
        self._worker_id = worker_id
        self._written = written
        self._inbox: queue.SimpleQueue[Outcome | threading.Event | None] = queue.SimpleQueue()
        self._writing = 0  # outcomes taken from the inbox and not written yet (this thread's)
        self.stalled = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-acker", daemon=True)
        self._thread.start()

    def put(self, outcome: Outcome) -> None:
        self._inbox.put(outcome)

    @property
    def unwritten(self) -> int:
        """Outcomes put and not written yet (approximate: read without a lock)."""
        return self._inbox.qsize() + self._writing

    def flush(self, timeout: float) -> bool:
        """Wait until every outcome put so far is written; False on timeout."""
        marker = threading.Event()
        self._inbox.put(marker)
        return marker.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._inbox.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        inbox = self._inbox
        max_batch = self.max_batch
        last = 0  # the size of the previous batch: lingering pays only under load
        while True:
            item = inbox.get()
            batch: list[Outcome] = []
            markers: list[threading.Event] = []
            # Under load, linger a moment for company: one write per job would cost more
            # than the job. The wait delays only when a result becomes visible.
            deadline = time.monotonic() + LINGER
            while True:
                if item is None:
                    self._write(batch)
                    for marker in markers:
                        marker.set()
                    return
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                    self._writing += 1  # counted from the moment it left the inbox
                if len(batch) >= max_batch:
                    break
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    if markers or len(batch) >= MIN_BATCH or (last <= 1 and len(batch) <= 1):
                        break  # an idle worker writes at once
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = inbox.get(timeout=left)
                    except queue.Empty:
                        break
            self._write(batch)
            last = len(batch)
            for marker in markers:
                marker.set()

    def _write(self, batch: list[Outcome]) -> None:
        if not batch:
            return
        try:
            self._write_batch(batch)
        finally:
            self._writing = 0
        if self._written is not None:
            self._written()

    def _write_batch(self, batch: list[Outcome]) -> None:
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
                self.stalled.clear()
                return
            except Exception as exc:
                if not self.stalled.is_set():
                    log.warning("fetching paused until finished jobs can be recorded")
                self.stalled.set()
                log.warning("could not record %d finished jobs, retrying: %s", len(batch), exc)
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
