"""The dashboard's Starlette application: pages, actions and the JSON feed for the chart.

Everything goes through the app's admin API (``stats``, ``jobs``, ``get_job``, ``retry``,
``delete``, ``cancel``, ``pause``, ``resume``, ``workers``, ``schedule_status``,
``run_schedule``), so one dashboard serves every
store. Pages are rendered on the server; htmx refreshes the live parts and uPlot draws the
chart, both served from ``static/``. Store calls block, so they run in the thread pool.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import jinja2
import orjson
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..batch import Batch
from ..job import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    DEAD,
    FINAL_STATES,
    PENDING,
    RETRY,
    SCHEDULED,
    STATES,
    WAITING,
    Job,
    Stats,
)
from ..page import JobPage
from ..task import MAX_DELAY
from . import security
from .security import Authorize, Guard, Refused, Settings

if TYPE_CHECKING:
    from ..app import Conveyor

T = TypeVar("T")
HERE = Path(__file__).parent
PAGE_SIZES = (20, 50, 100, 200)
DEFAULT_PAGE = 50
PURGE_STATES = (SCHEDULED, PENDING, RETRY)
#: Dependents a job's page lists at most.
DEPENDENTS_SHOWN = 50
#: The order states are shown in, waiting first.
STATE_ORDER = (PENDING, ACTIVE, SCHEDULED, WAITING, RETRY, DEAD, COMPLETED, CANCELLED)
ACTIONS = ("retry", "delete", "cancel")


def create_app(
    conveyor_app: Conveyor,
    *,
    password: str | None = None,
    token: str | None = None,
    read_only: bool = False,
    authorize: Authorize | None = None,
    secure_cookies: bool | None = None,
    insecure_no_auth: bool = False,
    metrics: bool = True,
    metrics_public: bool = False,
    trusted_origins: Sequence[str] = (),
    public_url: str | None = None,
    require_login: bool | None = None,
    session_key: str | bytes | None = None,
    session_max_age: int = 12 * 3600,
    title: str = "conveyor",
    refresh: float = 3.0,
) -> Starlette:
    """The dashboard for ``conveyor_app`` as an ASGI (Starlette) app.

    Access always needs a credential the dashboard can verify. With ``password`` or ``token``
    (default ``$CONVEYOR_DASHBOARD_PASSWORD`` and ``$CONVEYOR_DASHBOARD_TOKEN``) every page
    needs a login, a link carrying ``?token=`` (it logs the browser in), or ``Authorization:
    Bearer <token>`` for scripts. ``authorize(request) -> bool`` (may be async) lets the host
    app admit its own users; a False answer falls back to the login, if there is one. With
    none of these every request gets a page saying what to configure, wherever it comes from:
    a reverse proxy makes every request look local. ``insecure_no_auth=True`` serves everyone
    without asking (only behind something else that checks, such as an authenticating proxy).

    ``public_url`` is the URL people open (``https://ops.example.com/jobs``) when a proxy is
    in front: the CSRF Origin check compares against its scheme and host instead of the
    ``Host`` header the proxy sends, and an https URL makes the cookie Secure.
    ``trusted_origins`` adds more accepted origins. ``read_only`` hides every action and
    refuses every POST. ``secure_cookies`` forces the Secure cookie flag (default: set when
    the request came over TLS). ``require_login=False`` is the old spelling of
    ``insecure_no_auth=True`` (deprecated; True changes nothing). ``session_key`` signs the
    session cookie (default: derived from the password/token). ``metrics`` serves
    ``/metrics``; ``metrics_public`` serves it without login, for a Prometheus that cannot log
    in. ``refresh`` is seconds between live updates.
    """
    if require_login is not None:
        warnings.warn(
            "require_login is deprecated: a credential is always required now; pass "
            "insecure_no_auth=True to serve without one",
            DeprecationWarning,
            stacklevel=3,
        )
        insecure_no_auth = insecure_no_auth or require_login is False
    if insecure_no_auth:
        logging.getLogger("conveyor.dashboard").warning(
            "the dashboard serves anyone who reaches it, without a login (insecure_no_auth): "
            "put it behind something that checks, such as an authenticating proxy"
        )
    settings = Settings.create(
        password=password,
        token=token,
        read_only=read_only,
        authorize=authorize,
        secure_cookies=secure_cookies,
        insecure_no_auth=insecure_no_auth,
        metrics=metrics,
        metrics_public=metrics_public,
        trusted_origins=trusted_origins,
        public_url=public_url,
        session_key=session_key,
        session_max_age=session_max_age,
    )
    dashboard = Dashboard(conveyor_app, settings, title=title, refresh=refresh)
    app = Starlette(
        routes=dashboard.routes(),
        exception_handlers={
            HTTPException: dashboard.http_error,  # type: ignore[dict-item]
            Refused: dashboard.refused_handler,  # type: ignore[dict-item]
        },
        max_body_size=512 * 1024,
    )
    app.add_middleware(Guard, settings=settings, refuse=dashboard.refused)
    app.state.dashboard = dashboard
    return app


# -- formatting helpers used by the templates -------------------------------------------------
def ago(when: datetime | float | None, now: float | None = None) -> str:
    """``12s ago``, ``in 3m``: short relative times for tables."""
    if when is None:
        return "—"
    ts = when.timestamp() if isinstance(when, datetime) else when
    delta = (time.time() if now is None else now) - ts
    if abs(delta) < 1:
        return "just now"
    text = duration(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:.0f}ms"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def stamp(when: datetime | None) -> str:
    return "—" if when is None else when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """JSON for people: indented, non-ASCII kept. Escaping is the template's job."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def preview(job: Job, limit: int = 120) -> str:
    if job.encrypted:
        return "(encrypted)"
    parts = [json.dumps(a, ensure_ascii=False, default=str) for a in job.args]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in job.kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str | None, limit: int = 140) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def number(n: int | float) -> str:
    return f"{n:,}"


def _delay(form: FormData) -> float:
    """Seconds from a reschedule form's ``delay`` and ``unit`` fields; ``Refused`` (400)
    naming the value when they are not a time from now up to a century."""
    delay, unit = form.get("delay"), form.get("unit") or "1"
    try:
        seconds = float(str(delay)) * float(str(unit))
    except ValueError:
        raise Refused(
            400, "Bad request", f"Reschedule takes a number of {unit!s} units, not {delay!s}."
        ) from None
    if not 0 <= seconds <= MAX_DELAY:
        raise Refused(400, "Bad request", f"Reschedule takes a time from now up to a century, not {delay!s}.")
    return seconds


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return max(low, min(high, number))


def _safe_next(value: str | None, default: str) -> str:
    """A path inside the dashboard to go back to; anything else (another host, a scheme,
    ``//evil``) falls back to ``default``, so ``next=`` is never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 for c in value):
        return default
    return value


class Dashboard:
    """The pages and actions over one Conveyor app."""

    def __init__(self, conveyor_app: Conveyor, settings: Settings, *, title: str, refresh: float) -> None:
        self.app = conveyor_app
        self.settings = settings
        self.title = title
        self.refresh = max(1.0, refresh)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            ago=ago, duration=duration, stamp=stamp, pretty=pretty, preview=preview, number=number
        )
        env.filters["first_line"] = first_line
        env.filters["seg"] = lambda value: quote(str(value), safe="")
        env.globals.update(STATE_ORDER=STATE_ORDER, FINAL_STATES=FINAL_STATES)
        self.templates = Jinja2Templates(env=env)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.overview, name="overview"),
            Route("/api/stats", self.api_stats),
            Route("/queues", self.queues),
            Route("/queues/{queue}/{action:str}", self.queue_action, methods=["GET", "POST"]),
            Route("/jobs", self.jobs),
            Route("/jobs/bulk", self.bulk_action, methods=["POST"]),
            Route("/jobs/all/{action:str}", self.all_action, methods=["GET", "POST"]),
            Route("/jobs/{job_id}", self.job),
            Route("/batches/{batch_id}", self.batch),
            Route("/jobs/{job_id}/{action:str}", self.job_action, methods=["POST"]),
            Route("/scheduled", self.scheduled),
            Route("/retries", self.retries),
            Route("/dead", self.dead),
            Route("/workers", self.workers),
            Route("/periodic", self.periodic),
            Route("/periodic/{name}/run", self.run_schedule, methods=["POST"]),
            Route("/metrics", self.metrics),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]

    # -- rendering ------------------------------------------------------------------------
    def url(self, request: Request, path: str, **query: Any) -> str:
        """A link inside the dashboard, under whatever prefix it is mounted at."""
        root = (request.scope.get("root_path") or "").rstrip("/")
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return root + path + ("?" + urlencode(params) if params else "")

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        state = security.session(request)
        base = {
            "title": self.title,
            "u": lambda path, **q: self.url(request, path, **q),
            "csrf_token": state.csrf,
            "read_only": self.settings.read_only,
            "logged_in": security.access(request).logged_in,
            "flash": state.pop_flash(),
            "now": time.time(),
            "refresh_ms": int(self.refresh * 1000),
            "nav": context.pop("nav", ""),
            "bare": False,
        }
        base.update(context)
        return self.templates.TemplateResponse(request, template, base, status_code=status)

    def refused(self, request: Request, refused: Refused) -> Response:
        accepts_html = "text/html" in request.headers.get("accept", "")
        if refused.status == 401 and self.settings.can_log_in:
            login = self.url(request, "/login", next=_here(request))
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": login})
            if request.method == "GET" and accepts_html:
                return RedirectResponse(login, status_code=303)
        if not accepts_html:
            return JSONResponse(
                {"error": refused.title, "detail": refused.message}, status_code=refused.status
            )
        headers = {"WWW-Authenticate": 'Bearer realm="conveyor"'} if refused.status == 401 else None
        response = self.render(
            request,
            "error.html",
            status=refused.status,
            heading=refused.title,
            message=refused.message,
            # Refused at the door: show no navigation to pages the visitor cannot see.
            bare="conveyor.access" not in request.scope,
        )
        if headers:
            response.headers.update(headers)
        return response

    async def refused_handler(self, request: Request, exc: Refused) -> Response:
        return self.refused(request, exc)

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        if "text/html" not in request.headers.get("accept", ""):
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
        if "conveyor.session" not in request.scope:
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return self.render(
            request, "error.html", status=exc.status_code, heading=title, message=str(exc.detail)
        )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def action_form(self, request: Request) -> FormData:
        """The form of a state-changing request, once it has passed every check."""
        security.check_writable(self.settings)
        form = await request.form()
        token = form.get(security.CSRF_FIELD)
        security.check_csrf(request, self.settings, token if isinstance(token, str) else None)
        return form

    def back(self, request: Request, form: FormData, default: str, message: str | None = None) -> Response:
        nxt = form.get("next")
        target = _safe_next(nxt if isinstance(nxt, str) else None, default)
        if message:
            security.session(request).set_flash(message)
        return RedirectResponse(self.url(request, target), status_code=303)

    # -- pages ----------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        stats, workers = await self.call(lambda: (self.app.stats(), self.app.workers()))
        totals = {state: stats.total(state) for state in STATES}
        alive = [w for w in workers if self._alive(w.last_seen, w.alive)]
        return self.render(
            request,
            "overview.html",
            nav="overview",
            stats=stats,
            totals=totals,
            queues=sorted(stats.queues),
            workers_alive=len(alive),
            busy=sum(len(w.running) for w in alive),
            capacity=sum(w.concurrency for w in alive),
        )

    async def api_stats(self, request: Request) -> Response:
        stats = await self.call(self.app.stats)
        now = time.time()
        end = math.floor(now / 60) * 60
        minutes = [end - 60 * i for i in range(59, -1, -1)]
        seen = {int(t): (p, f) for t, p, f in stats.history}
        return JSONResponse(
            {
                "now": now,
                "history": {
                    "t": minutes,
                    "processed": [seen.get(int(t), (0, 0))[0] for t in minutes],
                    "failed": [seen.get(int(t), (0, 0))[1] for t in minutes],
                },
                "processed": stats.processed,
                "failed": stats.failed,
                "states": {state: stats.total(state) for state in STATES},
                "paused": sorted(stats.paused),
            }
        )

    async def queues(self, request: Request) -> Response:
        stats = await self.call(self.app.stats)
        return self.render(request, "queues.html", nav="queues", stats=stats, queues=sorted(stats.queues))

    async def queue_action(self, request: Request) -> Response:
        queue = request.path_params["queue"]
        action = request.path_params["action"]
        if action not in ("pause", "resume", "purge"):
            raise HTTPException(404, "No such action.")
        if request.method == "GET":
            if action != "purge":
                raise HTTPException(405, "Use the buttons on the queues page.")
            security.check_writable(self.settings)
            stats = await self.call(self.app.stats)
            counts = stats.queues.get(queue, {})
            waiting = sum(counts.get(s, 0) for s in PURGE_STATES)
            return self.render(
                request,
                "confirm.html",
                nav="queues",
                heading=f"Purge queue {queue}?",
                message=(
                    f"This deletes every job waiting in queue “{queue}”: {waiting:,} scheduled, "
                    "pending or retrying. Running and finished jobs stay. This cannot be undone."
                ),
                action=self.url(request, f"/queues/{quote(queue, safe='')}/purge"),
                button="Purge queue",
                danger=True,
                hidden={"next": "/queues"},
                cancel=self.url(request, "/queues"),
            )
        form = await self.action_form(request)
        if action == "pause":
            await self.call(self.app.pause, queue)
            message = f"Paused queue {queue}: workers stop taking its jobs."
        elif action == "resume":
            await self.call(self.app.resume, queue)
            message = f"Resumed queue {queue}."
        else:
            removed = 0
            for state in PURGE_STATES:
                removed += await self.call(self.app.delete_all, state, queue)
            message = f"Purged queue {queue}: deleted {removed:,} waiting jobs."
        return self.back(request, form, "/queues", message)

    async def jobs(self, request: Request, fixed_state: str | None = None, nav: str = "jobs") -> Response:
        q = request.query_params
        state = fixed_state or q.get("state") or PENDING
        if state not in STATES:
            state = PENDING
        queue = q.get("queue") or None
        task = (q.get("task") or "").strip() or None
        text = (q.get("q") or "").strip() or None
        limit = _int(q.get("limit"), DEFAULT_PAGE, 1, max(PAGE_SIZES))
        after = q.get("after") or None
        shown = _int(q.get("shown"), 0, 0, 10**12) if after else 0

        def read(start: str | None) -> tuple[Stats, JobPage]:
            return self.app.stats(), self._page(state, queue, task, text, limit, start)

        try:
            stats, page = await self.call(read, after)
        except ValueError:  # a cursor that is not one (edited by hand): the first page
            after, shown = None, 0
            stats, page = await self.call(read, None)
        rows = page.jobs
        if task or text:
            total = None
        elif queue:
            total = stats.queues.get(queue, {}).get(state, 0)
        else:
            total = stats.total(state)
        counts = {s: (stats.queues.get(queue, {}).get(s, 0) if queue else stats.total(s)) for s in STATES}
        filters = {"queue": queue, "task": task, "q": text, "limit": limit if limit != DEFAULT_PAGE else None}
        base_path = get_route_path(request.scope) or "/jobs"
        return self.render(
            request,
            "jobs.html",
            nav=nav,
            state=state,
            fixed_state=fixed_state,
            jobs=rows,
            counts=counts,
            total=total,
            shown=shown,
            limit=limit,
            after=after,
            next_cursor=page.next,
            scanned=page.scanned,
            stopped=page.stopped,
            filters=filters,
            queue=queue,
            task=task,
            text=text,
            queue_names=sorted(stats.queues),
            task_names=sorted(self.app.tasks),
            page_sizes=PAGE_SIZES,
            base_path=base_path,
            here=_here(request),
        )

    def _page(
        self, state: str, queue: str | None, task: str | None, text: str | None, limit: int, after: str | None
    ) -> JobPage:
        """One page of jobs from the cursor ``after``: of one task (through the store's task
        index where it has one), holding a text, or both. A search reads a bounded number of
        jobs (the store's ``search_scan``) and the page says how many it read."""
        # Look for the text as it is stored inside a JSON string: quotes and backslashes
        # escaped, so a search for 'say "hi"' finds the argument 'say "hi"'.
        needle = None if text is None else orjson.dumps(text).decode()[1:-1]
        return self.app.jobs_page(
            state=state, queue=queue, limit=limit, after=after, search=needle, task=task
        )

    async def scheduled(self, request: Request) -> Response:
        return await self.jobs(request, SCHEDULED, "scheduled")

    async def retries(self, request: Request) -> Response:
        return await self.jobs(request, RETRY, "retries")

    async def dead(self, request: Request) -> Response:
        return await self.jobs(request, DEAD, "dead")

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = await self.call(self.app.get_job, job_id)
        if job is None:
            raise HTTPException(404, "No such job: it was deleted, or pruned after its results expired.")
        # The jobs it waits (waited) for and those waiting for it, as links: an indexed read
        # of each side, and the jobs themselves (at most DEPENDENTS_SHOWN of its dependents).
        dependencies, dependents = await self.call(
            lambda: (self.app.dependencies(job_id), self.app.dependents(job_id, DEPENDENTS_SHOWN))
        )
        return self.render(
            request,
            "job.html",
            nav="jobs",
            job=job,
            final=job.state in FINAL_STATES,
            dependencies=dependencies,
            dependents=dependents,
        )

    async def batch(self, request: Request) -> Response:
        """One batch: its counts, a progress bar, its callbacks and a page of its jobs (by
        id, from the cursor ``after``: each page costs what the first does)."""
        batch_id = request.path_params["batch_id"]
        limit = _int(request.query_params.get("limit"), DEFAULT_PAGE, 1, max(PAGE_SIZES))
        after = request.query_params.get("after") or None

        def read() -> tuple[Batch | None, list[Job]]:
            found = self.app.get_batch(batch_id)
            return found, ([] if found is None else found.jobs_page(after, limit))

        batch, rows = await self.call(read)
        if batch is None:
            raise HTTPException(404, "No such batch.")
        status = batch.status()
        ended = status["total"] - status["unfinished"]
        percent = round(100 * ended / status["total"], 1) if status["total"] else 0.0
        return self.render(
            request,
            "batch.html",
            nav="jobs",
            batch=batch,
            counts=status,
            ended=ended,
            percent=percent,
            jobs=rows,
            next_cursor=rows[-1].id if len(rows) == limit else None,
            after=after,
            limit=limit,
        )

    async def workers(self, request: Request) -> Response:
        workers = await self.call(self.app.workers)
        rows = [
            {
                "info": w,
                "status": "alive"
                if self._alive(w.last_seen, w.alive)
                else ("stopping" if not w.alive else "gone"),
            }
            for w in sorted(workers, key=lambda w: (w.host, w.pid, w.id))
        ]
        return self.render(request, "workers.html", nav="workers", workers=rows)

    async def periodic(self, request: Request) -> Response:
        schedules = await self.call(self.app.schedule_status)
        return self.render(request, "periodic.html", nav="periodic", schedules=schedules)

    def _alive(self, last_seen: float, alive: bool) -> bool:
        # Heartbeats come every third of a lease; three missed ones mean the worker is gone.
        return alive and time.time() - last_seen < max(3 * self.app.lease, 10.0)

    async def metrics(self, request: Request) -> Response:
        if not self.settings.metrics:
            raise HTTPException(404, "Metrics are turned off.")
        try:
            from ..metrics import render_metrics
        except ImportError:
            return PlainTextResponse(
                "/metrics needs prometheus-client: pip install 'conveyor[prometheus]'\n", status_code=501
            )
        body, content_type = await self.call(render_metrics, self.app)
        return Response(body, media_type=content_type)

    # -- actions --------------------------------------------------------------------------
    async def job_action(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        action = request.path_params["action"]
        if action not in (*ACTIONS, "reschedule"):
            raise HTTPException(404, "No such action.")
        form = await self.action_form(request)
        if action == "reschedule":
            delay = _delay(form)
            moved = await self.call(self.app.reschedule, job_id, delay=delay)
            message = (
                f"Job {job_id[:8]} rescheduled to run in {duration(delay)}."
                if moved
                else f"Job {job_id[:8]} could not be rescheduled: it is no longer waiting."
            )
            return self.back(request, form, f"/jobs/{job_id}", message)
        was = await self.call(self.app.get_job, job_id) if action == "cancel" else None
        done = await self.call(self._act, action, job_id, by=_who(request))
        short = job_id[:8]
        if action == "delete":
            message = f"Deleted job {short}." if done else f"Job {short} was already gone."
            return self.back(request, form, "/jobs?state=dead", message)
        if action == "cancel" and done and was is not None and was.state == "active":
            return self.back(request, form, f"/jobs/{job_id}", f"Job {short} asked to stop.")
        verb = {"retry": "queued to run now", "cancel": "cancelled"}[action]
        message = (
            f"Job {short} {verb}." if done else f"Job {short} could not be {verb.split()[0]} in its state."
        )
        return self.back(request, form, f"/jobs/{job_id}", message)

    async def run_schedule(self, request: Request) -> Response:
        """Run now: enqueue a schedule's job at once (its ticks go on as before)."""
        name = request.path_params["name"]
        form = await self.action_form(request)
        if name not in self.app.schedules:
            raise HTTPException(404, f"No schedule {name!r} in this app's code.")
        job = await self.call(self.app.run_schedule, name)
        return self.back(request, form, "/periodic", f"Enqueued {name} now as job {job.id[:8]}.")

    def _act(self, action: str, *job_ids: str, by: str | None = None) -> int:
        """One store call for any number of jobs; how many changed."""
        if action == "cancel":
            return self.app.cancel(*job_ids, by=by)
        fn: Callable[..., int] = {"retry": self.app.retry, "delete": self.app.delete}[action]
        return fn(*job_ids)

    async def bulk_action(self, request: Request) -> Response:
        form = await self.action_form(request)
        action = form.get("action")
        if action not in (*ACTIONS, "reschedule"):
            raise Refused(400, "Bad request", "Choose retry, delete, cancel or reschedule.")
        ids = [v for v in form.getlist("ids") if isinstance(v, str)][:1000]
        if not ids:
            return self.back(request, form, "/jobs", "No jobs were selected.")
        if action == "reschedule":
            delay = _delay(form)
            # One store call per job: a reschedule decides each job alone (it may have left
            # its waiting state meanwhile).
            moved = await self.call(lambda: sum(self.app.reschedule(i, delay=delay) for i in ids))
            return self.back(
                request, form, "/jobs", f"Rescheduled to run in {duration(delay)}: {moved:,} of {len(ids):,}."
            )

        done = await self.call(lambda: self._act(str(action), *ids, by=_who(request)))
        past = {"retry": "Queued to run now", "delete": "Deleted", "cancel": "Cancelled"}[str(action)]
        return self.back(request, form, "/jobs", f"{past}: {done:,} of {len(ids):,} selected jobs.")

    async def all_action(self, request: Request) -> Response:
        """Retry all or delete all jobs of one state (and queue): a confirmation page on GET,
        the action on POST."""
        action = request.path_params["action"]
        if action not in ("retry", "delete"):
            raise HTTPException(404, "No such action.")
        source = request.query_params if request.method == "GET" else await self.action_form(request)
        state = source.get("state") or DEAD
        queue = source.get("queue") or None
        if (
            not isinstance(state, str)
            or state not in STATES
            or (action == "retry" and state in (ACTIVE, PENDING))
        ):
            raise Refused(400, "Bad request", "That state cannot be used here.")
        if queue is not None and not isinstance(queue, str):
            raise Refused(400, "Bad request", "Bad queue name.")
        where = f"{state} jobs" + (f" in queue “{queue}”" if queue else "")
        if request.method == "GET":
            security.check_writable(self.settings)
            stats = await self.call(self.app.stats)
            count = stats.queues.get(queue, {}).get(state, 0) if queue else stats.total(state)
            verb = "Retry" if action == "retry" else "Delete"
            return self.render(
                request,
                "confirm.html",
                nav=state if state in ("dead", "scheduled") else "jobs",
                heading=f"{verb} all {where}?",
                message=(
                    f"This will {verb.lower()} {count:,} {where}."
                    + (
                        " They run again with their attempts reset."
                        if action == "retry"
                        else " This cannot be undone."
                    )
                ),
                action=self.url(request, f"/jobs/all/{action}"),
                button=f"{verb} all {count:,}",
                danger=action == "delete",
                hidden={"state": state, "queue": queue or "", "next": f"/jobs?state={state}"},
                cancel=self.url(request, "/jobs", state=state, queue=queue),
            )
        assert isinstance(source, FormData)
        if action == "retry":
            n = await self.call(self.app.retry_all, state, queue)
            message = f"Queued {n:,} {where} to run now."
        else:
            n = await self.call(self.app.delete_all, state, queue)
            message = f"Deleted {n:,} {where}."
        return self.back(request, source, f"/jobs?state={state}", message)

    # -- login ----------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        state = security.session(request)
        default = "/"
        if not self.settings.can_log_in:
            return RedirectResponse(self.url(request, default), status_code=303)
        if request.method == "GET":
            nxt = _safe_next(request.query_params.get("next"), default)
            return self.render(request, "login.html", nav="login", next=nxt, error=None)
        form = await request.form()
        token = form.get(security.CSRF_FIELD)
        security.check_csrf(request, self.settings, token if isinstance(token, str) else None)
        nxt_value = form.get("next")
        nxt = _safe_next(nxt_value if isinstance(nxt_value, str) else None, default)
        given = form.get("password")
        if isinstance(given, str) and self.settings.check_secret(given):
            state.log_in()
            return RedirectResponse(self.url(request, nxt), status_code=303)
        await _slow_down()
        return self.render(
            request, "login.html", status=401, nav="login", next=nxt, error="Wrong password or token."
        )

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        token = form.get(security.CSRF_FIELD)
        security.check_csrf(request, self.settings, token if isinstance(token, str) else None)
        security.session(request).log_out()
        return RedirectResponse(self.url(request, "/login"), status_code=303)


def _here(request: Request) -> str:
    """The current page as a path inside the dashboard, for ``next=``."""
    path = get_route_path(request.scope) or "/"
    return path + ("?" + request.url.query if request.url.query else "")


def _who(request: Request) -> str:
    """Who asked, for a cancelled job's last error: the dashboard, and from where."""
    client = request.client.host if request.client else "?"
    return f"the dashboard (from {client})"


async def _slow_down() -> None:
    # A short pause after a wrong password makes guessing slow without locking anyone out.
    import asyncio

    await asyncio.sleep(0.25)
