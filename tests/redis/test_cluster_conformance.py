"""The whole conformance suite, unchanged, on a 3-master Redis Cluster.

Every test function (and class) of ``tests/conformance/test_*.py`` is imported here; this
directory's ``conftest.py`` makes ``store_url`` a ``redis+cluster://`` URL. A script touching
keys of two slots would fail here with CROSSSLOT, so this also checks the key layout.
"""

from __future__ import annotations

import importlib
from pathlib import Path

_SUITE = Path(__file__).resolve().parent.parent / "conformance"

for _path in sorted(_SUITE.glob("test_*.py")):
    _module = importlib.import_module(f"tests.conformance.{_path.stem}")
    for _name, _value in vars(_module).items():
        if _name.startswith(("test_", "Test")) and getattr(_value, "__module__", None) == _module.__name__:
            globals()[_name] = _value
