"""How the CLI prints: rich tables on a terminal, tab-separated lines in a pipe, JSON on request.

A table read in a terminal shortens free text (with an ellipsis) and leaves out the least
useful columns when narrow, but never shortens an id (ids are what one copies into the next
command); in a pipe every cell is whole, one row a line, tab-separated, with no
colour or box, for ``cut``, ``awk`` and spreadsheets.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

# click is imported by the functions that print: the worker takes plural() from here, and
# its first job waits for its imports (click is ~50 ms of them).


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def is_terminal() -> bool:
    return sys.stdout.isatty()


def echo_json(value: Any, *, indent: bool = False) -> None:
    import click

    option = orjson.OPT_INDENT_2 if indent else 0
    click.echo(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS).decode())


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    right: bool = False
    style: str | None = None
    #: Free text, shortened with an ellipsis down to ``least`` characters when the terminal
    #: is narrow; a column that cannot get that many is left out.
    least: int | None = None
    #: Which columns go first when even that is too wide: the highest ``drop``.
    drop: int = 0


def _cell(value: object) -> str:
    # One row a line: a tab or newline inside a cell would split it.
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    *,
    title: str | None = None,
    styles: Sequence[Sequence[str | None]] | None = None,
) -> None:
    """``rows`` under ``columns``: a rich table on a terminal, else tab-separated lines with a
    header line (no title). ``styles`` gives an optional rich style per cell."""
    import click

    if not is_terminal():
        click.echo("\t".join(c.name for c in columns))
        for row in rows:
            click.echo("\t".join(_cell(v) for v in row))
        return
    from rich.console import Console

    console = Console()
    console.print(build_table(columns, rows, console.width, title=title, styles=styles))


def build_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    width: int,
    *,
    title: str | None = None,
    styles: Sequence[Sequence[str | None]] | None = None,
) -> Any:
    """The rich table of ``rows`` fitted to ``width`` characters (see ``_fit``)."""
    from rich.table import Table
    from rich.text import Text

    natural = [max([len(c.name), *(len(str(row[i])) for row in rows)]) for i, c in enumerate(columns)]
    widths = _fit(columns, natural, width)
    table = Table(title=title, box=None, pad_edge=False, title_justify="left", header_style="bold underline")
    for i, size in widths.items():
        column = columns[i]
        table.add_column(
            column.name,
            justify="right" if column.right else "left",
            style=column.style,
            width=size,
            no_wrap=True,
        )
    for n, row in enumerate(rows):
        cells = []
        for i, size in widths.items():
            text = str(row[i])
            if len(text) > size:
                text = text[: size - 1] + "…"
            cells.append(Text(text, style=(styles[n][i] or "") if styles is not None else ""))
        table.add_row(*cells)
    return table


def _fit(columns: Sequence[Column], natural: Sequence[int], width: int) -> dict[int, int]:
    """The width of each column shown in ``width`` characters, by index: fixed columns at
    their natural width, free text at least at its ``least``, two spaces between columns;
    while that is too wide, the column with the highest ``drop`` is left out. Room left over
    goes to the free-text columns, in order, up to their natural widths."""
    shown = list(range(len(columns)))

    def floor(i: int) -> int:
        least = columns[i].least
        return natural[i] if least is None else min(natural[i], least)

    while sum(map(floor, shown)) + 2 * (len(shown) - 1) > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: columns[i].drop))
    widths = {i: floor(i) for i in shown}
    room = width - sum(widths.values()) - 2 * (len(shown) - 1)
    for i in shown:
        if room <= 0:
            break
        grow = min(room, natural[i] - widths[i])
        widths[i] += grow
        room -= grow
    return widths


def print_sections(
    heading: str,
    sections: Sequence[tuple[str, Sequence[tuple[str, str]]]],
    traceback: str | None = None,
    accent: str | None = None,
) -> None:
    """A record as titled sections of ``label  value`` lines, then its traceback: on a
    terminal with rules and the traceback highlighted, in a pipe as plain text."""
    import click

    width = max((len(label) for _, lines in sections for label, _ in lines), default=0)
    if not is_terminal():
        click.echo(heading)
        for title, lines in sections:
            click.echo(f"\n{title}")
            for label, value in lines:
                click.echo(f"  {label:<{width}}  {value}".rstrip() if label else f"  {value}")
        if traceback:
            click.echo("\ntraceback")
            click.echo(traceback.rstrip("\n"))
        return
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.text import Text

    console = Console()
    console.print(Text(heading, style=f"bold {accent or ''}"))
    for title, lines in sections:
        console.rule(Text(title, style="bold"), align="left")
        for label, value in lines:
            style = "red" if title == "error" else ""
            console.print(Text(f"  {label:<{width}}  " if label else "  ", style="dim") + Text(value, style))
    if traceback:
        console.rule(Text("traceback", style="bold"), align="left")
        console.print(Syntax(traceback.rstrip("\n"), "pytb", word_wrap=True, background_color="default"))
