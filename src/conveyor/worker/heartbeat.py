"""The heartbeat: extends this worker's leases and runs the store's housekeeping."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from ..backends import Backend
from ..errors import StoreFull
from ..job import WorkerInfo

log = logging.getLogger("conveyor.worker")

#: Jobs one sweep call changes at most (of each kind: expired, past dead_ttl, past dead_max).
SWEEP_BATCH = 500
#: Seconds of sweeping per beat at most, and the pause between two batches, in which the
#: workers' own calls go first.
SWEEP_BUDGET = 1.0
SWEEP_PAUSE = 0.01


class Heartbeat:
    """Every third of a lease: extend every lease this worker holds (one statement, however
    many jobs) and say the worker is alive. As often, on a thread of its own, recover expired
    leases of dead workers and prune old results (each worker starts this at a random point
    of its first interval, so many workers spread it out); any worker may do this, so no
    single process is needed for a crashed worker's jobs to come back.

    A third of the lease leaves two more beats to fail (a slow store, a long GC pause)
    before another worker may take the jobs back.
    """

    def __init__(
        self,
        backend: Backend,
        info: Callable[[], WorkerInfo],
        lease: float,
        result_ttl: float,
        dead_ttl: float | None = None,
        dead_max: int | None = None,
    ) -> None:
        self._backend = backend
        self._dead_ttl = dead_ttl
        self._dead_max = dead_max
        self._info = info
        self._lease = lease
        self._result_ttl = result_ttl
        self.interval = lease / 3
        # Recovery at every beat keeps the promise that a dead worker's job is back within a
        # lease plus one beat; it is one indexed statement over the few active jobs.
        self._recover_every = self.interval
        self._stop = threading.Event()
        #: Set once the first recovery (run as the housekeeping thread starts) has been tried.
        self.recovered = threading.Event()
        #: Set by the worker once its first claim's jobs are handed over (or the claim
        #: failed): the first recovery follows it (see ``_housekeep``).
        self.claimed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-heartbeat", daemon=True)
        # Housekeeping on a thread of its own: a pass may prune for seconds (a backlog of
        # completed jobs, backends/prune.py), and the beats that keep the leases must not
        # wait for it.
        self._housekeeper = threading.Thread(
            target=self._housekeep, name="conveyor-housekeeping", daemon=True
        )

    def start(self) -> None:
        """The first beat, which registers this worker (here, before the worker's first claim:
        a worker whose store cannot be reached fails at its start), then the beats' and the
        housekeeping's threads."""
        try:
            self.beat()
        except StoreFull as exc:
            # A full store still takes the writes that drain it: start, and keep trying.
            log.warning("first heartbeat failed, the worker starts anyway: %s", exc)
        self._thread.start()
        self._housekeeper.start()

    def stop(self) -> None:
        self._stop.set()
        self.claimed.set()
        for thread in (self._thread, self._housekeeper):
            if thread.is_alive():
                thread.join(5.0)

    def beat(self) -> None:
        self._backend.heartbeat(self._info(), self._lease, time.time())

    def recover(self) -> int:
        now = time.time()
        recovered = self._backend.recover(now, now - self._result_ttl)
        if recovered:
            log.warning("recovered %d jobs whose worker was lost", recovered)
        self.sweep(now)
        return recovered

    def sweep(self, now: float) -> int:
        """Expired jobs cancelled, dead and cancelled jobs past retention deleted: batches of
        ``SWEEP_BATCH`` (each one short store call, so a worker waiting on the store waits
        for one batch at most) until one comes back short or ``SWEEP_BUDGET`` seconds pass;
        a backlog of a million is worked off over the following beats."""
        dead_before = None if self._dead_ttl is None else now - self._dead_ttl
        deadline = time.monotonic() + SWEEP_BUDGET
        total = 0
        while True:
            changed = self._backend.sweep(now, dead_before, self._dead_max, SWEEP_BATCH)
            total += changed
            if changed < SWEEP_BATCH or time.monotonic() >= deadline or self._stop.is_set():
                return total
            time.sleep(SWEEP_PAUSE)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                log.warning("heartbeat failed (the store may be unreachable): %s", exc)

    def _housekeep(self) -> None:
        # The first recovery runs here, beside the worker's next fetches rather than before
        # them: it and its sweep are a call per queue (0.3-0.5 s with 200 queues on a loaded
        # machine), and a worker's first job should not wait for them. Nor beside the first
        # claim: it waits until that claim's jobs are handed over (``claimed``; a third of a
        # lease at most), as beside it it took the store from the claim (PostgreSQL's one
        # pooled connection, a Redis connection of its own, SQLite's write lock) and then the
        # GIL from the first job. A burst worker waits for it before it decides nothing is
        # left (``recovered``).
        self.claimed.wait(self.interval)
        try:
            self.recover()
        except Exception as exc:  # the next ones come every interval; draining comes first
            log.warning("recovery at start failed: %s", exc)
        finally:
            self.recovered.set()
        # Then at a random offset, so many workers do not all run it together.
        wait = random.uniform(0, self._recover_every)
        while not self._stop.wait(wait):
            began = time.monotonic()
            try:
                self.recover()
            except Exception as exc:
                log.warning("housekeeping failed (the store may be unreachable): %s", exc)
            wait = max(0.0, self._recover_every - (time.monotonic() - began))
