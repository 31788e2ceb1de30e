"""Tabulate the fault suite's figures: ``python -m tests.faults.report FIGURES.jsonl``.

Prints a table (rich) per store and scenario, and writes it as Markdown to
``docs/reliability.md`` (``--out``), for the README's reliability section.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import orjson

from .figures import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
HEADERS = ("store", "scenario", "jobs", "kills", "lost", "duplicates", "time to recover (s)", "notes")
ORDER = {"sqlite": 0, "redis": 1, "postgres": 2, "redis-cluster": 3}
SCENARIOS = (
    "kill -9",
    "SIGTERM",
    "store restarted",
    "store unreachable",
    "poison",
    "timeout",
    "enqueue flood",
    "sentinel",
    "cluster",
    "full store",
    "pgbouncer",
)


def _scenario_rank(name: str) -> int:
    return next((i for i, prefix in enumerate(SCENARIOS) if name.startswith(prefix)), len(SCENARIOS))


def _short(value: Any) -> str:
    text = str(value).splitlines()[0] if str(value) else ""
    return text if len(text) <= 70 else text[:67] + "..."


#: Rows of scenarios that do not apply to a store, so the table still says so.
NOT_APPLICABLE = [
    {
        "store": "sqlite",
        "scenario": "store restarted (kill -9 of the server)",
        **dict.fromkeys(COLUMNS, "n/a"),
        "note": "embedded: no server",
    },
]


def load(path: Path) -> list[dict[str, Any]]:
    rows = NOT_APPLICABLE + [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # One row per store and scenario: the last run wins.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        latest[row["store"], row["scenario"]] = row
    return sorted(latest.values(), key=lambda r: (_scenario_rank(r["scenario"]), ORDER.get(r["store"], 9)))


def cells(row: dict[str, Any]) -> list[str]:
    notes = ", ".join(f"{k}={_short(v)}" for k, v in row.items() if k not in ("store", "scenario", *COLUMNS))
    return [row["store"], row["scenario"], *(str(row.get(c, "")) for c in COLUMNS), notes]


def markdown(rows: list[dict[str, Any]], full: bool) -> str:
    lines = [
        "# Reliability: the fault suite's figures",
        "",
        f"Measured by `{'make faults' if full else 'pytest tests/faults'}` "
        f"({'full sizes' if full else 'small sizes'}) on {time.strftime('%Y-%m-%d')}, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        "real servers (Redis with AOF fsync always, PostgreSQL), on a 2-core machine; lease",
        "1 s unless the notes say otherwise (`lease_s`).",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |" for row in rows]
    lines += [
        "",
        "*time to recover*: kill -9, the longest time from a kill until every job the killed",
        "worker held was back in the store; SIGTERM, how long the next worker took to finish the",
        "jobs handed back; store restart, from the server answering again until workers completed",
        "jobs again; unreachable store, how long the caller waited for its error; poison, until",
        "the job was dead and the other jobs done; timeout, from the run's start to its failure",
        "as the worker recorded them; flood, until the queue drained.",
        "*duplicates*: runs beyond the first (at-least-once delivery: only jobs in flight at a",
        "kill or a restart may run again).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("figures", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--notes", type=Path, help="Markdown appended after the table")
    args = parser.parse_args()
    rows = load(args.figures)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="conveyor fault suite", show_lines=False)
    for header in HEADERS:
        table.add_column(header, overflow="fold", max_width=None if header == "notes" else 34)
    for row in rows:
        table.add_row(*cells(row))
    Console(width=200).print(table)
    text = markdown(rows, args.full)
    if args.notes is not None and args.notes.exists():
        text += "\n" + args.notes.read_text()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
