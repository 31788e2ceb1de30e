"""``conveyor worker`` with the moments of its start written down, for bench/spawn_probe.py's
``--breakdown``: ``python -m bench.spawn_trace worker MODULE:APP ...`` runs the CLI as
``python -m conveyor`` does, and appends ``<what> <seconds since SPAWN_T0>`` lines to the file
SPAWN_TRACE names: the interpreter up, conveyor's CLI imported, the store's module imported,
the store open, and each store call's first start and end (the first claim, the first beat).
Measuring only: it wraps the store's methods, which costs a few microseconds a call."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

T0 = float(os.environ["SPAWN_T0"])
marks: list[tuple[str, float]] = [("interpreter up", time.time() - T0)]
seen: set[str] = set()
lock = threading.Lock()


def mark(what: str) -> None:
    with lock:
        if what not in seen:
            seen.add(what)
            marks.append((what, time.time() - T0))


def traced(backend: Any) -> Any:
    """``backend`` with each public method's first call marked (instance attributes)."""
    for name in dir(type(backend)):
        method = getattr(backend, name, None)
        if name.startswith("_") or not callable(method) or isinstance(method, type):
            continue

        def call(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            mark(f"{_name} sent")
            try:
                return _method(*args, **kwargs)
            finally:
                mark(f"{_name} answered")

        setattr(backend, name, call)
    return backend


def main() -> None:
    import conveyor.cli

    mark("conveyor.cli imported")
    import conveyor.app

    opened = conveyor.app.open_backend

    def open_backend(url: str, *args: Any, **kwargs: Any) -> Any:
        scheme = url.split(":", 1)[0]
        module = "postgres" if scheme.startswith("postgres") else "sqlite" if scheme == "sqlite" else "redis"
        __import__(f"conveyor.backends.{module}")
        mark("store module imported")
        backend = opened(url, *args, **kwargs)
        mark("store open")
        return traced(backend)

    conveyor.app.open_backend = open_backend  # type: ignore[assignment]
    try:
        sys.argv[0] = "conveyor"
        conveyor.cli.main()
    finally:
        with open(os.environ["SPAWN_TRACE"], "a") as out:
            out.writelines(f"{what}\t{at}\n" for what, at in marks)


if __name__ == "__main__":
    main()
