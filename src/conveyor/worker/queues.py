"""Queue selection: strict order, or weights (Sidekiq's ``critical:6,default:3,low:1``)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import ConfigurationError


class QueueOrder:
    """The order in which one fetch serves the worker's queues.

    Strict: always as given, so a later queue runs only when the earlier ones are empty.
    Weighted: each fetch draws an order at random, a queue of weight 6 coming first six
    times as often as one of weight 1, so no queue starves.
    """

    def __init__(self, spec: Sequence[str] | str | None) -> None:
        self.names: list[str] | None = None
        self.weights: list[float] | None = None
        if spec is None or spec == "" or spec == []:
            return
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        names: list[str] = []
        weights: list[float] = []
        weighted = False
        for item in items:
            if not item:
                continue
            name, sep, weight = item.partition(":")
            if sep:
                weighted = True
                try:
                    value = float(weight)
                except ValueError:
                    value = -1.0
                if value <= 0:
                    raise ConfigurationError(
                        f"queue weight in {item!r} must be a number > 0, e.g. critical:6"
                    )
            else:
                value = 1.0
            if name in names:
                raise ConfigurationError(f"queue {name!r} is listed twice")
            names.append(name)
            weights.append(value)
        self.names = names or None
        self.weights = weights if weighted else None

    def __call__(self) -> list[str] | None:
        if self.names is None or self.weights is None:
            return self.names
        # Efraimidis-Spirakis: sorting by u ** (1/w) is a weighted draw without replacement.
        keyed = [(random.random() ** (1.0 / w), n) for n, w in zip(self.names, self.weights, strict=True)]
        keyed.sort(reverse=True)
        return [n for _, n in keyed]

    def describe(self) -> tuple[str, ...]:
        if self.names is None:
            return ("*",)
        if self.weights is None:
            return tuple(self.names)
        return tuple(f"{n}:{w:g}" for n, w in zip(self.names, self.weights, strict=True))
