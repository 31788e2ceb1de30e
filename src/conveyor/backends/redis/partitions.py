"""A queue spread over several hash slots: one busy queue on every master of a Cluster.

A queue's keys share one hash tag (``{ns:q}``), hence one slot and one master: on a Cluster
that master alone serves the queue, whatever the number of masters. ``app.queue("mail",
partitions=8)`` spreads it over 8 shards, each an ordinary queue to the store: shard 0 is
``mail`` itself (so a queue can become partitioned with jobs waiting), shard ``i`` is
``mail:i``, whose tag ``{ns:mail:i}`` lands elsewhere. No queue name holds ':' (``check_name``
refuses it), so a shard's name never meets a queue's. Every script still runs in one shard;
the count lives in ``{ns}:partitions`` for every process to read.

Semantics: enqueue deals a process's jobs out over the shards in turn; a fetch starts at the
next shard in turn and takes the others after it, so workers spread over every shard. Within
one shard jobs keep priority, then FIFO order; across shards neither holds (a job may run
before an older or higher-priority one waiting in another shard). Records always show the
queue's own name.
"""

from __future__ import annotations

from typing import Final

from ...limits import SEP

#: Between a queue's name and its shard number; ``check_name`` keeps it out of queue names.
SEPARATOR: Final = ":"
MAX_PARTITIONS: Final = 1024


def shards(queue: str, count: int, start: int = 0) -> list[str]:
    """The shard names of ``queue`` (of ``count`` shards), from shard ``start`` round."""
    names = [queue, *(f"{queue}{SEPARATOR}{i}" for i in range(1, count))]
    start %= count
    return names[start:] + names[:start]


def shard(queue: str, n: int) -> str:
    """Shard ``n`` of ``queue``."""
    return queue if n == 0 else f"{queue}{SEPARATOR}{n}"


def queue_of(name: str) -> str:
    """The queue a shard belongs to (a queue's own name for an unpartitioned one; a
    limited job's bucket, whose key may hold ':', is never a partition)."""
    if SEP in name:
        return name
    return name.partition(SEPARATOR)[0]
