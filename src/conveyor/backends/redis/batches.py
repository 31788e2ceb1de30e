"""Batches on Redis and Redis Cluster (``conveyor.batch``).

A batch's jobs live in their queues' slots; its counters cannot be moved by the script that
ends a job (on Cluster a script touches one slot). So every batch key lives in one slot of
its own, ``{ns:b}``, and a job's end reaches it in three idempotent steps:

1. The script that ends the job (complete, fail, recover, act, sweep) finds its batch in the
   queue's batch index ``{ns:q}:bj`` and adds the move ("seq|batch|from|to|n", n jobs) to
   the queue's outbox ``{ns:q}:bmoves`` under a new sequence number (``{ns:q}:bseq``), in the
   same script: nothing that ends a batch job can skip this. An acknowledgement writes one
   move per (batch, from, to) it met, not one per job. A queue without batch jobs pays one
   EXISTS per script call.
2. ``batch_read.lua`` reads the oldest moves of the outbox, in the queue's slot;
   ``batch_apply.lua`` takes them in, in the batch slot: only moves above the queue's mark
   (``{ns:b}:hw``, the highest sequence number taken in) count, so a repeated or late forward
   changes nothing. The same script decides the callbacks (the counter and the decision are
   one step) and marks each due one fired, adding it to ``{ns:b}:fire``.
3. ``batch_sent.lua`` removes the moves taken in from the outbox; the fired callbacks are
   enqueued in their queues under their fixed ids (enqueue.lua stores an existing id no
   twice) and only then leave ``{ns:b}:fire``.

Off Cluster, batch_apply.lua does all three steps itself, in the acknowledgement's own round
trip; on Cluster the worker's forwarder thread runs them (its acknowledgement says when a
batch job was among them). If it dies between steps, housekeeping (``recover``, run by every
worker) runs them again for every queue, so a crash delays a callback by a housekeeping
interval at most and never doubles it. On a single server the same scripts run, the same way.

Every batch shares the slot ``{ns:b}``: one master takes all batch bookkeeping, one call per
acknowledgement batch (not per job).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import OutOfMemoryError

from ...batch import CALLBACKS, BatchRecord
from ...errors import BatchClosed, StoreFull
from ...job import PENDING, JobRecord
from .wire import Call

log = logging.getLogger("conveyor")

if TYPE_CHECKING:
    from .keys import Keys
    from .store import EnqueuePlan
    from .wire import Wire

#: A queue's outboxes of batch moves, and the suffix of each one's mark in {ns:b}:hw: the
#: counted moves of this version, and the one-job moves of versions before it, which a
#: worker of such a version may still write during a rolling upgrade (batch_moved.inc.lua).
OUTBOXES = (("bmoves", "m"), ("bout", ""))
#: Jobs per chunk of a batch's enqueue, and per forward of one queue's outbox.
CHUNK = 1000
#: Fired callbacks housekeeping enqueues per call, at most.
FIRE_PAGE = 100
#: Seconds an intake (the jobs of one ``app.batch`` or ``add`` call) may take to store its
#: jobs; past it housekeeping takes its creator for dead and repairs the batch. Far longer than
#: storing a million jobs takes.
INTAKE_DEADLINE = 300.0
#: Intakes housekeeping repairs per call, and finished batches it deletes per call, at most.
REPAIR_PAGE = 10
PRUNE_PAGE = 1000
#: Seconds a queue is taken to hold batch jobs after an acknowledgement there ended one: its
#: acknowledgements carry the forward in their own round trip meanwhile.
BATCHED_FOR = 60.0


class Forwarder:
    """Cluster: forwards the batch jobs an acknowledgement ended, on a thread of its own, so
    the acknowledgement itself costs one round trip (the forward's three go to other nodes);
    the moves of many acknowledgements are forwarded together. What it has not forwarded when
    its process dies stays in the queues' outboxes, for housekeeping."""

    def __init__(self, store: RedisBatches) -> None:
        self.store = store
        self.queues: set[str] = set()
        self.busy = False
        self.cond = threading.Condition()
        self.pid = os.getpid()
        threading.Thread(target=self._run, name="conveyor-batch-forwarder", daemon=True).start()

    def add(self, queues: Iterable[str]) -> None:
        with self.cond:
            self.queues.update(queues)
            self.cond.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until what this process handed over is forwarded (read your own acks)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while (self.queues or self.busy) and time.monotonic() < deadline:
                self.cond.wait(0.05)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queues:
                    self.cond.wait()
                queues, self.queues, self.busy = sorted(self.queues), set(), True
            try:
                self.store.forward_batches(queues)
            except Exception:  # the outboxes keep them: housekeeping forwards them
                log.warning("batch forward failed; housekeeping will finish it", exc_info=True)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()


def _intake(batch_id: str, kind: str, records: Sequence[JobRecord]) -> str:
    """The intake member of a creation ("c") or an add ("a"): the batch, and the range and
    number of the ids of the jobs it stores."""
    if not records:
        return f"{batch_id}|{kind}|-|-|0"
    ids = [r.id for r in records]
    return f"{batch_id}|{kind}|{min(ids)}|{max(ids)}|{len(ids)}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBatches:
    """The batch calls of ``RedisBackend`` (``conveyor.batch.StoresBatches``)."""

    keys: Keys
    client: Any
    cluster: bool
    _wire: Wire
    #: Queues whose acknowledgements lately ended batch jobs, and when (monotonic).
    _batched: dict[str, float]
    #: Cluster: the thread that forwards this process's acknowledgements (Forwarder).
    _forwarding: Forwarder | None

    if TYPE_CHECKING:

        def _split(self, records: Iterable[JobRecord]) -> dict[str, list[JobRecord]]: ...
        def plan_enqueue(
            self,
            records: Sequence[JobRecord],
            max_queue_length: int | None,
            by_queue: dict[str, list[JobRecord]] | None = None,
        ) -> EnqueuePlan: ...
        def _stored(
            self, scripts: list[Call], reread: list[Call], by_queue: dict[str, list[JobRecord]]
        ) -> list[Any]: ...
        def enqueued(self, plan: EnqueuePlan, replies: list[Any], results: list[Any]) -> list[Any]: ...
        def _locate(self, ids: Sequence[str]) -> dict[str, list[str]]: ...
        def _read(self, pairs: Sequence[tuple[str, str]]) -> list[JobRecord]: ...
        def _all_queues(self) -> list[str]: ...

    # -- storing --------------------------------------------------------------------------
    def create_batch(
        self,
        batch: BatchRecord,
        records: Sequence[JobRecord],
        callbacks: Sequence[tuple[str, JobRecord]],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> None:
        member = _intake(batch.id, "c", records)
        args: list[Any] = [
            self.keys.batch_prefix(),
            repr(batch.created_at),
            batch.parent or "",
            member,
            repr(time.time() + INTAKE_DEADLINE),
        ]
        for kind, r in callbacks:
            timeout = "" if r.timeout is None else repr(float(r.timeout))
            args += [kind, r.id, r.queue, f"{int(r.priority)}|{int(r.max_attempts)}|{timeout}", r.payload]
        # Two round trips, not one pipeline: a call the server answers NOSCRIPT is run again
        # after the others, so a pipeline does not keep one script's call behind another's.
        (created,) = self._wire.run(
            [Call("batch_create", self.keys.batch_create(batch.id), args)], durable=True
        )
        if int(created) == 0:
            raise BatchClosed(f"batch {batch.parent} is not open: it cannot take a nested batch")
        self._fill(
            batch.id, member, records, creation=True, after=after, now=now, pruned_before=pruned_before
        )

    def add_to_batch(
        self,
        batch_id: str,
        records: Sequence[JobRecord],
        now: float,
        *,
        after: Mapping[str, tuple[str, ...]] | None = None,
        pruned_before: float = 0.0,
    ) -> bool:
        member = _intake(batch_id, "a", records)
        (grown,) = self._wire.run(
            [Call("batch_add", self.keys.batch_add(batch_id), [member, repr(time.time() + INTAKE_DEADLINE)])],
            durable=True,
        )
        if not int(grown):
            return False
        self._fill(
            batch_id, member, records, creation=False, after=after, now=now, pruned_before=pruned_before
        )
        return True

    def _ids_calls(self, batch_id: str, member: str, records: Sequence[JobRecord]) -> list[Call]:
        """The calls that list an intake's jobs and count them (batch_ids.lua), a chunk at a
        time, after the call that opened the intake, before any job is stored."""
        keys = self.keys.batch_ids(batch_id)
        return [
            Call("batch_ids", keys, [member, *(r.id + r.queue for r in records[start : start + CHUNK])])
            for start in range(0, len(records), CHUNK)
        ]

    def _fill(
        self,
        batch_id: str,
        member: str,
        records: Sequence[JobRecord],
        creation: bool,
        after: Mapping[str, tuple[str, ...]] | None = None,
        now: float = 0.0,
        pruned_before: float = 0.0,
    ) -> None:
        """Store an intake's jobs (listed and counted already), then seal it. If storing
        fails (a full store, a lost connection), the intake is repaired at once, as
        housekeeping would after its deadline: the jobs not stored leave the count (a
        creation that stored none leaves no batch), and the error is raised with a note
        saying what was kept. Jobs stored may have started already: they are not undone."""
        if self._partitions:  # type: ignore[attr-defined]
            # A partitioned queue's job is listed under the partition it is stored in.
            for r in records:
                r.queue = self._shard(r.queue)  # type: ignore[attr-defined]
        try:
            self._wire.run(self._ids_calls(batch_id, member, records), durable=True)
            if after:
                self._store_waiting_batch_jobs(batch_id, records, after, now, pruned_before)
            else:
                self._store_batch_jobs(batch_id, records, listed=True)
        except Exception as exc:
            try:
                kept = self._repair_intake(member)
            except Exception:
                log.warning(
                    "batch %s: repair after a failed store left to housekeeping", batch_id, exc_info=True
                )
                told = f"housekeeping repairs it within {INTAKE_DEADLINE:.0f} s"
            else:
                told = f"{kept} of the {len(records)} jobs of this call were stored" + (
                    "; the batch counts those, and its callbacks fire once they end"
                    if kept or not creation
                    else "; no batch was kept"
                )
            if isinstance(exc, OutOfMemoryError) or str(exc).startswith("OOM "):
                raise StoreFull(
                    f"Redis is out of memory ({exc}) while storing the jobs of batch {batch_id}: "
                    f"{told}. Let the workers drain (completions free memory), lower result_ttl, "
                    "or raise maxmemory"
                ) from exc
            exc.add_note(f"batch {batch_id}: {told}")
            raise
        self._seal(batch_id, member, repaired=False)

    def _seal(self, batch_id: str, member: str, repaired: bool) -> bool:
        """Seal an intake (batch_seal.lua) and enqueue the callbacks that fired; whether the
        batch was deleted (a repaired creation that stored no job)."""
        (fired,) = self._wire.run(
            [
                Call(
                    "batch_seal",
                    self.keys.batch_seal(batch_id),
                    [self.keys.batch_prefix(), batch_id, member, repr(time.time()), "1" if repaired else "0"],
                )
            ],
            durable=True,
        )
        entries = [_text(f) for f in fired or []]
        dropped = "dropped" in entries
        entries = [e for e in entries if e != "dropped"]
        if entries:
            self.fire_callbacks(entries)
        return dropped

    def _repair_intake(self, member: str) -> int:
        """An intake whose creator died (its deadline passed) or whose store failed: each
        job it listed is looked for in its queue; those never stored leave the batch's list
        and count (batch_fix.lua), then the intake is sealed. The ids of one intake are a
        range (they are made in one call, time-ordered); another intake's ids in that range
        were made at the same moment, so past the deadline they are stored or repaired too.
        Returns how many of its jobs were stored."""
        batch_id, kind, first, last, _count = member.split("|")
        ids_key = self.keys.batch_prefix() + "ids:" + batch_id
        start, stop = b"[" + first.encode(), b"[" + last.encode() + b"\xff"
        kept = 0
        while True:
            members = [_text(m) for m in self.client.zrangebylex(ids_key, start, stop, start=0, num=CHUNK)]
            if not members:
                break
            found = self._wire.run(
                [Call(None, "EXISTS", self.keys.prefix(m[36:]) + "j:" + m[:36]) for m in members]
            )
            missing = [m for m, there in zip(members, found, strict=True) if not int(there)]
            kept += len(members) - len(missing)
            if missing:
                by_queue: dict[str, list[str]] = {}
                for m in missing:
                    by_queue.setdefault(m[36:], []).append(m[:36])
                self._wire.run(
                    [
                        Call("batch_fix", self.keys.batch_fix(batch_id), missing),
                        *(
                            Call(None, "HDEL", self.keys.prefix(q) + "bj", *ids)
                            for q, ids in by_queue.items()
                        ),
                    ],
                    durable=True,
                )
            if len(members) < CHUNK:
                break
            start = b"(" + members[-1].encode()
        dropped = self._seal(batch_id, member, repaired=kind == "c")
        log.warning(
            "batch %s: an intake cut short was repaired: %d of its jobs were stored%s",
            batch_id,
            kept,
            " (no batch kept)" if dropped else "",
        )
        return kept

    def _store_waiting_batch_jobs(
        self,
        batch_id: str,
        records: Sequence[JobRecord],
        after: Mapping[str, tuple[str, ...]],
        now: float,
        pruned_before: float,
    ) -> None:
        """A batch some of whose jobs wait for others (the rare path): every job marked in
        its queue's batch index first, then all stored as ``enqueue_after`` stores them
        (workflows.py); a job a dependency cancels counts as cancelled in the batch (the
        dependency scripts write the move to the outbox, as every end does)."""
        from . import workflows

        marks: list[Call] = []
        for queue, batch in self._split(records).items():  # partitions were chosen (_fill)
            marks.append(
                Call(
                    None,
                    "HSET",
                    self.keys.prefix(queue) + "bj",
                    *(x for r in batch for x in (r.id, batch_id)),
                )
            )
        self._wire.run(marks, durable=True)
        workflows.enqueue_after(self, records, dict(after), now, pruned_before, None)  # type: ignore[arg-type]
        self.forward_batches({r.queue for r in records})

    def _store_batch_jobs(self, batch_id: str, records: Sequence[JobRecord], listed: bool = False) -> None:
        """Mark each job in its queue's batch index, then store it (enqueue.lua), a chunk at a
        time, every chunk in one pipeline: each mark goes before its job (in order on its
        queue's node), so the script that ends the job always finds it. ``listed``: the jobs
        are in the batch's list already (batch_ids.lua); else they are listed here (a nested
        batch's callback, which its parent counted when it fired)."""
        ids_key = self.keys.batch_prefix() + "ids:" + batch_id
        calls: list[Call] = []
        plans: list[tuple[EnqueuePlan, int, int, int]] = []
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            by_queue = self._split(chunk)
            listing: list[Any] = []
            for queue, batch in by_queue.items():
                marks = [x for r in batch for x in (r.id, batch_id)]
                calls.append(Call(None, "HSET", self.keys.prefix(queue) + "bj", *marks))
                listing += [x for r in batch for x in (0, r.id + queue)]
            if not listed:
                calls.append(Call(None, "ZADD", ids_key, *listing))
            plan = self.plan_enqueue(chunk, None, by_queue)
            plans.append((plan, len(calls) + len(plan.first), len(plan.first), len(plan.scripts)))
            calls += plan.first + plan.scripts
        try:
            replies = self._wire.run(calls, durable=True)
        except BaseException:
            for plan, *_ in plans:
                plan.forget(self._registered)  # type: ignore[attr-defined]
            raise
        for plan, at, firsts, scripts in plans:
            self.enqueued(plan, replies[at - firsts : at], replies[at : at + scripts])

    # -- reading --------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> BatchRecord | None:
        if self._forwarding is not None:
            self._forwarding.flush()
        raw = self.client.hgetall(self.keys.batch_prefix() + "h:" + batch_id)
        if not raw:
            return None
        fields = {
            _text(k): v
            for k, v in (raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True))
        }
        callbacks: dict[str, tuple[str, float | None]] = {}
        for kind in CALLBACKS:
            job_id = fields.get("cb:" + kind)
            if job_id is not None:
                fired = fields.get("cf:" + kind)
                callbacks[kind] = (_text(job_id), None if fired is None else float(fired))
        parent = _text(fields.get("pa", b""))
        return BatchRecord(
            batch_id,
            int(fields["t"]),
            int(fields.get("c", 0)),
            int(fields.get("d", 0)),
            int(fields.get("x", 0)),
            float(fields.get("ca", 0.0)),
            parent or None,
            callbacks,
        )

    def batch_jobs(self, batch_id: str, after: str | None, limit: int) -> list[JobRecord]:
        # Members are "<id><queue>" and ids are 36 characters: "(<id>\xff" starts right after
        # every member of that id. Jobs pruned since are skipped (the page reads on for them).
        key = self.keys.batch_prefix() + "ids:" + batch_id
        start = b"-" if after is None else b"(" + after.encode() + b"\xff"
        found: list[JobRecord] = []
        while len(found) < limit:
            members = self.client.zrangebylex(key, start, b"+", start=0, num=limit - len(found))
            if not members:
                break
            pairs = [(_text(m)[:36], _text(m)[36:]) for m in members]
            for record in self._read(pairs):
                record.batch_id = batch_id
                found.append(record)
            start = b"(" + members[-1]
            if len(members) < limit:
                break
        found.sort(key=lambda r: r.id)
        return found

    def batch_of(self, queue: str, job_id: str) -> str | None:
        """The batch of a job of ``queue`` (its stored queue), or None."""
        value = self.client.hget(self.keys.prefix(queue) + "bj", job_id)
        return None if value is None else _text(value)

    # -- forwarding (steps 2 and 3 of the module's docstring) -----------------------------
    def batch_calls(self, queues: Iterable[str]) -> tuple[list[Call], list[str]]:
        """Off Cluster, for an acknowledgement's pipeline: the forward of the queues among
        ``queues`` that held batch jobs lately (one batch_apply.lua in "q" mode, run right
        after the acknowledgement, in its round trip), and those queues. Nothing for queues
        that did not (a queue learns it does from an acknowledgement's reply), nor on Cluster
        (the forwarder thread's: ``Forwarder``)."""
        batched = self._batched
        if not batched:
            return [], []
        now = time.monotonic()
        known = [q for q in queues if now - batched.get(q, -1e9) < BATCHED_FOR]
        if not known:
            return [], []
        if self.cluster:  # the forwarder's (Forwarder)
            return [], []
        args = [self.keys.batch_prefix(), repr(time.time()), "q", *(self.keys.prefix(q) for q in known)]
        return [Call("batch_apply", self.keys.batch_apply(), args)], known

    def batches_acknowledged(
        self, located: Iterable[str], replies: Sequence[Any], rode: Sequence[str], forwarded: Sequence[Any]
    ) -> None:
        """After complete.lua or fail.lua and the calls ``batch_calls`` put beside them
        (``forwarded``: their replies): a reply of the first that is a list says jobs of a
        batch ended in that queue; those not forwarded in the same round trip are forwarded
        now, or on Cluster handed to the forwarder thread."""
        if forwarded:
            fired = forwarded[-1]
            if fired:
                self.fire_callbacks([_text(f) for f in fired])
        # A list reply's second value is the batch moves (the rest: dependents, workflows.py).
        moved = [
            queue
            for queue, reply in zip(located, replies, strict=False)
            if type(reply) is list and int(reply[1]) > 0
        ]
        if not moved:
            return
        now = time.monotonic()
        for queue in moved:
            self._batched[queue] = now
        late = [q for q in moved if q not in rode]
        if late and self.cluster:
            self._forwarder().add(late)
        elif late:
            self.forward_batches(late)

    def settle_batches(self) -> bool:
        """Wait until the batch moves this process's acknowledgements handed to the
        forwarder thread (Cluster) are taken in and their callbacks enqueued; whether there
        is such a thread (``conveyor.testing.drain`` then looks for jobs once more)."""
        if self._forwarding is None or self._forwarding.pid != os.getpid():
            return False
        self._forwarding.flush()
        return True

    def _forwarder(self) -> Forwarder:
        forwarder = self._forwarding
        if forwarder is None or forwarder.pid != os.getpid():  # a forked child starts its own
            forwarder = self._forwarding = Forwarder(self)
        return forwarder

    def forward_batches(self, queues: Iterable[str]) -> None:
        """Take the outboxed batch jobs of ``queues`` (stored queue names) into their
        batches, and enqueue the callbacks that fired."""
        pending = list(dict.fromkeys(queues))
        prefix = self.keys.batch_prefix()
        if not self.cluster:  # one script does it all, a queue's outbox 1,000 jobs at a time
            for _ in range(10_000):
                if not pending:
                    return
                queues = [prefix, repr(time.time()), "q", *(self.keys.prefix(q) for q in pending)]
                fired, *left = self._wire.run(
                    [
                        Call("batch_apply", self.keys.batch_apply(), queues),
                        *(
                            Call(None, "ZCARD", self.keys.prefix(q) + outbox)
                            for q in pending
                            for outbox, _ in OUTBOXES
                        ),
                    ]
                )
                if fired:
                    self.fire_callbacks([_text(f) for f in fired])
                counts = iter(left)
                pending = [q for q in pending if sum(int(next(counts)) for _ in OUTBOXES)]
            return
        while pending:
            boxes = [(q, outbox, mark) for q in pending for outbox, mark in OUTBOXES]
            reads = self._wire.run(
                [Call("batch_read", self.keys.batch_read(q, outbox), [CHUNK]) for q, outbox, _ in boxes]
            )
            args: list[Any] = [prefix, repr(time.time()), "e"]
            sent: list[Call] = []
            again: list[str] = []
            for (queue, outbox, mark), flat in zip(boxes, reads, strict=True):
                if not flat:
                    continue
                args += [self.keys.prefix(queue) + mark, len(flat) // 2, *flat]
                sent.append(Call("batch_sent", self.keys.batch_sent(queue, outbox), [_text(flat[-1])]))
                if len(flat) >= 2 * CHUNK and queue not in again:
                    again.append(queue)
            if not sent:
                return
            (fired,) = self._wire.run([Call("batch_apply", self.keys.batch_apply(), args)])
            if fired:
                self.fire_callbacks([_text(f) for f in fired])
            self._wire.run(sent)
            pending = again

    def fire_callbacks(self, entries: Sequence[str] | None = None) -> None:
        """Enqueue fired callbacks ("batch|kind" entries of ``{ns:b}:fire``; None: whatever
        it holds, for housekeeping), each under its fixed id, then drop their entries."""
        fire = self.keys.batch_prefix() + "fire"
        if entries is None:
            entries = [_text(e) for e in self.client.srandmember(fire, FIRE_PAGE) or []]
        if not entries:
            return
        prefix = self.keys.batch_prefix()
        reads = self._wire.run(
            [
                Call(
                    None,
                    "HMGET",
                    prefix + "h:" + batch,
                    f"cb:{kind}",
                    f"cq:{kind}",
                    f"cm:{kind}",
                    f"cp:{kind}",
                    "pa",
                )
                for batch, _, kind in (entry.partition("|") for entry in entries)
            ]
        )
        for entry, (job_id, queue, meta, payload, parent) in zip(entries, reads, strict=True):
            if job_id is not None and queue is not None and meta is not None and payload is not None:
                priority, max_attempts, timeout = _text(meta).split("|")
                now = time.time()
                record = JobRecord(
                    _text(job_id),
                    _text(queue),
                    payload,
                    int(priority),
                    PENDING,
                    now,
                    0,
                    int(max_attempts),
                    float(timeout) if timeout else None,
                    now,
                )
                owner = _text(parent) if parent else ""
                if owner:  # a nested batch's callback is a job of its parent
                    record.batch_id = owner
                    self._store_batch_jobs(owner, [record])
                else:
                    self._store_batch_jobs_plain([record])
            self._wire.run([Call(None, "SREM", fire, entry)])

    def _store_batch_jobs_plain(self, records: Sequence[JobRecord]) -> None:
        """Store jobs by enqueue.lua (which stores an id that exists no twice)."""
        by_queue = self._split(records)
        plan = self.plan_enqueue(records, None, by_queue)
        replies = self._wire.run(plan.first, durable=True) if plan.first else []
        self.enqueued(plan, replies, self._stored(plan.scripts, [], plan.by_queue))

    def housekeep_batches(self, queues: Sequence[str], now: float, finished_before: float) -> None:
        """What a crash left between the steps: the outboxes of ``queues`` (recover passes
        those it found with moves), then the fire set;
        intakes past their deadline (their creator died) repaired, a few per call; then
        batches that finished before ``finished_before`` deleted, a page per call."""
        self.forward_batches(queues)
        self.fire_callbacks()
        prefix = self.keys.batch_prefix()
        for member in self.client.zrangebyscore(
            prefix + "intake", "-inf", repr(now), start=0, num=REPAIR_PAGE
        ):
            self._repair_intake(_text(member))
        self._wire.run(
            [Call("batch_prune", self.keys.batch_prune(), [prefix, repr(finished_before), PRUNE_PAGE])]
        )
