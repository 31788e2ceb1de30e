"""Enqueue inside ``transaction.atomic()``: the job commits or rolls back with the block.

On the PostgreSQL store, when Django's database is that same PostgreSQL database and Django
talks to it through psycopg 3, the job's rows are written through Django's own connection,
inside its transaction (``EnqueuesInTransaction``). On any other store (or another database)
the job is checked and encoded at once, so a bad argument still raises in the caller, and
stored by ``transaction.on_commit``: the handle comes back at once with the job's id, and
the job exists from the commit on (never, if the block rolls back). Jobs with a unique key or
an expiry always wait for the commit, on every store: the store decides them one by one, which
cannot happen inside the caller's transaction; whether one was a duplicate is known only then,
so its handle, returned inside the block, keeps its own id.
Outside an atomic block nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from django.db import connections, transaction

from ...app import Conveyor, _lifecycle
from ...backends import EnqueuesInTransaction
from ...job import Job, JobRecord, new_id
from ...task import JobSpec

_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


class DjangoConveyor(Conveyor):
    """A ``Conveyor`` whose enqueues inside ``transaction.atomic()`` (of the Django database
    ``database``) join the transaction; see the module docstring."""

    def __init__(self, url: str | None = None, *, database: str = "default", **options: Any) -> None:
        super().__init__(url, **options)
        self.database = database
        self._same_database: bool | None = None

    def _enqueue_one(self, spec: JobSpec) -> Job:
        if connections[self.database].in_atomic_block:
            return self._enqueue_many([spec])[0]
        return super()._enqueue_one(spec)

    def _enqueue_many(self, specs: list[JobSpec], ids: list[str] | None = None) -> list[Job]:
        connection = connections[self.database]
        if (
            not specs
            or not connection.in_atomic_block
            or any(s.options.connection is not None for s in specs)
            # Jobs that wait for others are recorded by the store's own transaction, at once
            # (docs/workflows.md): they do not join Django's.
            or any(s.options.after is not None for s in specs)
        ):
            return super()._enqueue_many(specs, ids)
        # Unique and expiring jobs are decided by the store one by one, outside any caller's
        # transaction (see Conveyor._enqueue_many): they wait for the commit instead.
        if all(spec.options.plain for spec in specs) and self.joins_transactions(connection):
            joined = [spec._replace(options=replace(spec.options, connection=connection)) for spec in specs]
            return super()._enqueue_many(joined)
        return self._enqueue_on_commit(specs)

    def joins_transactions(self, connection: Any = None) -> bool:
        """True when jobs enqueued in an atomic block are written inside it (PostgreSQL, the
        same database as Django's, psycopg 3); False when they are stored on commit."""
        if self._same_database is None:
            connection = connection if connection is not None else connections[self.database]
            self._same_database = (
                isinstance(self.backend, EnqueuesInTransaction)
                and connection.vendor == "postgresql"
                and connection.Database.__name__ == "psycopg"
                and _same_database(self.url, connection.settings_dict)
            )
        return self._same_database

    def _enqueue_on_commit(self, specs: Sequence[JobSpec]) -> list[Job]:
        now = time.time()
        when = datetime.fromtimestamp(now, UTC)
        built = [
            self._build(spec, now, when, job_id)
            for spec, job_id in zip(specs, new_id.many(len(specs)), strict=True)
        ]
        records = [record for record, _ in built]
        jobs = [job for _, job in built]
        each = [n for n, spec in enumerate(specs) if not spec.options.plain]
        for n in each:
            _lifecycle(records[n], specs[n], now)
        transaction.on_commit(lambda: self._store(records, list(jobs), each), using=self.database)
        return jobs

    def _store(self, records: list[JobRecord], jobs: list[Job], each: list[int]) -> None:
        for mw in self.middleware:
            mw.before_enqueue(records)
        if each:
            self._enqueue_each(records, jobs, each)
        else:
            self.backend.enqueue(records, self.max_queue_length)
        for mw in self.middleware:
            mw.after_enqueue(records)


def _same_database(url: str, django_db: dict[str, Any]) -> bool:
    """Whether a ``postgresql://`` store URL names the database Django's settings name:
    the same database name, port and host (any loopback spelling counts as one)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    django_host = str(django_db.get("HOST") or "").lower()
    if host != django_host and not (host in _LOOPBACK and django_host in _LOOPBACK):
        return False
    port = parts.port or 5432
    django_port = int(django_db.get("PORT") or 5432)
    return port == django_port and unquote(parts.path.lstrip("/")) == django_db.get("NAME")
