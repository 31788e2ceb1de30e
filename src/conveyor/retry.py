"""Backoff policies: how long a failed job waits before its next attempt."""

from __future__ import annotations

import random
from collections.abc import Callable

Backoff = float | int | Callable[[int], float]

BASE_DELAY = 1.0
MAX_DELAY = 3600.0


def exponential(attempt: int) -> float:
    """The default: 1, 2, 4, 8 … seconds times a jitter of 1-1.5, capped at an hour.

    The jitter spreads out jobs that failed together (an outage) so they do not all come
    back in the same second.
    """
    delay = min(MAX_DELAY, BASE_DELAY * float(2 ** min(attempt - 1, 32)))
    return delay * random.uniform(1.0, 1.5)


def delay_for(backoff: Backoff | None, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    if backoff is None:
        return exponential(attempt)
    if callable(backoff):
        return max(0.0, float(backoff(attempt)))
    return max(0.0, float(backoff))
