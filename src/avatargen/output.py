"""Where things are printed: results on stdout, everything else on stderr.

Commands print results through `emit_json` / `result_console()`; progress, hints and warnings
go through `err_console()`. Rich is imported lazily so a JSON-only run does not pay for it.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

from avatargen import environment


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


def _styled_stderr() -> bool:
    """Whether stderr gets colour: a terminal, or FORCE_COLOR (rich's own rule, NO_COLOR included)."""
    import os

    from avatargen.quiet import stderr_is_terminal  # a replaced or closed stderr is no terminal

    return (stderr_is_terminal() or bool(os.environ.get(environment.FORCE_COLOR))) and not os.environ.get(
        environment.NO_COLOR
    )


def _plain_line(text: str) -> None:
    # Plain text needs no rich: a script's run (stderr to a pipe or a file) never imports it.
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    if _styled_stderr():
        err_console().print(f"[yellow]warning:[/] {message}", markup=True, highlight=False, emoji=False)
    else:
        _plain_line(f"warning: {message}")


def info(message: str) -> None:
    """A line on stderr as it is: no markup, no emoji codes, no highlighting."""
    _plain_line(message)


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
    On a terminal: a boxed table when every word fits. `detail` columns (free text: paths,
    errors, notes) wrap at word boundaries while the other columns keep their full width. When a
    word would have to be folded, the short columns stay on the row's line and the details go on
    indented lines of their own below it (folded only when a word is wider than the terminal;
    never cut with '…'). Drawn here rather than by Rich: a listing on a terminal then starts as
    fast as in a pipe (Rich's console and table cost more than the command itself)."""
    rows = [[_one_line(cell) for cell in row] for row in rows]
    if not stdout_is_terminal():
        lines = ([columns] if show_header else []) + rows
        sys.stdout.write("".join("\t".join(line) + "\n" for line in lines))
        sys.stdout.flush()
        return
    width = terminal_width()
    natural = [
        max([cell_width(c) if show_header else 0, *(cell_width(r[i]) for r in rows)])
        for i, c in enumerate(columns)
    ]
    if _table_fits(columns, rows, natural, detail, width):
        text = _boxed(title, columns, rows, natural, right, detail, show_header, width)
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        _stacked(title, columns, rows, natural, right, detail, show_header, width)


def terminal_width() -> int:
    """The terminal's columns (COLUMNS first, as Rich reads it), 80 when unknown. Not
    shutil.get_terminal_size: importing shutil loads the compression modules."""
    import os

    columns = os.environ.get(environment.COLUMNS, "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def cell_width(text: str) -> int:
    """Columns a string takes on a terminal: wide (CJK, emoji) characters take two, combining
    marks none."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def _table_fits(columns, rows, natural, detail, width) -> bool:
    """Whether a boxed table can show every cell without folding a word: everything fits as is,
    or the detail columns, sharing what the others leave, are wider than their longest word."""
    frame = 3 * len(columns) + 1  # borders and one space of padding on each side of a cell
    if sum(natural) + frame <= width:
        return True
    spots = [i for i, c in enumerate(columns) if c in detail]
    if not spots:
        return False
    room = (width - frame - sum(n for i, n in enumerate(natural) if i not in spots)) // len(spots)
    longest_word = max(
        (cell_width(word) for row in rows for i in spots for word in row[i].split()), default=0
    )
    return room >= max(MIN_DETAIL_WIDTH, longest_word)


def _one_line(cell: Any) -> str:
    # A tab or newline inside a cell would break the one-line-per-row promise of the plain form.
    return " ".join(str(cell).split()) if any(ch in str(cell) for ch in "\t\r\n") else str(cell)


# Rich's HEAVY_HEAD box, and plain ASCII for a terminal whose encoding cannot show it.
_BOXES = {
    "unicode": ("┏━┳┓", "┃┃┃", "┡━╇┩", "┌─┬┐", "│││", "└─┴┘"),
    "ascii": ("+-++", "|||", "+=++", "+-++", "|||", "+-++"),
}


def _box_chars() -> tuple[str, ...]:
    try:
        "┏━┃┡╇└─│".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _BOXES["ascii"]
    return _BOXES["unicode"]


def _styled(text: str, code: str) -> str:
    """Bold/italic as Rich would show them, where the terminal has attributes at all."""
    import os

    if os.environ.get(environment.TERM) == "dumb":
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def _boxed(title, columns, rows, natural, right, detail, show_header, width) -> str:
    """A table in a box, one line per row unless a detail column wraps (at word boundaries)."""
    sizes = list(natural)
    frame = 3 * len(columns) + 1
    spots = [i for i, c in enumerate(columns) if c in detail]
    excess = sum(sizes) + frame - width
    while excess > 0 and spots:  # shrink the widest detail column a column at a time
        widest = max(spots, key=lambda i: sizes[i])
        if sizes[widest] <= MIN_DETAIL_WIDTH:
            break
        sizes[widest] -= 1
        excess -= 1
    top, head, head_rule, plain_top, body, bottom = _box_chars()

    def rule(chars: str) -> str:
        left, fill, cross, end = chars
        return left + cross.join(fill * (n + 2) for n in sizes) + end

    def lines_of(cells: list[str], edges: str, header: bool = False) -> list[str]:
        wrapped = [_wrap(cell, sizes[i]) if columns[i] in detail else [cell] for i, cell in enumerate(cells)]
        out = []
        for k in range(max(len(w) for w in wrapped)):
            parts = []
            for i, pieces in enumerate(wrapped):
                text = pieces[k] if k < len(pieces) else ""
                pad = " " * (sizes[i] - cell_width(text))
                text = pad + text if columns[i] in right else text + pad
                parts.append(_styled(text, "1") if header and text.strip() else text)
            out.append(edges[0] + " " + f" {edges[1]} ".join(parts) + " " + edges[2])
        return out

    out = [_styled(title, "3")] if title else []
    if show_header:
        out.append(rule(top))
        out += lines_of(columns, head, header=True)
        out.append(rule(head_rule))
    else:
        out.append(rule(plain_top))
    for row in rows:
        out += lines_of(row, body)
    out.append(rule(bottom))
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    """Words on lines of at most `width` terminal columns; a word wider than that is folded."""
    lines: list[str] = []
    line, used = "", 0
    for word in text.split():
        size = cell_width(word)
        while size > width:  # only a word wider than the column: fold it
            if line:
                lines.append(line)
                line, used = "", 0
            cut, taken = 0, 0
            while cut < len(word) and taken + cell_width(word[cut]) <= width:
                taken += cell_width(word[cut])
                cut += 1
            lines.append(word[:cut])
            word, size = word[cut:], size - taken
        if not word:
            continue
        if line and used + 1 + size > width:
            lines.append(line)
            line, used = "", 0
        line, used = (f"{line} {word}", used + 1 + size) if line else (word, size)
    if line or not lines:
        lines.append(line)
    return lines


def _stacked(title, columns, rows, natural, right, detail, show_header, width) -> None:
    """A narrow terminal: the short columns aligned, the rest of each row indented below it.
    When even the short columns are too wide, the widest of them join the lines below."""
    import textwrap

    kept = [i for i, c in enumerate(columns) if c not in detail]
    while len(kept) > 1 and sum(natural[i] + 2 for i in kept) - 2 > width:
        kept.remove(max(kept[1:], key=lambda i: natural[i]))  # the first column names the row
    sizes = {i: natural[i] for i in kept}

    def aligned(cells: list[str]) -> str:
        pads = {i: " " * (sizes[i] - cell_width(cells[i])) for i in kept}  # by display width
        parts = [pads[i] + cells[i] if columns[i] in right else cells[i] + pads[i] for i in kept]
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
