"""The worker: lifecycle, signals, and the fetch → run → ack loop."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..backends import WaitsAndFetches
from ..job import Failure, WorkerInfo
from ..limits import SEP
from ..logs import job_line
from ..render import plural
from .acker import MAX_BATCH as MAX_ACK_BATCH
from .acker import Acker
from .canceller import Canceller
from .executor import AsyncExecutor, Prepared, Runner, RunningJob, ThreadExecutor, Watchdog
from .heartbeat import Heartbeat
from .outcome import Outcome
from .queues import QueueOrder

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..periodic.scheduler import Scheduler

log = logging.getLogger("conveyor.worker")

#: The longest idle wait of a worker whose app declares limits (seconds).
LIMITED_IDLE_WAIT = 0.05
#: Seconds of work the adaptive prefetch keeps ready, and the most jobs it holds.
PREFETCH_HORIZON = 0.05
PREFETCH_LIMIT = 1000
#: Seconds of work a limited worker's jobs ahead hold at most (and AHEAD_DEPTH a run): twice
#: PREFETCH_HORIZON, as a limited worker's pace drops under load its prefetch dropped with
#: it, chains of jobs ahead grew shorter, more runs ended with none, and the pace dropped
#: further (PostgreSQL, concurrency=50 at load 5: 2,200-2,600 jobs/s with 0.05 s against
#: 3,100-4,000 with 0.1 s, bench/LIMITS.md).
AHEAD_HORIZON = 0.1
#: A limited worker takes jobs ahead (each to start in the slot of a run of the same limit
#: and key that ends) only while its runs last at most this long on average (seconds), and
#: hands back a job that waited for a slot longer than AHEAD_WAIT: a job held back by a
#: limit belongs in the store, where any worker with a free slot can take it.
AHEAD_PACE = 0.25
AHEAD_WAIT = 0.5
#: Jobs ahead per run at most: each waits for the one before it (fewer, larger claims). A
#: run gets as many as its slot runs in AHEAD_WAIT at the current pace, 2 at least: runs of
#: 10 ms ended before the claim that asked for their next job answered (Redis,
#: concurrency=50: most starts waited for a claim with 2, bench/LIMITS.md).
AHEAD_DEPTH = 3
AHEAD_DEPTH_MIN = 2
#: Runs one slot serves in a row by jobs ahead before it goes back to the store: the jobs of
#: a bucket's other slots, and of other keys, are not passed over for long. As many as the
#: slot runs in AHEAD_TURN_SPAN at the current pace, AHEAD_TURN at least and AHEAD_TURN_MAX
#: at most: a slot that goes back leaves its thread idle for a claim's round-trip, and at 8
#: runs of 10 ms PostgreSQL's limited drain spent most of its threads' time so (a
#: concurrency=50 drain at 0.6-0.7 of unlimited; at 32 runs, 0.8-0.9: bench/LIMITS.md).
AHEAD_TURN = 8
AHEAD_TURN_MAX = 32
AHEAD_TURN_SPAN = 0.5

#: Exit code of a supervised worker that asks to be replaced (a task thread is stuck).
EXIT_REPLACE_ME = 3
#: Seconds past the grace period that a shutdown begun by a signal may still take (writing
#: the last outcomes, handing jobs back, unregistering) before the process exits anyway: a
#: store that stops answering (a frozen server, a dead link with no RST) would otherwise hold
#: it for as long as the client's timeouts and retries add up to, or for ever.
SHUTDOWN_MARGIN = 15.0


class Worker:
    """Runs jobs from the app's store until stopped.

    Sync tasks run on ``concurrency`` threads, async tasks on one event loop beside them;
    with ``pool="process"`` sync tasks run in ``concurrency`` child processes instead
    (``process_pool``), which ``app_target`` (``MODULE:APP``) tells how to load the app.
    The worker holds at most ``concurrency + prefetch`` jobs: each fetch asks for exactly
    the free places, so one round-trip claims a batch. Unless ``prefetch`` is given, it
    adapts: enough ready jobs for about 50 ms of work at the current pace (at least
    ``concurrency``), so short jobs come in large batches and long ones are not hoarded.

    Delivery is at-least-once: nothing is acknowledged before its task returns, and a job
    whose worker dies comes back when its lease expires.
    """

    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str] | str | None = None,
        concurrency: int = 10,
        *,
        burst: bool = False,
        grace: float = 30.0,
        prefetch: int | None = None,
        idle_wait: float = 0.25,
        supervised: bool = False,
        pool: str = "thread",
        max_tasks_per_child: int | None = None,
        max_memory_per_child: float | None = None,
        app_target: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.pool = _check_pool(pool, max_tasks_per_child, max_memory_per_child)
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        self.app_target = app_target
        self.app = app
        self.order = QueueOrder(queues)
        self.concurrency = concurrency
        limited = {queue for queue, _ in app.limit_definitions()}
        # Whether this worker serves a queue with limits (all queues: maybe).
        self._limited = bool(limited) and (
            self.order.names is None or not limited.isdisjoint(self.order.names)
        )
        # A started job holds its limit's slot: one waiting in this worker's memory would keep
        # the slot from a worker with a free thread. So a limited worker claims to start only
        # what its free threads run at once, and claims again as soon as a quarter of its
        # places are free, or LIMITED_IDLE_WAIT after its last claim with a thread free
        # (``_limited_places``); its prefetch is made of jobs taken *ahead* (``fetch_ahead``): each
        # waits here without a slot for one run of its own limit and key in this worker to
        # end, and starts at once in that run's slot, with no round-trip (the store counts it
        # from the moment it records that run's end).
        # run of a bucket -> (bucket, attempts, runs in its slot before it without a return)
        self._runs: dict[str, tuple[str, int, int]] = {}
        self._next: dict[str, tuple[float, Any]] = {}  # run -> (since, the job to start next)
        self._ahead: dict[str, str] = {}  # job taken ahead -> the run (or job ahead) it follows
        self._asking: set[str] = set()  # runs whose next job the claim that is out asks for
        self._parked: dict[str, Outcome] = {}  # run -> its outcome, until that claim answers
        self._ahead_ok = False  # runs are short enough to take jobs ahead (AHEAD_PACE)
        self._ahead_depth = AHEAD_DEPTH_MIN  # jobs ahead per run at most (AHEAD_DEPTH)
        self._ahead_turn = AHEAD_TURN  # runs a slot serves in a row by jobs ahead at most
        self._fixed_prefetch = prefetch
        self.capacity = concurrency + (concurrency if prefetch is None else max(0, prefetch))
        self._batch_floor = max(1, self.capacity // (4 if self._limited else 2))
        self._rate_mark = (time.monotonic(), 0)
        self._claimed = 0.0  # when a limited worker last claimed (monotonic)
        self._outage = 0.0  # the last pause after a failed store call; 0 while all is well
        self.burst = burst
        self.grace = grace
        self.idle_wait = idle_wait
        if self._limited:
            # Held jobs wake nobody when a slot frees or a token comes: look again soon.
            self.idle_wait = min(idle_wait, LIMITED_IDLE_WAIT)
        self.supervised = supervised
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.exit_code = 0
        self.processed = 0
        self._started_at = time.time()
        self._held: set[str] = set()
        # A plain lock (the hot paths enter it directly: ``with`` on a Condition is two
        # Python calls more per job), and whether the loop's thread (the only one that
        # waits on the condition) waits and has not been woken yet: a finished job
        # notifies only then, not once per job until that thread gets to run.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()  # run() has returned
        self._signals = 0
        self._backend = app.backend
        # A store that claims the jobs that woke it in the same round-trip (Redis) says so.
        self._wait_and_fetch = (
            self._backend.wait_and_fetch if isinstance(self._backend, WaitsAndFetches) else None
        )
        # A store whose acknowledgements and claims run side by side (PostgreSQL: each on a
        # connection and a server process of its own) lets a claim go out while the previous
        # batch's outcomes are still being written (``_free_places``).
        self._acks_beside = bool(getattr(self._backend, "acks_beside_claims", False))

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped (a signal, ``stop()``, or an empty store with ``burst``).

        SIGTERM or SIGINT stop fetching and give running jobs ``grace`` seconds to finish,
        then hand the rest back; a second signal exits at once.
        """
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        self._watchdog = Watchdog(self._on_stuck)
        self._runner = Runner(self.app, self._watchdog, self.id)
        # A batch as large as the most a claim can hand over: with the acker's default of
        # 1,000 and a capacity of 1,010, every claimed batch's outcomes went out as two
        # writes, the second of 10 jobs (a statement, its triggers and a round trip). At most
        # a tenth over the default: a Redis acknowledgement is one script, and a script of
        # 2,000 jobs would hold the server past 5 ms.
        most = self.concurrency + (PREFETCH_LIMIT if self._fixed_prefetch is None else self._fixed_prefetch)
        self._acker = Acker(
            self._backend,
            self.id,
            self._acks_written,
            max_batch=max(MAX_ACK_BATCH, min(MAX_ACK_BATCH + MAX_ACK_BATCH // 10, most)),
        )
        self._threads = self._executor()
        self._async: AsyncExecutor | None = None
        # Pool threads decode what they take, unless async tasks exist: an async job must
        # never wait for a thread busy with a long sync job, so this thread decodes it.
        self._decode_here = any(task.is_async for task in self.app.tasks.values())
        # Limits are decided by the store, from the definitions it holds: write ours first.
        self.app.define_limits()
        self._heartbeat = Heartbeat(
            self._backend,
            self.info,
            self.app.lease,
            self.app.result_ttl,
            self.app.dead_ttl,
            self.app.dead_max,
        )
        self._heartbeat.start()  # (its thread recovers lost jobs first, beside the first fetch)
        self._canceller = Canceller(self._backend, self.id, self._runner)
        self._canceller.start()
        # Only an app with schedules has a scheduler thread: others pay nothing for it.
        self._scheduler: Scheduler | None = None
        if self.app.schedules:
            from ..periodic.scheduler import Scheduler  # (with cronsim and zoneinfo: only here)

            self._scheduler = Scheduler(self.app)
            self._scheduler.start()
        log.info(
            "worker %s serving %s with %s",
            self.id,
            ",".join(self.order.describe()),
            plural(self.concurrency, "thread")
            if self.pool == "thread"
            else plural(self.concurrency, "child process", "child processes"),
        )
        try:
            self._loop()
        finally:
            self._shutdown()
            self._stopped.set()
            for number, handler in previous.items():
                signal.signal(number, handler)
        return self.exit_code

    def _executor(self) -> ThreadExecutor:
        """The pool that runs sync jobs: threads, or (``pool="process"``) child processes."""
        if self.pool == "thread":
            return ThreadExecutor(self._runner, self.concurrency, self._finished, self._route)
        from .process_pool import ProcessPool, find_target

        return ProcessPool(
            self._runner,
            self.concurrency,
            self._finished,
            self._route,
            self.app_target or find_target(self.app),
            max_tasks=self.max_tasks_per_child,
            max_memory=None if self.max_memory_per_child is None else int(self.max_memory_per_child * 2**20),
        )

    def stop(self) -> None:
        """Stop fetching; ``run()`` then finishes what it holds and returns."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def info(self) -> WorkerInfo:
        with self._cond:
            running = tuple(self._held)
        return WorkerInfo(
            id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self.order.describe(),
            concurrency=self.concurrency,
            started_at=self._started_at,
            running=running[:1000],
        )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now; leases will bring running jobs back")
            os._exit(1)
        log.info(
            "%s: finishing running jobs (up to %g s), then exiting", signal.Signals(signum).name, self.grace
        )
        self.stop()
        self._exit_if_stuck(self.grace + SHUTDOWN_MARGIN)

    def _exit_if_stuck(self, after: float) -> None:
        """Exit the process if the shutdown a signal asked for is not over ``after`` seconds
        from now, writing where every thread was first (the jobs it still held come back
        with their leases, as after a second signal)."""

        def watch() -> None:
            if self._stopped.wait(after):
                return
            log.error(
                "still shutting down %g s after the signal (grace %g s): exiting now; leases "
                "will bring back the jobs it held. Where each thread was:",
                after,
                self.grace,
            )
            try:
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            finally:  # (a stderr with no file descriptor must not keep the process alive)
                os._exit(1)

        threading.Thread(target=watch, name="conveyor-exit-watch", daemon=True).start()

    # -- the hot path ---------------------------------------------------------------------
    def _loop(self) -> None:
        backend, lease, fetch_size = self._backend, self.app.lease, self._free_places
        stalled = self._acker.stalled
        claimed = self._heartbeat.claimed
        while not self._stopping.is_set():
            free = fetch_size()
            if free == 0:
                continue
            if stalled.is_set():
                # Finished jobs cannot be recorded: take no more until they can.
                self._stopping.wait(0.1)
                continue
            queues = self.order()
            try:
                if self._limited:
                    started = self._fetch_limited(queues, free)
                    if started is None:  # nothing to ask for yet (every free place is ahead)
                        continue
                    self._outage = 0.0
                    self._submit(started)
                    claimed.set()  # (see below)
                    if started:
                        continue
                    records = []  # (none to start now: wait, as after any empty fetch)
                else:
                    records = backend.fetch(queues, free, self.id, lease, time.time())
            except Exception as exc:
                claimed.set()
                self._store_down(exc)
                continue
            self._outage = 0.0
            if records:
                self._take(records)
            # The first recovery waits for this, the first claim's jobs handed over (see
            # Heartbeat._housekeep). (Once set, 0.5 µs a claim.)
            claimed.set()
            if records:
                continue
            if self.burst:
                with self._lock:
                    if self._held:
                        self._wait_here(0.05)
                        continue
                # Nothing held: once the last outcomes are written (a retry may be due at
                # once), an empty fetch means there is nothing left to do.
                self._acker.flush(30.0)
                if not self._heartbeat.recovered.is_set():
                    # Jobs of a lost worker may be on their way back: look again after.
                    self._heartbeat.recovered.wait(0.1)
                    continue
                if not self._ready(queues):
                    if self._limited and self._held_back(queues):
                        self._stopping.wait(LIMITED_IDLE_WAIT)
                        continue
                    return
            else:
                try:
                    self._take(self._wait(queues, free))
                    # Let the pool thread just handed a job take the GIL now, rather than
                    # after this thread's next call blocks: an idle worker's job then starts
                    # sooner (about 90 µs on Redis when it was measured, commit 3385e49;
                    # enqueue-to-start figures are bench/'s to state).
                    time.sleep(0)
                except Exception as exc:
                    self._store_down(exc)

    def _fetch_limited(self, queues: list[str] | None, free: int) -> list[Any] | None:
        """A limited worker's claim: jobs to start now for its free threads and, while its
        runs are short, jobs ahead, each to start in the slot of one run of its bucket here
        when that run ends. Returns the jobs to start (None: nothing to ask for yet)."""
        fetch_ahead = getattr(self._backend, "fetch_ahead", None)
        if not getattr(self._backend, "takes_jobs_ahead", True):
            fetch_ahead = None
        with self._lock:
            stale = self._stale_ahead(time.monotonic() - AHEAD_WAIT)
            started = len(self._held) - len(self._next)
            now_places = max(0, min(free, self.concurrency - started))
            room = free - now_places if self._ahead_ok and fetch_ahead is not None else 0
            asked: list[tuple[str, str, int]] = []
            if room > 0:
                # A store that chains jobs ahead fills a run's chain in one claim; others
                # give one job per run and claim (a chain then grows by one per claim, and
                # runs shorter than a claim's round-trip end with none ahead).
                chains = getattr(self._backend, "chains_jobs_ahead", False)
                most, turn = self._ahead_depth, self._ahead_turn
                for run, (bucket, attempts, chain) in self._runs.items():
                    # The end of the run's chain of jobs ahead, if shorter than AHEAD_DEPTH
                    # and the slot has not served AHEAD_TURN runs in a row (then it goes
                    # back to the store, where the other keys' jobs wait their turn).
                    last, depth = run, 0
                    while depth < most and last in self._next:
                        record = self._next[last][1]
                        last, attempts, depth = record.id, record.attempts, depth + 1
                    more = min(most - depth, turn - 1 - chain - depth, room - len(asked))
                    if more > 0:
                        asked.extend([(bucket, last, attempts)] * (more if chains else 1))
                        if len(asked) >= room:
                            break
            # A run asked for that ends while this claim is out keeps its outcome here (its
            # slot in the store) until the claim answers: the job ahead takes the slot.
            self._asking = {run for _, run, _ in asked}
        if stale:
            self._release([r.id for r in stale])
        if now_places == 0 and not asked:
            with self._lock:
                self._wait_here(0.05)
            return None
        self._claimed = time.monotonic()
        records: list[Any] = []
        after: dict[str, str] = {}
        orphans: list[str] = []
        try:
            if fetch_ahead is None:  # a store without claims ahead (a test double)
                records = self._backend.fetch(queues, now_places, self.id, self.app.lease, time.time())
            else:
                records, after = fetch_ahead(queues, now_places, self.id, self.app.lease, time.time(), asked)
        finally:
            with self._lock:
                self._held.update(r.id for r in records)
                start: list[Any] = []
                now = time.monotonic()
                for record in records:
                    follows = after.get(record.id)
                    if follows is None:
                        if SEP in record.queue:
                            self._runs[record.id] = (record.queue, record.attempts, 0)
                        start.append(record)
                    elif follows in self._parked:  # the run ended meanwhile: its slot is this job's
                        self._start_in_slot(record, follows)
                        self._acker.put(self._parked.pop(follows))
                        start.append(record)
                    elif follows in self._runs or follows in self._ahead:
                        self._next[follows] = (now, record)
                        self._ahead[record.id] = follows
                    else:  # (its run timed out meanwhile: see _on_stuck)
                        orphans.append(record.id)
                self._asking = set()
                parked, self._parked = self._parked, {}
                for run in parked:
                    del self._runs[run]
            for outcome in parked.values():
                self._acker.put(outcome)
            if orphans:
                self._release(orphans)
        if not start and (records or now_places == 0):
            # Jobs ahead only, or nothing for runs ahead with no thread free: not an empty
            # fetch, so no wait on the store (nothing there wakes it when a run of this worker
            # ends: on PostgreSQL such a claim cost the fetcher its idle wait, 50 ms, about 18
            # times a 2,000-job concurrency=50 drain, two thirds of the drain). A thread that
            # ends a run wakes this one.
            if not records:
                with self._lock:
                    self._wait_here(0.05)
            return None
        return start

    def _stale_ahead(self, before: float) -> list[Any]:
        """Jobs taken ahead that waited since before ``before`` (monotonic), removed: their
        runs outlast AHEAD_WAIT, and they go back to the store, where any worker with a
        free slot can take them. Called under ``_cond``."""
        found = [run for run, (since, _) in self._next.items() if since < before]
        stale: list[Any] = []
        for run in found:
            # The job and the rest of its chain (each waits for the one before it).
            while run in self._next:
                record = self._next.pop(run)[1]
                del self._ahead[record.id]
                stale.append(record)
                run = record.id
        return stale

    def _take(self, records: list[Any]) -> None:
        with self._lock:
            if records and not self._held:
                # The pace (``_adapt_prefetch``) is measured from here: while this worker held
                # nothing (its start, the first claim's round-trip, an idle store) its threads
                # had no work, and counting that time made the first window's pace a fraction
                # of the real one (PostgreSQL, 20,000 no-op jobs: claims of 20, 91, 318, then
                # 1,010 once the pace caught up).
                self._rate_mark = (time.monotonic(), self.processed)
            self._held.update([r.id for r in records])
            if self._limited:
                for record in records:
                    if SEP in record.queue:
                        self._runs[record.id] = (record.queue, record.attempts, 0)
        self._submit(records)

    def _submit(self, records: list[Any]) -> None:
        if self._decode_here:
            for record in records:
                self._dispatch(record)
            return
        submit = self._threads.submit
        for record in records:
            submit(record)

    def _start_in_slot(self, record: Any, run: str) -> None:
        """A job taken ahead starts in the slot of ``run``, which ended. The store counts
        the job against the limit from the moment it records that run's end (see
        ``fetch_ahead``), so nothing need be written now. Called under ``_cond``."""
        bucket, _, chain = self._runs.pop(run)
        self._runs[record.id] = (bucket, record.attempts, chain + 1)
        record.started_at = time.time()

    def _hand_over(self, job_id: str, outcome: Outcome) -> tuple[Any, bool]:
        """A run ended: (the job taken ahead that starts in its slot, or None; whether its
        outcome is kept back until the claim that is out for it answers). Called under
        ``_cond``."""
        if job_id not in self._runs:
            return None, False
        taken = self._next.pop(job_id, None)
        if taken is not None:
            del self._ahead[taken[1].id]
            self._start_in_slot(taken[1], job_id)
            return taken[1], False
        if job_id in self._asking:
            self._parked[job_id] = outcome
            return None, True
        del self._runs[job_id]
        return None, False

    def _wait(self, queues: list[str] | None, free: int) -> list[Any]:
        """Wait for jobs to arrive; a store that can claim them in the same round-trip
        (Redis: a fetch queued behind its BLPOP) returns them."""
        if self._wait_and_fetch is not None and not self._limited:
            # (A limited worker claims only through _fetch_limited, which knows which of its
            # free places may take a job that starts now.)
            return self._wait_and_fetch(queues, self.idle_wait, free, self.id, self.app.lease)
        self._backend.wait(queues, self.idle_wait)
        return []

    def _store_down(self, exc: Exception) -> None:
        """The store failed a call: keep running what is held, and try again with backoff
        (the store's client reconnects by itself when the store is back)."""
        pause = min(5.0, max(0.05, self._outage * 2))
        log.warning("store unreachable (%s); retrying in %.2f s", exc, pause)
        self._outage = pause
        self._stopping.wait(pause)

    def _held_back(self, queues: list[str] | None) -> bool:
        """True if jobs of ``queues`` are ready but held back by a limit (or just claimed by
        another worker): a burst worker of an app with limits waits for them rather than
        leave them behind when its limits meter them out."""
        counts = self.app.stats().queues
        return any(counts.get(q, {}).get("pending", 0) for q in (counts if queues is None else queues))

    def _ready(self, queues: list[str] | None) -> bool:
        """True if a job is due now (the burst worker's last look before it exits)."""
        records = self._backend.fetch(queues, 1, self.id, self.app.lease, time.time())
        self._take(records)
        return bool(records)

    def _free_places(self) -> int:
        """Places free for new jobs, once there are enough for a worthwhile batch.

        While the worker still holds jobs to run, it waits until half its places are free:
        a fetch is a round-trip (a write transaction on SQL stores), and claiming one job at
        a time as each finishes would spend the store on tiny batches.
        """
        with self._lock:
            if self._fixed_prefetch is None or self._limited:
                self._adapt_prefetch()
            if self._limited:
                return self._limited_places()
            if self._acks_beside:
                free = self._room()
                if free <= 0 or (free < self._batch_floor and (self._held or self._acker.unwritten)):
                    self._wait_here(0.05)
                    return 0
                return free
            free = self.capacity - len(self._held)
            if free <= 0 or (self._held and free < self._batch_floor) or self._acks_behind():
                self._wait_here(0.05)
                return 0
            return free

    def _room(self) -> int:
        """Places free where acknowledgements run beside claims: at most a capacity held, and
        at most two capacities held or waiting for their outcome to be written (each is an
        active job in the store, a lease the heartbeat extends). The second capacity is what
        lets the next claim go out while the previous batch's acknowledgement is written:
        with no-op jobs a batch runs in a few milliseconds, and waiting for its outcomes
        (a whole capacity unwritten) made every claim, run and acknowledgement take turns
        on PostgreSQL, one server process busy at a time (a 100k drain: claims and acks in
        flight together 13% of the time). Called under ``_lock``."""
        held = len(self._held)
        return min(self.capacity - held, 2 * self.capacity - held - self._acker.unwritten)

    def _limited_places(self) -> int:
        """A limited worker's places: its free threads (jobs to start now) plus the room left
        for jobs ahead. Called under ``_lock``.

        Jobs ahead never keep a free thread from a claim: counted against the same places,
        they left a worker whose prefetch they filled claiming nothing to start, and a rated
        bucket sharing the queue saw fewer claims (tokens past its burst are lost). A free
        thread waits for a batch's worth of places at most LIMITED_IDLE_WAIT after the last
        claim: the claim it makes then keeps a rate's tokens in use while the worker's other
        threads are busy."""
        if self._acks_behind():
            self._wait_here(0.05)
            return 0
        threads = max(0, self.concurrency - (len(self._held) - len(self._next)))
        room = max(0, self.capacity - self.concurrency - len(self._next))
        if threads + room == 0 or (
            self._held
            and threads + room < self._batch_floor
            and (threads == 0 or time.monotonic() - self._claimed < LIMITED_IDLE_WAIT)
        ):
            self._wait_here(0.05)
            return 0
        return threads + room

    def _wait_here(self, timeout: float) -> None:
        """``self._cond.wait`` in the loop's thread (the caller holds ``self._lock``)."""
        self._waiting = True
        try:
            self._cond.wait(timeout)
        finally:
            self._waiting = False

    def _acks_behind(self) -> bool:
        """True while the acker has a whole capacity of outcomes still to write: a job stays
        active in the store until its outcome is written, so claiming on would let the
        active jobs (each a lease the heartbeat extends) and this process grow without bound
        whenever the store acknowledges more slowly than it claims."""
        return self._acker.unwritten >= self.capacity

    def _acks_written(self) -> None:
        """The acker wrote a batch: wake the fetcher if it was waiting for that."""
        if self._acker.unwritten < self.capacity or self._acks_beside:
            with self._lock:
                if self._waiting:
                    self._waiting = False
                    self._cond.notify_all()

    def _adapt_prefetch(self) -> None:
        now = time.monotonic()
        since, done = self._rate_mark
        # Every 50 ms, or sooner once a whole capacity's worth has run: a backlog of short
        # jobs reaches full-size batches after the first batch instead of after a few
        # windows (at 200 ms windows, a 20,000-job drain spent a fifth of its time in tiny
        # batches). Slow jobs see no difference: they take longer than the window anyway.
        if now - since < 0.05 and self.processed - done < self.capacity:
            return
        rate = (self.processed - done) / (now - since)
        self._rate_mark = (now, self.processed)
        if self._limited:
            # Jobs ahead wait for a run of their own bucket to end: only while runs are short
            # (the runs in progress over the pace of ends: about the mean time of a run).
            running = len(self._held) - len(self._next)
            self._ahead_ok = rate > 0 and running / rate <= AHEAD_PACE
            if self._ahead_ok and running:
                # (A job k-th ahead waits about k runs: within AHEAD_WAIT, or it goes back.)
                fits = int(AHEAD_WAIT * rate / running)
                self._ahead_depth = max(AHEAD_DEPTH_MIN, min(AHEAD_DEPTH, fits))
                self._ahead_turn = max(AHEAD_TURN, min(AHEAD_TURN_MAX, int(AHEAD_TURN_SPAN * rate / running)))
        if self._fixed_prefetch is not None:
            return
        horizon = AHEAD_HORIZON if self._limited else PREFETCH_HORIZON
        prefetch = min(PREFETCH_LIMIT, max(self.concurrency, int(rate * horizon)))
        if self._limited:
            prefetch = min(prefetch, self.concurrency * AHEAD_DEPTH)
        self.capacity = self.concurrency + prefetch
        self._batch_floor = max(1, self.capacity // (4 if self._limited else 2))

    def _dispatch(self, record: Any) -> None:
        job = self._route(record)
        if job is not None:
            self._threads.submit(job)

    def _route(self, record: Any) -> Prepared | None:
        """Decode a fetched job: one that cannot run is finished here, an async one goes to
        the event loop; a sync one is returned, for the calling thread or the pool to run."""
        job = self._runner.prepare(record)
        if isinstance(job, Failure):
            self._finished(record.id, job)
        elif job.task.is_async:
            self._run_async(job)
        else:
            return job
        return None

    def _run_async(self, job: Prepared) -> None:
        """An async task's job: onto the event loop (started the first time one comes)."""
        with self._cond:
            if self._async is None:
                self._async = AsyncExecutor(self._runner, self._finished)
            executor = self._async
        executor.submit(job)

    def _finished(self, job_id: str, outcome: Outcome | None) -> None:
        successor, parked = None, False
        if self._runs and outcome is not None and not self._stopping.is_set():
            with self._lock:
                successor, parked = self._hand_over(job_id, outcome)
        if outcome is not None and not parked:
            self._acker.put(outcome)
        if successor is not None:
            if self._decode_here:
                self._dispatch(successor)
            else:
                self._threads.submit(successor)
        with self._lock:
            if outcome is not None:
                self._held.discard(job_id)
                self.processed += 1
            # Wake the fetcher only when a batch's worth of places is free (or none is held,
            # which shutdown and burst wait for): a wake per job costs a GIL hand-off each.
            # Nobody waiting (the fetcher is claiming, or was woken already): no call at all.
            if self._waiting and len(self._held) <= self.capacity - self._batch_floor:
                self._waiting = False
                self._cond.notify_all()

    # -- the rare paths -------------------------------------------------------------------
    def _on_stuck(self, entry: RunningJob) -> None:
        """A sync task ignored its timeout: record the timeout now, and if this process is
        supervised, ask to be replaced so the stuck thread does not hold its place for ever."""
        error = f"timed out after {entry.timeout:g} s (the task did not stop; its thread was abandoned)"
        outcome = "retry" if entry.retry else "dead"
        job_line(
            logging.ERROR,
            "job %s %s: %s",
            (entry.job_id, outcome, error),
            {"job_id": entry.job_id, "outcome": outcome, "error": error},
        )
        self._acker.put(Failure(entry.job_id, error, None, time.time() if entry.retry else None))
        with self._cond:
            self._held.discard(entry.job_id)
            # Its slot is free with that outcome; a job ahead of it goes back when it goes stale.
            self._runs.pop(entry.job_id, None)
            self._cond.notify_all()
        if self.supervised:
            log.error("a task thread is stuck past its timeout; asking for a new process")
            self.exit_code = EXIT_REPLACE_ME
            self.stop()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.grace
        with self._cond:
            ahead = self._stale_ahead(float("inf"))
        unstarted = self._threads.take_unstarted() + [r.id for r in ahead]
        if unstarted:
            self._release(unstarted)
        with self._lock:
            while self._held and time.monotonic() < deadline:
                self._wait_here(min(0.1, max(0.0, deadline - time.monotonic())))
            left = list(self._held)
        self._acker.flush(max(1.0, deadline - time.monotonic()))
        if left:
            log.warning("grace period over: handing %s back", plural(len(left), "running job"))
            self._release(left)
        self._threads.stop()
        if self._async is not None:
            self._async.stop()
        self._watchdog.stop()
        self._acker.stop()
        self._canceller.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        self._heartbeat.stop()
        try:
            self._backend.heartbeat(replace(self.info(), alive=False), self.app.lease, time.time())
        except Exception as exc:
            log.warning("could not unregister worker: %s", exc)
        log.info("worker %s stopped after %s", self.id, plural(self.processed, "job"))

    def _release(self, ids: list[str]) -> None:
        try:
            self._backend.release(ids, self.id)
        except Exception as exc:
            log.warning("could not hand back %d jobs (their leases will): %s", len(ids), exc)
        with self._cond:
            self._held.difference_update(ids)


def _check_pool(pool: str, max_tasks: int | None, max_memory: float | None) -> str:
    if pool not in ("thread", "process"):
        raise ValueError(f"pool must be 'thread' or 'process', not {pool!r}")
    if pool == "thread" and (max_tasks is not None or max_memory is not None):
        raise ValueError("max_tasks_per_child and max_memory_per_child need pool='process'")
    if max_tasks is not None and max_tasks < 1:
        raise ValueError("max_tasks_per_child must be at least 1")
    if max_memory is not None and max_memory <= 0:
        raise ValueError("max_memory_per_child must be a positive number of MB")
    return pool
