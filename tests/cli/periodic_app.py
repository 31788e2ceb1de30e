"""An app with periodic schedules for the CLI and dashboard tests; its store from $CONVEYOR_URL."""

from __future__ import annotations

import os

from conveyor import Conveyor

app = Conveyor(os.environ.get("CONVEYOR_URL"), namespace=os.environ.get("CONVEYOR_NAMESPACE", "conveyor"))


@app.periodic(cron="*/5 * * * *", tz="Europe/Berlin")
@app.task(name="reports.cleanup")
def cleanup() -> None: ...


@app.task(name="reports.send", queue="mail")
def send(kind: str) -> None: ...


app.periodic(send, cron="0 9 * * MON-FRI", tz="America/New_York", args=("daily",), name="daily-report")
app.periodic(send, every=30, args=("ping",), name="ping")
