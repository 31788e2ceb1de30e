"""A FastAPI app with conveyor: enqueue in a handler, the dashboard mounted, and (for small
deployments) a worker in the same process, started and stopped by the app's lifespan.

    CONVEYOR_URL=sqlite:///jobs.db CONVEYOR_DASHBOARD_TOKEN=s3cret \\
    CONVEYOR_IN_PROCESS_WORKER=1 uvicorn examples.fastapi_app:api

Without ``CONVEYOR_IN_PROCESS_WORKER`` the web process only enqueues, and workers run on their
own: ``conveyor worker examples.fastapi_app:jobs``. The in-process worker runs in a thread
beside the event loop (async tasks on its own loop); at shutdown the lifespan stops it, and
running jobs get its grace period to finish, as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from conveyor import Conveyor

jobs = Conveyor()  # the store from $CONVEYOR_URL


@jobs.task(queue="mail", retries=5)
def send_welcome(email: str) -> str:
    return f"welcome sent to {email}"


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    if not os.environ.get("CONVEYOR_IN_PROCESS_WORKER"):
        yield
        return
    worker = jobs.worker(concurrency=4, grace=10)
    running = asyncio.create_task(asyncio.to_thread(worker.run))
    try:
        yield
    finally:
        worker.stop()
        await running


api = FastAPI(lifespan=lifespan)
# The dashboard asks for $CONVEYOR_DASHBOARD_TOKEN (or a password) on every page.
api.mount("/jobs", jobs.dashboard())


@api.post("/signup", status_code=202)
async def signup(email: str) -> dict[str, str]:
    # The async client: the store round-trip never blocks the event loop.
    job = await send_welcome.aenqueue(email)
    return {"job": job.id}


@api.get("/signup/{job_id}")
async def signup_status(job_id: str) -> dict[str, Any]:
    job = await jobs.aget_job(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return {"state": job.state, "result": job.return_value}
