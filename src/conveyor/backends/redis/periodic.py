"""The Redis store's periodic calls: offering ticks, reading and forgetting schedule state.

Each schedule's state is a field of ``{ns:q}:periodic``, ``q`` being the queue its jobs go to,
so ``ticks.lua`` compares the tick with the recorded one and writes the job in one script,
in one slot (Redis Cluster included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...job import PENDING, ScheduleState, Tick
from .keys import DEFAULT, WAKE_TOKENS, Keys
from .records import hash_items, meta_field
from .wire import Call, Wire


class Periodic:
    """The periodic half of ``RedisBackend`` (a base class), over the same keys and wire."""

    keys: Keys
    cluster: bool
    _wire: Wire

    def _queues(self) -> list[str]:
        raise NotImplementedError  # RedisBackend's: the registry, default first

    def _unregistered(self, queues: Sequence[str]) -> list[str]:
        raise NotImplementedError  # RedisBackend's: queues this process has not registered lately

    def enqueue_ticks(self, ticks: Sequence[Tick], now: float) -> list[bool]:
        if not ticks:
            return []
        by_queue: dict[str, list[Tick]] = {}
        for tick in ticks:
            if tick.record.state != PENDING:
                raise ValueError(
                    f"the job of a tick of {tick.name!r} must be pending, not {tick.record.state}"
                )
            by_queue.setdefault(tick.record.queue, []).append(tick)
        if self.cluster:
            # The registry lives in another slot: written first, as enqueue does.
            fresh = self._unregistered(list(by_queue))
            if fresh:
                self._wire.run([Call(None, "SADD", self.keys.queues, *fresh)])
        calls: list[Call] = []
        for queue, batch in by_queue.items():
            args: list[Any] = [self.keys.prefix(queue), queue, repr(float(now)), WAKE_TOKENS]
            for tick in batch:
                r = tick.record
                timeout = "" if r.timeout is None else repr(float(r.timeout))
                args += (
                    tick.name,
                    repr(float(tick.at)),
                    repr(float(tick.next_at)),
                    "1" if tick.catch_up else "",
                    r.id,
                    r.payload,
                    int(r.priority),
                    repr(float(r.run_at)),
                    meta_field(r.priority, r.max_attempts, timeout, repr(float(r.created_at))),
                )
            calls.append(Call("ticks", self.keys.ticks(queue, self.cluster), args))
        stored: set[str] = set()
        index: list[str] = []
        for (queue, batch), flags in zip(by_queue.items(), self._wire.run(calls), strict=True):
            for tick, flag in zip(batch, flags, strict=True):
                if flag:
                    stored.add(tick.record.id)
                    if queue != DEFAULT:
                        index += (tick.record.id, queue)
        if self.cluster and index:
            # The id index is in another slot too; until this lands, a lookup by id finds
            # the job by searching the queues (and repairs the index).
            self._wire.run([Call(None, "HSET", self.keys.where, *index)])
        return [tick.record.id in stored for tick in ticks]

    def _states(self) -> list[tuple[str, dict[bytes, bytes]]]:
        queues = self._queues()
        calls = [Call(None, "HGETALL", self.keys.periodic(q)) for q in queues]
        return list(zip(queues, self._wire.run(calls), strict=True)) if calls else []

    def schedules(self) -> list[ScheduleState]:
        found: list[ScheduleState] = []
        for queue, fields in self._states():
            for name, value in hash_items(fields):
                state = _parse(name.decode(errors="replace"), queue, value)
                if state is not None:
                    found.append(state)
        return sorted(found, key=lambda s: s.name)

    def forget_schedules(self, keep: Sequence[str], abandoned_before: float) -> int:
        kept = set(keep)
        calls: list[Call] = []
        for queue, fields in self._states():
            names = []
            for name, value in hash_items(fields):
                text = name.decode(errors="replace")
                state = _parse(text, queue, value)
                if text not in kept and (state is None or state.next_at < abandoned_before):
                    names.append(name)
            if names:
                calls.append(Call("unschedule", self.keys.unschedule(queue), [abandoned_before, *names]))
        return sum(int(n) for n in self._wire.run(calls)) if calls else 0


def _parse(name: str, queue: str, value: bytes) -> ScheduleState | None:
    """A state as ticks.lua writes it; None for a field written by something else."""
    try:
        last_at, next_at, job_id, enqueued_at = value.decode().split("|")
        return ScheduleState(name, queue, float(last_at), float(next_at), job_id, float(enqueued_at))
    except ValueError:
        return None
