"""The whole conformance suite, unchanged, on a 3-master Redis Cluster.

Every test function (and class) of ``tests/conformance/test_*.py`` is imported here; this
directory's ``conftest.py`` makes ``store_url`` a ``redis+cluster://`` URL. A script touching
keys of two slots would fail here with CROSSSLOT, so this also checks the key layout.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

_SUITE = Path(__file__).resolve().parent.parent / "conformance"

#: The fixtures that put a test on the parametrized store; a test without any (one that
#: makes its own unreachable stores) would only run a second time here.
_ON_THE_STORE = {"store_url", "make_app", "app"}

for _path in sorted(_SUITE.glob("test_*.py")):
    _module = importlib.import_module(f"tests.conformance.{_path.stem}")
    for _name, _value in vars(_module).items():
        if not _name.startswith(("test_", "Test")) or getattr(_value, "__module__", None) != _module.__name__:
            continue
        if _name.startswith("test_") and not _ON_THE_STORE & set(inspect.signature(_value).parameters):
            continue
        globals()[_name] = _value
