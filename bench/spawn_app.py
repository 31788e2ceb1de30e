"""The app bench/spawn_probe.py starts ``conveyor worker`` on: its store from the environment
(SPAWN_URL, SPAWN_NS), one task that writes when it started."""

from __future__ import annotations

import os
import time

from conveyor import Conveyor

app = Conveyor(os.environ["SPAWN_URL"], namespace=os.environ["SPAWN_NS"])


@app.task(name="spawn.mark")
def mark(path: str) -> None:
    with open(path, "w") as out:
        out.write(f"{time.time()} {time.process_time()}\n")
