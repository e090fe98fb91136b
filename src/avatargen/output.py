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


def human(value: Any) -> str:
    """A value as a person reads it: never a Python repr (None, dicts, lists, quotes)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {human(item)}" for key, item in value.items()) or "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(human(item) for item in value) or "-"
    return str(value)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


# A wrapping (detail) column narrower than this is unreadable: below it, details get lines of their own.
MIN_DETAIL_WIDTH = 20


def print_table(
    title: str,
    columns: list[str],
    rows: list[list[str]],
    *,
    right: tuple[str, ...] = (),
    detail: tuple[str, ...] = (),
    show_header: bool = True,
) -> None:
    """The one way avatargen prints a table of results on stdout.

    In a pipe (or a file): tab-separated columns, one line per row, nothing cut or folded, no
    title, so `cut -f`, `grep` and `awk -F'\\t'` work; a header line unless `show_header` is off.
    On a terminal: a Rich table when every word fits. `detail` columns (free text: paths,
    errors, notes) wrap at word boundaries while the other columns keep their full width. When a
    word would have to be folded, the short columns stay on the row's line and the details go on
    indented lines of their own below it (folded only when a word is wider than the terminal;
    never cut with '…')."""
    rows = [[_one_line(cell) for cell in row] for row in rows]
    if not stdout_is_terminal():
        lines = ([columns] if show_header else []) + rows
        sys.stdout.write("".join("\t".join(line) + "\n" for line in lines))
        sys.stdout.flush()
        return
    width = result_console().width
    natural = [max([len(c) if show_header else 0, *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    if _table_fits(columns, rows, natural, detail, width):
        _rich_table(title, columns, rows, natural, right, detail, show_header)
    else:
        _stacked(title, columns, rows, natural, right, detail, show_header, width)


def _table_fits(columns, rows, natural, detail, width) -> bool:
    """Whether a Rich table can show every cell without folding a word: everything fits as is,
    or the detail columns, sharing what the others leave, are wider than their longest word."""
    frame = 3 * len(columns) + 1  # Rich's borders and one space of padding on each side of a cell
    if sum(natural) + frame <= width:
        return True
    spots = [i for i, c in enumerate(columns) if c in detail]
    if not spots:
        return False
    room = (width - frame - sum(n for i, n in enumerate(natural) if i not in spots)) // len(spots)
    longest_word = max((len(word) for row in rows for i in spots for word in row[i].split()), default=0)
    return room >= max(MIN_DETAIL_WIDTH, longest_word)


def _one_line(cell: Any) -> str:
    # A tab or newline inside a cell would break the one-line-per-row promise of the plain form.
    return " ".join(str(cell).split()) if any(ch in str(cell) for ch in "\t\r\n") else str(cell)


def _rich_table(title, columns, rows, natural, right, detail, show_header) -> None:
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", show_header=show_header)
    for name, size in zip(columns, natural, strict=True):
        justify = "right" if name in right else "left"
        if name in detail:
            table.add_column(name, justify=justify, overflow="fold", min_width=MIN_DETAIL_WIDTH)
        else:
            # A fixed width: Rich shrinks only the detail columns, so ids and numbers stay whole.
            table.add_column(name, justify=justify, overflow="fold", width=max(size, 1))
    for row in rows:
        table.add_row(*row)
    result_console().print(table)


def _stacked(title, columns, rows, natural, right, detail, show_header, width) -> None:
    """A narrow terminal: the short columns aligned, the rest of each row indented below it.
    When even the short columns are too wide, the widest of them join the lines below."""
    import textwrap

    kept = [i for i, c in enumerate(columns) if c not in detail]
    while len(kept) > 1 and sum(natural[i] + 2 for i in kept) - 2 > width:
        kept.remove(max(kept[1:], key=lambda i: natural[i]))  # the first column names the row
    sizes = {i: natural[i] for i in kept}

    def aligned(cells: list[str]) -> str:
        parts = [cells[i].rjust(sizes[i]) if columns[i] in right else cells[i].ljust(sizes[i]) for i in kept]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    if not show_header and kept == [0]:  # a key/value table: `key: value`, wrapped under itself
        for row in rows:
            text = f"{row[0]}: " + "  ".join(cell for cell in row[1:] if cell)
            out.extend(
                textwrap.wrap(text, width=max(width, 20), subsequent_indent="    ", break_on_hyphens=False)
            )
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()
        return
    if show_header and kept:
        out.append(aligned(columns))
    for row in rows:
        if kept:
            out.append(aligned(row))
        for i, name in enumerate(columns):
            if i not in kept and row[i]:
                out.extend(
                    textwrap.wrap(
                        f"{name}: {row[i]}" if show_header else row[i],
                        width=max(width, 20),
                        initial_indent="    ",
                        subsequent_indent="      ",
                        break_on_hyphens=False,
                    )
                )
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()
