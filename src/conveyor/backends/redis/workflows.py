"""Dependencies on Redis and Redis Cluster (``using(after=...)``, ``app.chain``).

A job and the jobs it waits for may live in different queues, hence (on a Cluster) in
different hash slots, which no one script may touch together. So each decision is made in
one slot, by a script, and the steps between slots are idempotent:

1. Enqueue. ``deps_link.lua`` runs in each dependency's slot: if the dependency ended, it
   says how (completed counts as done, dead or cancelled cancels the dependent); otherwise it
   records the dependent in the dependency's ``dn:<id>`` set and marks the dependency in its
   queue's ``parents`` set, atomically with any end of that job in the same slot. Then
   ``deps_add.lua`` stores the dependent in its own slot: ``waiting`` on the dependencies
   still to complete (``wo:<id>``), or ready, or cancelled.
2. End. Every script that ends a job (complete, fail, act, recover, sweep) checks its
   queue's ``parents`` set once per call (an EXISTS; nothing more for queues without
   dependencies) and moves an ended parent into the queue's ``deps_todo`` set, in the same
   script as the end itself.
3. Telling the dependents (``advance``): the worker that ended the parent, right after its
   call, reads the parent's state and ``dn:<id>``, and runs ``deps_release.lua`` (completed)
   or ``deps_cancel.lua`` (dead, cancelled, deleted) in each dependent's slot, then
   ``deps_done.lua`` in the parent's. A release removes the parent from the dependent's
   ``wo`` set: the dependent becomes ready when that set empties, once, however many workers
   (or housekeeping runs) tell it. A cancelled dependent that has dependents of its own joins
   its queue's ``deps_todo``: the next level is the next step (bounded work per call).
   Should the worker die between 2 and 3, housekeeping (``recover``) finds the parent in
   ``deps_todo`` and does step 3.

A dependency that ends between steps 1a and 1b finds no dependent yet: its release or
cancellation is kept in the dependent's ``got:<id>`` set (a day), which ``deps_add.lua``
reads. A process that dies between 1a and 1b leaves edges to a job that never existed: they
release nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import UnknownDependency
from ...job import CANCELLED, COMPLETED, DEAD, JobRecord, dependency_note, id_time
from ...limits import SEP
from .keys import DEFAULT
from .records import meta_field
from .wire import Call

if TYPE_CHECKING:
    from .store import RedisBackend

#: Ended parents whose dependents one step tells, per queue.
STEP = 100
#: Steps one call takes at most (each one level of a cascade); housekeeping does the rest.
ROUNDS = 50
#: Seconds an ended job's list of dependents is kept (for the dashboard and ``dependents``).
KEEP_DEPENDENTS = 7 * 86400
#: Ended jobs one deps_done call takes at most (a script holds the server while it runs).
DONE_SLICE = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _missing(job_id: str, dep: str, pruned_before: float) -> None:
    """A dependency the store does not hold: pruned after it completed if it is older than
    ``pruned_before``, else ``UnknownDependency``."""
    made = id_time(dep)
    if made is None or made >= pruned_before:
        raise UnknownDependency(job_id, dep)


def _meta(r: JobRecord) -> str:
    timeout = "" if r.timeout is None else repr(float(r.timeout))
    return meta_field(r.priority, r.max_attempts, timeout, repr(float(r.created_at)))


def _add(
    store: RedisBackend,
    r: JobRecord,
    queue: str,
    deps: Sequence[str],
    note: str,
    waiting: list[str],
    now: float,
) -> Call:
    keys = store.keys
    args = [keys.prefix(queue), r.id, r.payload, _meta(r), repr(float(r.run_at)), " ".join(deps), now, note]
    expires = "" if r.expires_at is None else repr(float(r.expires_at))
    return Call("deps_add", keys.deps_add(queue, r.id), [*args, expires, *_bucket(store, queue), *waiting])


def _bucket(store: RedisBackend, queue: str) -> tuple[str, str]:
    """For a job of a limit's bucket: its queue's prefix and the bucket's name, with which
    a release offers the bucket to its queue's claims (deps_release.lua); else empty."""
    return (store.keys.parent(queue), queue) if SEP in queue else ("", "")


def _decide(
    r: JobRecord, deps: Sequence[str], states: dict[str, str], pruned_before: float
) -> tuple[str, list[str]]:
    """(note, dependencies to wait for) of a dependent, from its dependencies' states:
    'wait', completed, dead, cancelled, or missing (absent from ``states``)."""
    waiting: list[str] = []
    note = ""
    for d in deps:
        state = states.get(d, "missing")
        if state == "missing":
            _missing(r.id, d, pruned_before)
        elif state in (DEAD, CANCELLED):
            note = note or dependency_note(d, state)
        elif state == "wait":
            waiting.append(d)
    return note, waiting


def enqueue_after(
    store: RedisBackend,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
    max_queue_length: int | None,
) -> None:
    if any(r.queue in store._partitions for r in records):
        _one_by_one(store, records, after, now, pruned_before, max_queue_length)
    else:
        _pipelined(store, records, after, now, pruned_before, max_queue_length)


def _pipelined(
    store: RedisBackend,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
    max_queue_length: int | None,
) -> None:
    """Queues of one shard each: every job's slot is known before it is stored, so an edge
    between two jobs of the call is written in the parent's slot before the parent itself
    (the parent cannot end before it exists, hence never untold), and the whole call is three
    round-trips: where the outside dependencies are, their links, and everything else."""
    keys = store.keys
    ours = {r.id for r in records}
    children: dict[str, list[JobRecord]] = {}
    for r in records:
        for d in after.get(r.id, ()):
            if d in ours:
                children.setdefault(d, []).append(r)
    outside = list(dict.fromkeys(d for r in records for d in after.get(r.id, ()) if d not in ours))
    where: dict[str, str] = {}
    if outside:
        for q, ids in store._locate(outside).items():
            where.update(dict.fromkeys(ids, q))
        for r in records:  # before anything is written
            for d in after.get(r.id, ()):
                if d not in ours and d not in where:
                    _missing(r.id, d, pruned_before)
    edges = [(d, r) for r in records for d in after.get(r.id, ()) if d in where]
    replies = store._wire.run(
        [
            Call("deps_link", keys.deps_link(where[d], d), [keys.prefix(where[d]), d, f"{r.queue},{r.id}"])
            for d, r in edges
        ]
    )
    linked = {(d, r.id): _text(reply) for (d, r), reply in zip(edges, replies, strict=True)}
    first = [r for r in records if r.id not in after and r.id not in children]
    rest = [r for r in records if r.id in after or r.id in children]
    calls: list[Call] = []
    fresh = store._unregistered(dict.fromkeys(r.queue for r in rest))
    if fresh:
        calls.append(Call(None, "SADD", keys.queues, *fresh))
    index = [x for r in rest if r.queue != DEFAULT for x in (r.id, r.queue)]
    if index:
        calls.append(Call(None, "HSET", keys.where, *index))
    failed: set[str] = set()
    for r in rest:
        kids = children.get(r.id)
        if kids:
            calls.append(
                Call(None, "SADD", keys.dependents(r.queue, r.id), *(f"{k.queue},{k.id}" for k in kids))
            )
            calls.append(Call(None, "SADD", keys.prefix(r.queue) + "parents", r.id))
        deps = after.get(r.id)
        if deps is None:
            calls += store._enqueue_calls({r.queue: [r]}, [], None)
            continue
        states = {d: linked.get((d, r.id), "missing") for d in deps if d not in ours}
        states.update({d: CANCELLED if d in failed else "wait" for d in deps if d in ours})
        note, waiting = _decide(r, deps, states, pruned_before)
        if note:
            failed.add(r.id)
        calls.append(_add(store, r, r.queue, deps, note, waiting, now))
    if first:
        store.enqueue(first, max_queue_length)
    results = store._wire.run(calls, durable=True)
    # A job cancelled by deps_add whose dependents of this call already wait for it.
    cancelled = [
        call.args[1][0]
        for call, result in zip(calls, results, strict=True)
        if call.script == "deps_add" and _text(result) == CANCELLED
    ]
    if cancelled:
        advance(store, {r.queue for r in rest}, now)
        store.forward_batches({r.queue for r in rest if r.batch_id is not None})


def _one_by_one(
    store: RedisBackend,
    records: Sequence[JobRecord],
    after: dict[str, tuple[str, ...]],
    now: float,
    pruned_before: float,
    max_queue_length: int | None,
) -> None:
    """Partitioned queues (a job's shard is chosen as it is stored): each dependent is linked
    and stored in turn, its dependencies of this call stored before it."""
    keys = store.keys
    stored_in: dict[str, str] = {}  # id -> queue (partition) of the jobs of this call
    plain: list[JobRecord] = []

    def flush() -> None:
        if plain:
            store.enqueue(plain, max_queue_length)
            for q, ids in store._locate([r.id for r in plain]).items():
                stored_in.update(dict.fromkeys(ids, q))
            plain.clear()

    for r in records:
        deps = after.get(r.id)
        if deps is None:
            plain.append(r)
            continue
        flush()  # a dependency of this call is stored before its dependents
        queue = store._shard(r.queue)
        where = {d: stored_in[d] for d in deps if d in stored_in}
        unknown = [d for d in deps if d not in where]
        if unknown:
            for q, ids in store._locate(unknown).items():
                where.update(dict.fromkeys(ids, q))
        for d in deps:
            if d not in where:
                _missing(r.id, d, pruned_before)
        linked = [d for d in deps if d in where]
        child = f"{queue},{r.id}"
        replies = store._wire.run(
            [
                Call("deps_link", keys.deps_link(where[d], d), [keys.prefix(where[d]), d, child])
                for d in linked
            ]
        )
        states = {d: _text(reply) for d, reply in zip(linked, replies, strict=True)}
        note, waiting = _decide(r, deps, states, pruned_before)
        calls: list[Call] = []
        fresh = store._unregistered([queue])
        if fresh:
            calls.append(Call(None, "SADD", keys.queues, *fresh))
        if queue != DEFAULT:
            calls.append(Call(None, "HSET", keys.where, r.id, queue))
        calls.append(_add(store, r, queue, deps, note, waiting, now))
        result = store._wire.run(calls, durable=True)[-1]
        stored_in[r.id] = queue
        if _text(result) == CANCELLED:
            advance(store, [queue], now)
    flush()


def told(queue: str, reply: list[Any]) -> list[tuple[str, str, str, list[Any]]]:
    """The ended parents a complete.lua or fail.lua reply lists: (queue, id, state,
    dependents)."""
    found: list[tuple[str, str, str, list[Any]]] = []
    i = 2  # after the count and another reply's slot
    while i < len(reply):
        count = int(reply[i + 2])
        found.append((queue, _text(reply[i]), _text(reply[i + 1]), list(reply[i + 3 : i + 3 + count])))
        i += 3 + count
    return found


def advance(
    store: RedisBackend,
    queues: Iterable[str],
    now: float,
    known: Sequence[tuple[str, str, str, list[Any]]] = (),
) -> int:
    """Tell the dependents of the ended jobs in ``queues``' to-do sets (step 3 of the module
    docstring), level by level, at most ``ROUNDS`` levels; returns how many were released or
    cancelled. ``known``: ended parents whose state and dependents the caller has (the reply
    of the script that ended them), told without reading them again. One read per queue when
    there is nothing to do."""
    keys = store.keys
    todo = list(dict.fromkeys(queues))
    changed = 0
    for n_round in range(ROUNDS):
        if n_round == 0 and known:
            parents = [(q, pid, state or None, members) for q, pid, state, members in known]
            full: set[str] = set()
        else:
            if not todo:
                break
            found = store._wire.run([Call(None, "ZRANGE", keys.deps_todo(q), 0, STEP - 1) for q in todo])
            ids = [(q, _text(pid)) for q, got in zip(todo, found, strict=True) for pid in got]
            if not ids:
                break
            full = {q for q, got in zip(todo, found, strict=True) if len(got) >= STEP}
            reads: list[Call] = []
            for q, pid in ids:
                reads += (
                    Call(None, "HGET", keys.job(q, pid), "s"),
                    Call(None, "SMEMBERS", keys.dependents(q, pid)),
                )
            read = store._wire.run(reads)
            parents = [
                (q, pid, None if read[2 * n] is None else _text(read[2 * n]), list(read[2 * n + 1]))
                for n, (q, pid) in enumerate(ids)
            ]
        steps: list[Call] = []
        targets: list[str] = []  # the queue of each step's dependent
        # A dependent's completed parents are told in one call: a job waiting for a thousand
        # others that one acknowledgement completed was a thousand script calls.
        completed: dict[tuple[str, str], list[str]] = {}
        for _, pid, state, members in parents:
            if state == COMPLETED:
                for member in members:
                    cq, _, cid = _text(member).partition(",")
                    completed.setdefault((cq, cid), []).append(pid)
                continue
            note = dependency_note(
                pid, state if state in (DEAD, CANCELLED) else "deleted" if state is None else DEAD
            )
            for member in members:
                cq, _, cid = _text(member).partition(",")
                targets.append(cq)
                steps.append(
                    Call("deps_cancel", keys.deps_cancel(cq, cid), [keys.prefix(cq), cid, note, now])
                )
        for (cq, cid), pids in completed.items():
            targets.append(cq)
            steps.append(
                Call(
                    "deps_release",
                    keys.deps_release(cq, cid),
                    [keys.prefix(cq), cid, " ".join(pids), now, *_bucket(store, cq)],
                )
            )
        results = store._wire.run(steps) if steps else []
        changed += sum(1 for result in results if result)
        # A cancelled dependent of a batch moved its batch's counters (deps_cancel.lua's
        # outbox entry): taken in now, as after any end (rare: cancellations only).
        moved = {
            q
            for q, call, result in zip(targets, steps, results, strict=True)
            if call.script == "deps_cancel" and result
        }
        if moved:
            store.forward_batches(moved)
        told: dict[str, list[str]] = {}
        for q, pid, _, _ in parents:
            told.setdefault(q, []).append(pid)
        store._wire.run(
            [
                Call(
                    "deps_done",
                    keys.deps_done(q, pids[i : i + DONE_SLICE]),
                    [KEEP_DEPENDENTS, *pids[i : i + DONE_SLICE]],
                )
                for q, pids in told.items()
                for i in range(0, len(pids), DONE_SLICE)
            ]
        )
        # The next level: queues whose cancelled jobs have dependents of their own, and
        # queues whose to-do set held more than a step.
        deeper = {cq for cq, result in zip(targets, results, strict=True) if result == 2}
        todo = list(full | deeper)
    return changed


def dependencies(store: RedisBackend, job_id: str) -> list[str]:
    found = store._locate([job_id])
    if not found:
        return []
    (queue,) = found
    raw = store.client.hget(store.keys.job(queue, job_id), "af")
    return [] if raw is None else _text(raw).split()


def dependents(store: RedisBackend, job_id: str, limit: int) -> list[str]:
    found = store._locate([job_id])
    queues = list(found) or []
    children: list[str] = []
    for queue in queues:
        for member in store.client.smembers(store.keys.dependents(queue, job_id)):
            children.append(_text(member).partition(",")[2])
    return sorted(children)[:limit]
