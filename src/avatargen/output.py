"""Where things are printed: results on stdout, everything else on stderr.

Commands print results through `emit_json` / `result_console()`; progress, hints and warnings
go through `err_console()`. Rich is imported lazily so a JSON-only run does not pay for it.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any


def emit_json(data: Any) -> None:
    """One JSON document (or one JSON line) on stdout, flushed at once for pipes."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


@cache
def result_console():
    from rich.console import Console

    return Console(soft_wrap=True)


@cache
def err_console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def warn(message: str) -> None:
    err_console().print(f"[yellow]warning:[/] {message}", markup=True, highlight=False)


def info(message: str) -> None:
    err_console().print(message, markup=False, highlight=False)


def print_table(title: str, columns: list[str], rows: list[list[str]], right: tuple[str, ...] = ()) -> None:
    """A table on stdout: drawn by Rich on a terminal; in a pipe, plain aligned columns, one line
    per row (nothing folded, easy to grep or cut, and no Rich import on the way)."""
    if sys.stdout.isatty():
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left", overflow="fold")
        for row in rows:
            table.add_row(*row)
        result_console().print(table)
        return
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
    lines = [columns, *rows]
    out = []
    for line in lines:
        cells = [
            cell.rjust(w) if col in right else cell.ljust(w)
            for cell, w, col in zip(line, widths, columns, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
