"""A model of the store's semantics, checked against each store by random operations.

The model is a dict of jobs with their state, attempts and holder; every rule applies an
operation to both and the invariants compare them. Hypothesis shrinks any disagreement to a
short sequence of operations.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor.job import Failure, visible_state

from .conftest import AppFactory
from .helpers import record

# One namespace per example: id(self) of a collected machine comes back for a later one,
# which then met the first one's jobs (a flaky 'recovered 10, expected 0').
_machines = itertools.count()

QUEUES = ("default", "mail")
LEASE = 10.0


@dataclass
class Model:
    id: str
    queue: str
    priority: int
    run_at: float
    max_attempts: int
    state: str = "pending"
    attempts: int = 0
    holder: str | None = None
    lease_until: float = 0.0
    asked: bool = False  # app.cancel asked it to stop while it ran; sticks until it ends


def machine(make_app: AppFactory) -> type[RuleBasedStateMachine]:
    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.app = make_app(namespace=f"m{next(_machines)}")
            self.backend = self.app.backend
            self.now = 1_800_000_000.0  # a fixed clock: every call takes its time from here
            self.jobs: dict[str, Model] = {}

        def waiting(self, queue: str) -> list[Model]:
            due = [
                j
                for j in self.jobs.values()
                if j.queue == queue and j.state in ("pending", "scheduled", "retry") and j.run_at <= self.now
            ]
            return sorted(due, key=lambda j: (-j.priority, j.run_at, j.id))

        def held(self, worker: str) -> list[Model]:
            return [j for j in self.jobs.values() if j.state == "active" and j.holder == worker]

        @rule(
            queue=st.sampled_from(QUEUES),
            priority=st.integers(0, 2),
            delay=st.sampled_from([0.0, 0.0, 5.0]),
            max_attempts=st.integers(1, 3),
            count=st.integers(1, 3),
        )
        def enqueue(self, queue: str, priority: int, delay: float, max_attempts: int, count: int) -> None:
            records = [
                record(
                    self.app,
                    queue=queue,
                    priority=priority,
                    run_at=self.now + delay,
                    created_at=self.now,
                    max_attempts=max_attempts,
                    state="scheduled" if delay else "pending",
                )
                for _ in range(count)
            ]
            self.backend.enqueue(records)
            for r in records:
                self.jobs[r.id] = Model(
                    r.id, queue, priority, r.run_at, max_attempts, "scheduled" if delay else "pending"
                )

        @rule(
            order=st.sampled_from([["default", "mail"], ["mail", "default"], ["mail"], None]),
            limit=st.integers(1, 4),
            worker=st.sampled_from(["w1", "w2"]),
        )
        def fetch(self, order: list[str] | None, limit: int, worker: str) -> None:
            got = self.backend.fetch(order, limit, worker, LEASE, self.now)
            expected: list[Model] = []
            for queue in order or ["default", "mail"]:
                expected += self.waiting(queue)
            expected = expected[:limit]
            assert [r.id for r in got] == [j.id for j in expected]
            for job in expected:
                job.state, job.holder, job.lease_until = "active", worker, self.now + LEASE
                job.attempts += 1
            for r in got:
                assert r.attempts == self.jobs[r.id].attempts

        @precondition(lambda self: any(j.state == "active" for j in self.jobs.values()))
        @rule(worker=st.sampled_from(["w1", "w2"]), data=st.data())
        def finish(self, worker: str, data: st.DataObject) -> None:
            held = self.held(worker)
            if not held:
                return
            job = data.draw(st.sampled_from(held))
            how = data.draw(st.sampled_from(["complete", "retry", "dead", "release"]))
            if how == "complete":
                self.backend.complete([(job.id, b"1")], worker, self.now)
                job.state = "completed"
            elif how == "release":
                self.backend.release([job.id], worker)
                job.state, job.attempts = "pending", job.attempts - 1
            else:
                retry_at = self.now + 3 if how == "retry" else None
                self.backend.fail([Failure(job.id, "boom", None, retry_at)], worker, self.now)
                job.state = "retry" if how == "retry" else "dead"
                if retry_at is not None:
                    job.run_at = retry_at
            job.holder = None

        @rule(seconds=st.sampled_from([1.0, 4.0, 11.0]), beat=st.sampled_from([None, "w1", "w2"]))
        def tick(self, seconds: float, beat: str | None) -> None:
            self.now += seconds
            if beat is not None:
                from conveyor.job import WorkerInfo

                self.backend.heartbeat(WorkerInfo(beat, "h", 1, (), 1, self.now), LEASE, self.now)
                for job in self.held(beat):
                    job.lease_until = self.now + LEASE
            recovered = self.backend.recover(self.now, 0.0)
            expired = [j for j in self.jobs.values() if j.state == "active" and j.lease_until < self.now]
            assert recovered == len(expired)
            for job in expired:
                if job.asked:
                    job.state = "cancelled"
                else:
                    job.state = "dead" if job.attempts >= job.max_attempts else "retry"
                job.run_at, job.holder = self.now, None
            for job in [j for j in self.jobs.values() if j.state == "completed"]:
                del self.jobs[job.id]  # done: the model stops following it

        @precondition(lambda self: bool(self.jobs))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            job = data.draw(st.sampled_from(sorted(self.jobs.values(), key=lambda j: j.id)))
            changed = self.app.backend.act("cancel", [job.id], self.now, note="cancelled by the model")
            can = job.state in ("pending", "scheduled", "retry")
            ask = job.state == "active" and not job.asked
            assert changed == int(can or ask)
            if can:
                job.state = "cancelled"
            if ask:
                job.asked = True

        @rule(worker=st.sampled_from(["w1", "w2"]))
        def cancel_requests(self, worker: str) -> None:
            asked = sorted(j.id for j in self.held(worker) if j.asked)
            got = self.backend.cancel_requests(worker, list(QUEUES))
            assert sorted(job_id for job_id, _ in got) == asked
            assert {note for _, note in got} <= {"cancelled by the model"}

        @invariant()
        def states_agree(self) -> None:
            for job in self.jobs.values():
                stored = self.backend.get(job.id)
                assert stored is not None
                assert visible_state(stored.state, stored.run_at, self.now) == visible_state(
                    job.state, job.run_at, self.now
                ), job
                assert stored.attempts == job.attempts

    return StoreMachine


@pytest.mark.slow
def test_store_matches_the_model(make_app: AppFactory) -> None:
    run_state_machine_as_test(
        machine(make_app),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
