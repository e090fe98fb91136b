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
