"""A page of an admin listing, as ``Conveyor.jobs_page`` returns it."""

from __future__ import annotations

from dataclasses import dataclass

from .job import Job


@dataclass(frozen=True, slots=True)
class JobPage:
    """Jobs of one page and how to go on.

    ``next`` is the cursor of the following page (pass it as ``after=``), None on the last.
    A search reads at most a bounded number of jobs: ``scanned`` says how many it read to
    fill this page, and ``stopped`` is True when it gave up at that bound, not at the end of
    the listing (the jobs past ``next`` were not looked at; asking for the next page goes on
    from there)."""

    jobs: list[Job]
    next: str | None
    scanned: int | None = None
    stopped: bool = False
