"""The traced app a ``conveyor worker`` process loads in tests/worker/test_otel.py."""

from __future__ import annotations

import os

from tests.worker.otel_tasks import build

app = build(os.environ.get("CONVEYOR_URL"), os.environ["CONVEYOR_SPANS"])
