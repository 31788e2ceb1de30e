"""Every key name of the Redis store, built here and nowhere else (as Asynq's ``base.go``).

Layout (``ns`` is the app's namespace, ``q`` a queue name, ``p`` a priority)::

    {ns}:queues           SET    every queue ever used: fetch(None), stats, recover, heartbeat
    {ns}:where            HASH   job id -> queue, for get() and admin actions by id; jobs of
                                 the queue "default" are not indexed (a lookup asks the index
                                 and the default queue at once), which spares the commonest
                                 enqueue a quarter of its server time
    {ns}:workers          HASH   worker id -> JSON of its last heartbeat
    {ns}:seen             ZSET   worker id by last heartbeat (expiry)
    {ns}:partitions       HASH   queue -> number of partitions (partitions.py); a queue
                                 "q" of n partitions is the queues q, q:1 … q:n-1
    {ns}:hints            HASH   Cluster: queue -> token of the last write that made one of
                                 its jobs wait; a fetch passes over the queues not in it
                                 (store.py, _fetch_slots). A hint, never state
    {ns}:hintv            STRING Cluster: a count raised after each write of {ns}:hints, so
                                 that a fetch reads them again only when they grew
    {ns:q}:j:<id>         HASH   one job: p payload, m "priority|max_attempts|timeout|
                                 created_at" (the settings no script changes, one field: a
                                 hash's fields are scanned one by one), s state, ra run_at,
                                 a attempts, sa started_at, fa finished_at, r result,
                                 e last_error, tb traceback, lb locked_by, lu lease_until,
                                 pg progress, cx why it was asked to stop
    {ns:q}:prios          ZSET   priorities that have waiting jobs (member = score = p)
    {ns:q}:w:<p>          ZSET   waiting jobs (scheduled, pending, retry) of priority p by
                                 run_at; members of equal score sort by id, so a fetch reads
                                 priority DESC, run_at, id exactly as the SQLite store does
    {ns:q}:sched          ZSET   ids stored as 'scheduled', by run_at (admin counts only)
    {ns:q}:retry          ZSET   ids stored as 'retry', by run_at (admin counts only)
    {ns:q}:held:<worker>  SET    ids one worker holds: its active jobs (the heartbeat extends
                                 exactly these; complete checks ownership here, not in the job)
    {ns:q}:leases         ZSET   worker id by the earliest lease (lu) of the jobs it holds;
                                 recover looks at a worker once that passes and checks each
                                 job's own lease. One entry per worker, not per job, spares
                                 every job run a sorted-set insert and removal (~10% of the
                                 server's time per job)
    {ns:q}:claim:<worker> LIST   token and ids of the worker's last fetch (idempotent retry)
    {ns:q}:done           ZSET   completed ids by finished_at (pruned by recover)
    {ns:q}:dead           ZSET   dead ids by finished_at
    {ns:q}:cancelled      ZSET   cancelled ids by finished_at
    {ns:q}:cancel         SET    running jobs asked to stop (app.cancel); their workers poll it
    {ns:q}:paused         STRING present while the queue is paused
    {ns:q}:hint           STRING Cluster: the token of the last write that made a job wait
                                 here, written after it (its {ns}:hints entry may come first)
    {ns:q}:wake           LIST   wake-up tokens for idle workers in BLPOP (a hint, never state)
    {ns:q}:counts         HASH   p:<minute> processed, f:<minute> failed (stats, history)
    {ns:q}:waited         SET    jobs someone waits for (job.result, job.aresult): the scripts
                                 that end a job read it once per call
    {ns:q}:ended:<id>     LIST   a token pushed when a waited-for job ends; its waiter blocks
                                 on it in BLPOP (expires after 5 minutes)
    {ns:q}:pruned         STRING set for a minute after recover pruned old counters
    {ns:q}:limits         HASH   limit name ('' for the queue) -> "concurrency|rate|per"
    {ns:q}:tokens         HASH   bucket (or queue) name -> "tokens|stamp" of its token bucket
    {ns:q}:ready          ZSET   the queue's buckets that may have a job to start, by due time
    {ns:q}:parked         ZSET   buckets out of tokens, by when their next token comes
    {ns:q}:buckets        SET    every bucket of the queue ever used (recover, admin)
    {ns:q}:b:<name>\x1f<key>:…   a bucket: every per-queue key above, for one limit and key
    {ns}:limited          SET    queues that have limits (a claim of them runs fetch_limited)
    {ns:q}:periodic       HASH   schedule name -> "last_at|next_at|job_id|enqueued_at" of the
                                 schedules whose jobs go to the queue: the tick marker lives
                                 in the job's slot, so one script decides and enqueues
    {ns:q}:expires        ZSET   ids of jobs enqueued with an expiry, by it (swept; an entry
                                 whose job no longer waits is dropped then, not on the hot path)
    {ns:q}:u:<key>        STRING the id of the job holding unique key <key>, for at most its
                                 unique_for (PX); a holder that no longer waits or runs holds
                                 nothing, so ending a job costs no write here

    {ns:q}:parents        SET    jobs of the queue some job waits for (workflows.py): the
                                 scripts that end a job check it once per call
    {ns:q}:deps_todo      ZSET   ended jobs whose dependents are still to be told, by when
    {ns:q}:dn:<id>        SET    the jobs waiting for job <id>, "queue,id" (any slot)
    {ns:q}:waiting        ZSET   jobs waiting for others, by enqueue time
    {ns:q}:wo:<id>        SET    the dependencies job <id> still waits for
    {ns:q}:got:<id>       SET    ends of its dependencies that came before job <id> was stored

A job hash may also hold: x expires_at, u its unique key, sn how many times it snoozed, af
the ids it waits for (space-separated).

Batches (``batches.py``)::

    {ns:q}:bj             HASH   job id -> batch id, for the queue's jobs that are in a batch
                                 (the scripts that end a job read it once per call)
    {ns:q}:bmoves         ZSET   moves "seq|batch|from|to|n" of the queue's batch jobs into or out
                                 of an end (n jobs each), not yet taken in by their batches, by seq
    {ns:q}:bout           ZSET   the same, one job a move ("seq|batch|from|to"), written by
                                 versions before counted moves; still read (rolling upgrades)
    {ns:q}:bseq           STRING that sequence
    {ns:b}:h:<batch>      HASH   one batch: counters, callbacks, open intakes (batch_create.lua)
    {ns:b}:hw             HASH   queue prefix (+ "m" for bmoves) -> the highest seq of that
                                 outbox taken in
    {ns:b}:ids:<batch>    ZSET   its jobs, members "<id><queue>" at score 0 (pages, by id)
    {ns:b}:fire           SET    "batch|kind" of callbacks fired but not yet enqueued
    {ns:b}:fin            ZSET   finished batches by when they finished (pruned result_ttl later)
    {ns:b}:intake         ZSET   "batch|c or a|first id|last id|count" of each creation or add
                                 whose jobs are being stored, by the deadline after which
                                 housekeeping repairs it (its creator is taken for dead)

Everything of one queue shares the hash tag ``{ns:q}``, hence one slot; the namespace-wide
keys share ``{ns}``. Scripts build a job's own keys (``j:<id>``, ``w:<p>``) from the queue's
prefix, which they get as ARGV[1]; every other key they touch is passed in KEYS, in the order
of the script's header comment, by the method of ``Keys`` named after the script
(``tests/redis/test_keys.py`` holds each header against its method).

The methods are plain string concatenation, called once per script call (per batch, or per
job for a job enqueued alone): a table of templates would cost more than the rest of a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ...limits import SEP

#: The queue whose jobs the id index (``{ns}:where``) leaves out.
DEFAULT: Final = "default"
#: Tokens pushed to a queue's wake list per enqueue, and the most it keeps: enough to wake
#: that many idle workers at once; leftovers only cause one spare fetch each.
WAKE_TOKENS: Final = 16


class Keys:
    """The key names of one namespace."""

    __slots__ = ("hints", "hintv", "limited", "ns", "partitions", "queues", "seen", "where", "workers")

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        g = f"{{{namespace}}}:"
        self.queues = g + "queues"
        self.where = g + "where"
        self.workers = g + "workers"
        self.seen = g + "seen"
        self.limited = g + "limited"
        self.partitions = g + "partitions"
        self.hints = g + "hints"
        self.hintv = g + "hintv"

    def prefix(self, queue: str) -> str:
        """``{ns:q}:``, the start of every key of ``queue`` (scripts get it as ARGV[1]); a
        bucket's (``q<SEP>name<SEP>key``, see conveyor.limits) is ``{ns:q}:b:name<SEP>key:``,
        in its queue's slot."""
        if SEP in queue:
            parent, rest = queue.split(SEP, 1)
            return f"{{{self.ns}:{parent}}}:b:{rest}:"
        return f"{{{self.ns}:{queue}}}:"

    def job(self, queue: str, job_id: str) -> str:
        return self.prefix(queue) + "j:" + job_id

    def parent(self, queue: str) -> str:
        """The prefix of the queue a bucket belongs to (a queue's own, for a queue)."""
        return self.prefix(queue.split(SEP, 1)[0])

    def limits(self, queue: str) -> str:
        return self.prefix(queue) + "limits"

    def buckets(self, queue: str) -> str:
        return self.prefix(queue) + "buckets"

    def ready(self, queue: str) -> str:
        return self.prefix(queue) + "ready"

    def paused(self, queue: str) -> str:
        return self.prefix(queue) + "paused"

    def wake(self, queues: list[str]) -> list[str]:
        """The wake lists an idle worker of ``queues`` blocks on."""
        return [self.prefix(q) + "wake" for q in queues]

    # -- each script's KEYS, in the order of its header ----------------------------------
    def enqueue(self, queue: str, cluster: bool) -> list[str]:
        p = self.prefix(queue)
        if SEP in queue:
            parent = self.parent(queue)
            keys = [p + "prios", p + "sched", p + "retry", parent + "wake"]
            if not cluster:
                keys += (self.where, self.queues)
            return [*keys, parent + "buckets", parent + "ready"]
        keys = [p + "prios", p + "sched", p + "retry", p + "wake"]
        if not cluster:  # one script may span slots only off Cluster
            keys += (self.where, self.queues)
        return keys

    def enqueue_one(self, queue: str, job_id: str, priority: int) -> tuple[str, ...]:
        p = self.prefix(queue)
        return (p + "j:" + job_id, f"{p}w:{priority}", p + "prios", p + "wake", self.where, p + "sched")

    def fetch(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        held, claim = p + "held:" + worker, p + "claim:" + worker
        return [p + "prios", p + "leases", p + "sched", p + "retry", p + "paused", held, claim]

    def fetch_limited(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        names = ("ready", "limits", "tokens", "paused", "claim:" + worker, "parked", "buckets")
        return [p + n for n in names]

    def due(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        return [p + "prios", p + "paused", p + "claim:" + worker, p + "hint"]

    def hint_drop(self) -> list[str]:
        return [self.hints]

    def hints_read(self) -> list[str]:
        return [self.hints, self.hintv, self.queues]

    def complete(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        return [p + "done", p + "counts", p + "held:" + worker, p + "waited", p + "parents", p + "deps_todo"]

    def fail(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        names = (
            "dead",
            "retry",
            "prios",
            "counts",
            "held:" + worker,
            "cancelled",
            "cancel",
            "sched",
            "waited",
            "parents",
            "deps_todo",
        )
        return [p + n for n in names]

    def release(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        return [p + "prios", p + "held:" + worker, p + "wake"]

    def extend(self, queue: str, worker: str) -> list[str]:
        p = self.prefix(queue)
        return [p + "held:" + worker, p + "leases"]

    def recover(self, queue: str) -> list[str]:
        p = self.prefix(queue)
        names = ("leases", "dead", "retry", "prios", "done", "counts", "pruned", "sched")
        return [p + n for n in (*names, "cancelled", "cancel", "waited", "parents", "deps_todo")]

    def act(self, queue: str) -> list[str]:
        p = self.prefix(queue)
        names = ("prios", "sched", "retry", "leases", "done", "dead", "cancelled", "wake", "cancel", "waited")
        return [p + n for n in (*names, "parents", "deps_todo", "waiting")]

    def watch(self, queue: str) -> list[str]:
        return [self.prefix(queue) + "waited"]

    def ended(self, queue: str, job_id: str) -> str:
        """The list a job's end pushes a token to, while someone waits for it."""
        return f"{self.prefix(queue)}ended:{job_id}"

    def enqueue_each(self, queue: str, cluster: bool) -> list[str]:
        p = self.prefix(queue)
        keys = [p + "prios", p + "sched", p + "wake", p + "expires"]
        if not cluster:
            keys += (self.where, self.queues)
        return keys

    def change(self, queue: str, cluster: bool) -> list[str]:
        p = self.prefix(queue)
        keys = [p + "prios", p + "sched", p + "retry", p + "wake", p + "expires"]
        if not cluster:  # a move to another queue: a single server only
            keys += (self.where, self.queues)
        return keys

    def sweep(self, queue: str) -> list[str]:
        p = self.prefix(queue)
        return [
            p + n
            for n in (
                "expires",
                "prios",
                "sched",
                "retry",
                "dead",
                "cancelled",
                "parents",
                "deps_todo",
                "waiting",
            )
        ]

    def progress(self, queue: str, job_id: str) -> list[str]:
        return [self.job(queue, job_id)]

    def cancels(self, queue: str) -> list[str]:
        return [self.prefix(queue) + "cancel"]

    def ids(self, queue: str) -> list[str]:
        p = self.prefix(queue)
        return [p + n for n in ("prios", "sched", "retry", "leases", "done", "dead", "cancelled", "waiting")]

    def stats(self, queue: str) -> list[str]:
        p = self.prefix(queue)
        names = (
            "prios",
            "sched",
            "retry",
            "leases",
            "done",
            "dead",
            "cancelled",
            "paused",
            "counts",
            "waiting",
        )
        return [p + n for n in names]

    # -- dependencies (workflows.py) --------------------------------------------------------
    def deps_link(self, queue: str, job_id: str) -> list[str]:
        p = self.prefix(queue)
        return [p + "parents", p + "dn:" + job_id]

    def deps_add(self, queue: str, job_id: str) -> list[str]:
        p = self.prefix(queue)
        names = ("waiting", "cancelled", "wo:" + job_id, "got:" + job_id, "prios", "sched", "wake")
        return [p + n for n in (*names, "parents", "deps_todo", "expires")]

    def deps_release(self, queue: str, job_id: str) -> list[str]:
        p = self.prefix(queue)
        return [p + n for n in ("waiting", "wo:" + job_id, "got:" + job_id, "prios", "sched", "wake")]

    def deps_cancel(self, queue: str, job_id: str) -> list[str]:
        p = self.prefix(queue)
        names = ("waiting", "cancelled", "wo:" + job_id, "got:" + job_id, "waited", "parents", "deps_todo")
        return [p + n for n in names]

    def deps_done(self, queue: str, job_ids: Sequence[str]) -> list[str]:
        p = self.prefix(queue)
        return [p + "deps_todo", *(p + "dn:" + job_id for job_id in job_ids)]

    def deps_todo(self, queue: str) -> str:
        return self.prefix(queue) + "deps_todo"

    def dependents(self, queue: str, job_id: str) -> str:
        return self.prefix(queue) + "dn:" + job_id

    def ticks(self, queue: str, cluster: bool) -> list[str]:
        p = self.prefix(queue)
        keys = [p + "periodic", p + "prios", p + "wake"]
        if not cluster:  # one script may span slots only off Cluster
            keys += (self.where, self.queues)
        return keys

    def unschedule(self, queue: str) -> list[str]:
        return [self.prefix(queue) + "periodic"]

    def periodic(self, queue: str) -> str:
        return self.prefix(queue) + "periodic"

    def beat(self) -> list[str]:
        return [self.workers, self.seen]

    def partition(self) -> list[str]:
        return [self.partitions]

    def forget(self) -> list[str]:
        return [self.workers, self.seen]

    # -- batches (batches.py): every batch's keys in one slot, {ns:b} ------------------------
    def batch_prefix(self) -> str:
        return f"{{{self.ns}:b}}:"

    def batch_create(self, job_id: str) -> list[str]:
        """``job_id``: the batch's id (so for every batch_* method that takes one)."""
        b = self.batch_prefix()
        return [b + "h:" + job_id, b + "intake"]

    def batch_add(self, job_id: str) -> list[str]:
        b = self.batch_prefix()
        return [b + "h:" + job_id, b + "intake"]

    def batch_ids(self, job_id: str) -> list[str]:
        b = self.batch_prefix()
        return [b + "h:" + job_id, b + "ids:" + job_id, b + "intake"]

    def batch_fix(self, job_id: str) -> list[str]:
        b = self.batch_prefix()
        return [b + "h:" + job_id, b + "ids:" + job_id]

    def batch_seal(self, job_id: str) -> list[str]:
        b = self.batch_prefix()
        return [b + "h:" + job_id, b + "intake", b + "fire", b + "fin", b + "ids:" + job_id]

    def batch_prune(self) -> list[str]:
        return [self.batch_prefix() + "fin", self.batch_prefix() + "fire"]

    def batch_apply(self) -> list[str]:
        return [self.batch_prefix() + "fire", self.batch_prefix() + "hw", self.batch_prefix() + "fin"]

    def batch_read(self, queue: str, outbox: str) -> list[str]:
        return [self.prefix(queue) + outbox]

    def batch_sent(self, queue: str, outbox: str) -> list[str]:
        return [self.prefix(queue) + outbox]
