"""An app whose module uses conveyor.metrics, for the missing-extra test."""

from __future__ import annotations

import os

from conveyor import Conveyor
from conveyor.metrics import RunTimeMetrics

app = Conveyor(os.environ.get("CONVEYOR_URL"), middleware=[RunTimeMetrics()])
