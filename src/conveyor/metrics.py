"""Prometheus metrics: queue figures read from the store at scrape time, and optional
worker-local run-time histograms.

``ConveyorCollector`` asks the store (``app.stats()``, ``app.workers()``) on every scrape, so
the figures are right however many worker processes and machines there are: no counter lives
in a process, so there is nothing to aggregate and no multiprocess mode to configure. It is
what the dashboard serves at ``/metrics``; to serve it elsewhere::

    from prometheus_client import CollectorRegistry, start_http_server
    from conveyor.metrics import ConveyorCollector

    registry = CollectorRegistry()
    registry.register(ConveyorCollector(app))
    start_http_server(9100, registry=registry)

``RunTimeMetrics`` is middleware for workers: a histogram of run times by task and outcome,
kept in the worker process (expose it from each worker, e.g. with ``start_http_server``).

Needs ``conveyor[prometheus]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise ImportError(
        f"conveyor.metrics needs the prometheus extra ({exc.name} is not installed): "
        "pip install 'conveyor[prometheus]'",
        name=exc.name,
    ) from None

from .job import STATES, Stats
from .middleware import Middleware

if TYPE_CHECKING:
    from .app import Conveyor

__all__ = ["ConveyorCollector", "RunTimeMetrics", "render_metrics"]

#: Seconds, from a quick task to a long batch job.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
)  # fmt: skip


class ConveyorCollector(Collector):
    """Job counts by queue and state, totals, oldest pending age, live workers, paused
    queues and the seconds since each periodic schedule's last enqueue, computed from the
    store when scraped.

    ``alive_after`` is how many seconds since its last heartbeat a worker still counts as
    alive (default: three leases).
    """

    def __init__(self, app: Conveyor, *, alive_after: float | None = None) -> None:
        self.app = app
        self.alive_after = alive_after

    def describe(self) -> Iterator[Metric]:
        # Describing without collecting: registering the collector must not touch the store.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        stats = self.app.stats()
        workers = self.app.workers()
        now = time.time()

        jobs = GaugeMetricFamily(
            "conveyor_jobs", "Jobs in the store by queue and state.", labels=["queue", "state"]
        )
        for queue in sorted(stats.queues):
            counts = stats.queues[queue]
            for state in STATES:
                jobs.add_metric([queue, state], counts.get(state, 0))
        yield jobs

        yield CounterMetricFamily(
            "conveyor_processed",
            "Job runs finished, successful or not (failed runs are also in conveyor_failed_total).",
            value=stats.processed,
        )
        yield CounterMetricFamily(
            "conveyor_failed", "Job runs that raised, timed out or lost their worker.", value=stats.failed
        )

        oldest = GaugeMetricFamily(
            "conveyor_oldest_pending_seconds",
            "Age of the oldest job ready to run, per queue (0 when none waits).",
            labels=["queue"],
        )
        for queue in sorted(set(stats.queues) | set(stats.oldest_pending)):
            oldest.add_metric([queue], float(stats.oldest_pending.get(queue, 0.0)))
        yield oldest

        paused = GaugeMetricFamily("conveyor_queue_paused", "1 when the queue is paused.", labels=["queue"])
        for queue in sorted(set(stats.queues) | set(stats.paused)):
            paused.add_metric([queue], 1.0 if queue in stats.paused else 0.0)
        yield paused

        yield from _limit_metrics(stats)

        limit = self.alive_after if self.alive_after is not None else max(3 * self.app.lease, 10.0)
        alive = [w for w in workers if w.alive and now - w.last_seen < limit]
        yield GaugeMetricFamily(
            "conveyor_workers_alive", "Worker processes with a recent heartbeat.", value=len(alive)
        )
        yield GaugeMetricFamily(
            "conveyor_worker_slots",
            "Concurrency of the live workers.",
            value=sum(w.concurrency for w in alive),
        )
        yield GaugeMetricFamily(
            "conveyor_worker_busy_slots",
            "Jobs the live workers are running.",
            value=sum(len(w.running) for w in alive),
        )
        yield from self._periodic(now)

    def _periodic(self, now: float) -> Iterator[Metric]:
        """Seconds since each schedule's last enqueue: alert when it passes the schedule's
        interval by much (no worker runs the scheduler, or the store refuses its writes). A
        schedule that never enqueued yet has no sample; nothing is read without schedules."""
        if not self.app.schedules:
            return
        since = GaugeMetricFamily(
            "conveyor_periodic_seconds_since_enqueue",
            "Seconds since the periodic schedule's last tick was enqueued.",
            labels=["schedule"],
        )
        for status in self.app.schedule_status(job_states=False):
            seconds = status.seconds_since_enqueue(now)
            if status.defined and seconds is not None:
                since.add_metric([status.name], seconds)
        yield since


def _limit_metrics(stats: Stats) -> Iterator[Metric]:
    """Each concurrency or rate limit: its allowance, runs in progress, jobs held back."""
    labels = ["queue", "limit"]
    running = GaugeMetricFamily(
        "conveyor_limit_running", "Runs in progress under a limit (summed over its keys).", labels=labels
    )
    waiting = GaugeMetricFamily(
        "conveyor_limit_waiting",
        "Jobs ready to run but held back by a limit (summed over its keys).",
        labels=labels,
    )
    allowed = GaugeMetricFamily(
        "conveyor_limit_concurrency", "Runs a limit allows at once (per key when keyed).", labels=labels
    )
    rate = GaugeMetricFamily(
        "conveyor_limit_rate_per_second",
        "Starts a limit allows per second (per key when keyed).",
        labels=labels,
    )
    keys = GaugeMetricFamily("conveyor_limit_keys", "Keys of a keyed limit with jobs.", labels=labels)
    for u in stats.limits:
        name = [u.queue, u.label]
        running.add_metric(name, u.active)
        waiting.add_metric(name, u.waiting)
        keys.add_metric(name, u.keys)
        if u.limit.concurrency is not None:
            allowed.add_metric(name, u.limit.concurrency)
        if u.limit.rate is not None and u.limit.per:
            rate.add_metric(name, u.limit.rate / u.limit.per)
    yield from (running, waiting, allowed, rate, keys)


def render_metrics(app: Conveyor) -> tuple[bytes, str]:
    """The app's metrics in the Prometheus text format, and its content type.

    A fresh registry each time: two apps in one process never share a metric.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConveyorCollector(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class RunTimeMetrics(Middleware):
    """Worker middleware: a histogram ``conveyor_job_run_seconds{task, outcome}``.

    Figures are local to the worker process that ran the job; expose them from each worker
    (``prometheus_client.start_http_server``) and sum across workers in PromQL. Pass a
    ``registry`` to keep them out of the global default one.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        name: str = "conveyor_job_run_seconds",
    ) -> None:
        kwargs: dict[str, Any] = {"buckets": tuple(buckets)}
        if registry is not None:
            kwargs["registry"] = registry
        self.histogram = Histogram(
            name, "Run time of jobs by task and outcome.", ["task", "outcome"], **kwargs
        )

    def after_run(
        self, job_id: str, task: str, duration: float, error: BaseException | None, result: Any
    ) -> None:
        outcome = "completed" if error is None else "failed"
        self.histogram.labels(task=task, outcome=outcome).observe(max(0.0, duration))
