"""An app that encrypts its jobs, for the missing-extra test."""

from __future__ import annotations

import os

from conveyor import Conveyor

app = Conveyor(os.environ.get("CONVEYOR_URL"), encryption_key=b"k" * 32)
