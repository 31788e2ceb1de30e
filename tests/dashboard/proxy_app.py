"""The demo app on the store named by ``$CONVEYOR_URL``, for ``conveyor dashboard`` run as a
real process behind a real nginx (tests/dashboard/test_proxy.py)."""

from __future__ import annotations

import os

from tests.dashboard.helpers import build_app

app = build_app(os.environ["CONVEYOR_URL"]).app
