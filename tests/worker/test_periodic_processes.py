"""Three real worker processes per store, one ``every=1`` schedule: each tick runs once.

The four stores run at the same time, so the default suite pays one run's length (5 s);
``CONVEYOR_FAULTS_FULL=1`` (``make faults``) runs 10 s.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from conveyor import Conveyor
from tests.harness import WorkerProcesses, open_or_skip
from tests.servers import PostgresServer, RedisCluster, RedisServer

SECONDS = 10.0 if os.environ.get("CONVEYOR_FAULTS_FULL") else 5.0


def test_three_workers_per_store_run_each_tick_once(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_cluster: RedisCluster,
    postgres_server: PostgresServer,
) -> None:
    host, port = redis_cluster.nodes[0]
    urls = {
        "sqlite": f"sqlite:///{tmp_path}/jobs.db",
        "redis": redis_server.url,
        "cluster": f"redis+cluster://{host}:{port}",
        "postgres": postgres_server.url,
    }
    namespace = f"periodic{os.getpid()}"
    stores: dict[str, WorkerProcesses] = {}
    try:
        for name, url in urls.items():
            folder = tmp_path / name
            folder.mkdir()
            app = open_or_skip(Conveyor(url, namespace=namespace))
            stores[name] = WorkerProcesses(
                "tests.worker.periodic_app:app", app, folder, url, CONVEYOR_NAMESPACE=namespace
            )
        begun = time.time()  # a worker's first pass offers the latest tick before it
        for workers in stores.values():
            for _ in range(3):
                workers.start("--concurrency", "2")
        started = time.time()
        time.sleep(SECONDS + 2.0)  # importing and starting take about a second
        stopped = time.time()
        for workers in stores.values():
            for proc in workers.procs:
                proc.send_signal(signal.SIGTERM)
        for workers in stores.values():
            for proc in workers.procs:
                assert proc.wait(30) == 0, workers.logs()[-3000:]
        # A tick that came due after the signals were sent but before a worker saw its signal
        # (a loaded machine delays that by a tick or so) is run by that worker, rightly.
        exited = time.time()
        for name, workers in stores.items():
            ticks = Counter(float(tag) for tag in workers.tags())
            twice = {t for t, n in ticks.items() if n > 1}
            assert not twice, f"{name}: ticks run twice: {sorted(twice)}"
            ran = sorted(ticks)
            assert ran, f"{name}: no tick ran; logs:\n{workers.logs()[-3000:]}"
            assert all(begun - 1 <= t <= exited for t in ran), (
                f"{name}: a tick outside the workers' life: {ran}, begun {begun:.2f}, "
                f"signalled {stopped:.2f}, exited {exited:.2f}"
            )
            # Every second from the first tick to the last, none missing.
            assert ran == [ran[0] + n for n in range(len(ran))], f"{name}: a tick is missing: {ran}"
            assert len(ran) >= SECONDS - 1, f"{name}: {len(ran)} ticks in {stopped - started:.1f} s"
            states = workers.app.backend.schedules()
            # A tick enqueued as the workers stopped may be left for the next worker to run.
            assert [s.name for s in states] == ["tick"] and ran[-1] <= states[0].last_at <= ran[-1] + 2, name
    finally:
        for workers in stores.values():
            workers.close()
