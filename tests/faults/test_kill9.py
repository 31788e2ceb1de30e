"""kill -9 at random moments: every job completes, none is lost, only jobs in flight at a
kill run twice, and no job stays ``active`` long past its lease."""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from . import figures
from .conftest import FULL, LEASE, Workers, size

CONCURRENCY = 4
PREFETCH = 4  # fixed, so a worker holds at most 8 jobs and "in flight" has a bound
# A longer lease at full size: on 2 cores under 20,000 jobs a heartbeat may be late, and a
# lease lost by a live worker would be a duplicate no kill explains.
KILL_LEASE = 2.0 if FULL else LEASE


@dataclass
class Kill:
    at: float
    pid: int
    held: set[str]
    recovered_after: float | None = None


@dataclass
class Watch:
    """Samples the active jobs while the run goes on."""

    kills: list[Kill] = field(default_factory=list)
    worst_overdue: float = 0.0  # seconds a job was seen active past its lease expiry
    worst_job: str = ""

    def sample(self, workers: Workers) -> None:
        now = time.time()
        active = workers.app.jobs(state="active", limit=100_000)
        still: dict[int, set[str]] = defaultdict(set)
        for job in active:
            if job.lease_until is not None:
                overdue = now - job.lease_until.timestamp()
                if overdue > self.worst_overdue:
                    self.worst_overdue, self.worst_job = overdue, job.id
            if job.worker:
                still[int(job.worker.split(":")[-2])].add(job.id)
        for kill in self.kills:
            if kill.recovered_after is None and not (kill.held & still[kill.pid]):
                kill.recovered_after = now - kill.at


def kill_seed() -> int:
    """The seed of the kill schedule (the gaps between kills): ``$CONVEYOR_FAULTS_SEED``
    repeats a schedule, else a new one is drawn. Printed either way; pytest shows it with a
    failure."""
    env = os.environ.get("CONVEYOR_FAULTS_SEED", "").strip()
    seed = int(env) if env else random.randrange(2**32)
    print(f"[faults] kill schedule seed {seed}: CONVEYOR_FAULTS_SEED={seed} repeats it")
    return seed


def _worker_args() -> list[str]:
    return ["--concurrency", str(CONCURRENCY), "--prefetch", str(PREFETCH), "--grace", "5"]


def test_kill_9_at_random_moments_loses_nothing(
    store: str, store_url: str, make_workers: Callable[..., Workers]
) -> None:
    n = size(400, 20_000)
    kills_each = size(2, 4)
    seconds = 0.03 if not FULL else 0.004
    seed = kill_seed()
    rng = random.Random(seed)
    w = make_workers(store_url, lease=KILL_LEASE)
    work = w.app.tasks["work"]
    started = time.monotonic()
    for i in range(0, n, 2000):
        w.app.enqueue_many([work.using(retries=20).job(k, seconds) for k in range(i, min(n, i + 2000))])
    procs = [w.start(*_worker_args()), w.start(*_worker_args())]
    watch = Watch()
    plan = [i % 2 for i in range(2 * kills_each)]
    gap = (0.3, 1.2) if not FULL else (1.0, 4.0)
    next_kill = time.monotonic() + rng.uniform(*gap)
    while plan:
        watch.sample(w)
        if time.monotonic() >= next_kill:
            victim = plan.pop(0)
            proc = procs[victim]
            w.kill(proc)
            at = time.time()
            held = {
                j.id
                for j in w.app.jobs(state="active", limit=100_000)
                if j.worker and f":{proc.pid}:" in j.worker
            }
            watch.kills.append(Kill(at, proc.pid, held))
            procs[victim] = w.start(*_worker_args())
            next_kill = time.monotonic() + rng.uniform(*gap)
        time.sleep(0.05)

    def done() -> bool:
        watch.sample(w)
        return w.app.stats().total("completed") == n

    w.wait_for(done, timeout=size(90, 900), what=f"for {n} jobs to complete")
    elapsed = time.monotonic() - started

    runs = w.runs()
    counts = w.counts()
    expected = {str(i) for i in range(n)}
    lost = expected - set(counts)
    assert not lost, f"{len(lost)} jobs lost: {sorted(lost)[:20]}"
    twice = {tag for tag, c in counts.items() if c > 1}
    killed = {k.pid for k in watch.kills}
    held_at_kills = set().union(*(k.held for k in watch.kills))
    id_of = {str(job.args[0]): job.id for job in w.app.jobs(state="completed", limit=n + 10)}
    in_flight = {tag for tag, job_id in id_of.items() if job_id in held_at_kills}
    pids: dict[str, set[int]] = defaultdict(set)
    for tag, pid in runs:
        pids[tag].add(pid)
    recover = [k.recovered_after for k in watch.kills if k.recovered_after is not None]
    figures.record(
        store,
        "kill -9",
        jobs=n,
        kills=len(watch.kills),
        lost=len(lost),
        duplicates=sum(counts[t] - 1 for t in twice),
        recover_s=round(max(recover, default=0.0), 2),
        held_at_kills=len(held_at_kills),
        worst_overdue_s=round(watch.worst_overdue, 2),
        seconds=round(elapsed, 1),
        lease_s=KILL_LEASE,
        seed=seed,
    )
    if twice:
        print(f"[faults] {store}: jobs run twice: {sorted(twice, key=int)}")
    # Only jobs in flight at a kill may run twice: held by the killed worker (running, or
    # done with the acknowledgement not yet written), run once in a killed process, and
    # counted as a further attempt.
    assert twice <= in_flight, sorted(twice - in_flight)
    for tag in twice:
        assert pids[tag] & killed, (tag, pids[tag], killed)
        snap = w.app.get_job(id_of[tag])
        assert snap is not None and snap.attempts >= 2, (tag, snap)
    assert all(k.recovered_after is not None for k in watch.kills), watch.kills
    # An expired lease is recovered by the next housekeeping pass of a live worker, which
    # runs at every heartbeat (a third of the lease). The bound allows a whole lease, plus
    # sampling slack: on 2 busy cores a beat may come late (the full-size runs measured up to
    # 1.67 s past a 2 s lease on PostgreSQL).
    assert watch.worst_overdue <= KILL_LEASE + 0.75, (watch.worst_overdue, watch.worst_job)
