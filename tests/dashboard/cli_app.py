"""An app for the ``conveyor dashboard`` command tests to load by ``module:attribute``."""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor("sqlite:///:memory:")
