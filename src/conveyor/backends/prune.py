"""Deleting completed jobs past ``result_ttl``: batches until the backlog is gone.

One batch a housekeeping pass (every beat, a third of a lease) kept up with a drain of about
a thousand jobs a second per worker: above that, completed jobs piled up without bound. A pass
now deletes batch after batch, each a short write of its own found by the store's index of
completed jobs by ``finished_at`` (oldest first, never sorted), until one comes back short or
``PRUNE_BUDGET`` seconds have gone: the cost is what was found, and a pass keeps pace with any
rate the store can delete at in that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Completed jobs one batch deletes at most (one short transaction, or one Redis script of
#: about a millisecond per queue).
PRUNE_BATCH = 1000
#: Seconds of batches one housekeeping pass spends at most. A pass comes every beat (a third
#: of the lease: 10 s by default) on the worker's housekeeping thread, never in the way of
#: the beats that keep its leases; half of it is pauses (below), so a pass deletes for up to
#: a quarter of the time: 2-3 times the rate a worker drains at on each store here.
PRUNE_BUDGET = 5.0


def prune_batches(batch: Callable[[int], int]) -> int:
    """Call ``batch(limit)`` (which deletes up to ``limit`` jobs and returns how many it
    did) again while it comes back full and the budget lasts; the total deleted. Between
    two batches it pauses as long as the last one took: the worker's own calls go first,
    and a pass takes at most half of the store's time (SQLite's write lock, a connection)."""
    limit = PRUNE_BATCH  # read at each call: a test may lower it
    deadline = time.monotonic() + PRUNE_BUDGET
    total = 0
    while True:
        began = time.monotonic()
        done = batch(limit)
        total += done
        if done < limit or time.monotonic() >= deadline:
            return total
        time.sleep(pause(began))


def pause(began: float) -> float:
    """The pause after a batch that began at ``began`` (monotonic): as long as it took."""
    return min(1.0, max(0.001, time.monotonic() - began))
