"""Jobs through a fault: a producer enqueues while a worker (a thread of this process) runs
them, a fault is injected part-way, and afterwards every acknowledged job is looked for.

*Acknowledged* means ``enqueue`` returned; a call that raised was refused, and its caller
knows. *Lost*: acknowledged and never run. *Duplicates*: runs beyond the first.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from conveyor import Conveyor, StoreUnavailable


@dataclass
class Through:
    acknowledged: list[int] = field(default_factory=list)
    refused: int = 0
    runs: collections.Counter[int] = field(default_factory=collections.Counter)
    fault_s: float = 0.0
    #: From the fault's end until a job ran again.
    recover_s: float = 0.0
    #: From the fault's start until every acknowledged job had run (the producer included).
    done_s: float = 0.0
    ran_at: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> list[int]:
        return [i for i in self.acknowledged if i not in self.runs]

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.runs.values() if n > 1)

    def figures(self, kills: int = 1) -> dict[str, object]:
        return {
            "jobs": len(self.acknowledged),
            "kills": kills,
            "lost": len(self.lost),
            "duplicates": self.duplicates,
            "recover_s": round(self.recover_s, 2),
            "refused": self.refused,
            "fault_s": round(self.fault_s, 2),
            "all_done_s": round(self.done_s, 2),
        }


def run_through(
    app: Conveyor, fault: Callable[[], object], jobs: int, settle: float = 60.0, concurrency: int = 8
) -> Through:
    """Enqueue ``jobs`` jobs one by one while a worker runs them; call ``fault()`` once a
    third are acknowledged; wait up to ``settle`` seconds after the producer ends for every
    acknowledged job to run; stop the worker."""
    seen = Through()
    lock = threading.Lock()

    @app.task(name="through.mark", retries=5)
    def mark(i: int) -> None:
        with lock:
            seen.runs[i] += 1
            seen.ran_at.append(time.monotonic())

    worker = app.worker(concurrency=concurrency, grace=5.0)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    third = threading.Event()

    def produce() -> None:
        for i in range(jobs):
            try:
                mark.enqueue(i)
                seen.acknowledged.append(i)
            except StoreUnavailable as exc:
                seen.refused += 1
                if len(seen.errors) < 3:
                    seen.errors.append(str(exc))
                time.sleep(0.05)
            if len(seen.acknowledged) >= jobs // 3:
                third.set()
            time.sleep(0.001)
        third.set()

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    third.wait(120)
    started = time.monotonic()
    fault()
    ended = time.monotonic()
    seen.fault_s = ended - started
    producer.join(300)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and seen.lost:
        time.sleep(0.1)
    seen.done_s = time.monotonic() - started
    with lock:
        after = [t for t in seen.ran_at if t >= ended]
    seen.recover_s = (min(after) - ended) if after else float("nan")
    worker.stop()
    running.join(30)
    assert not running.is_alive(), "the worker did not stop"
    return seen
