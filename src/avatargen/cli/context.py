"""What the root callback hands the commands: kept on Typer's context (ctx.obj), never in a
module global, and read through it by the commands that need it."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class CliContext:
    catalog_path: str | None = None  # --catalog PATH, merged over the other catalog files


def json_requested() -> bool:
    # Errors raised before a command runs still honour --json on the command line.
    return "--json" in sys.argv[1:]


def load_catalog(ctx: typer.Context):
    """The catalog, with the root's --catalog file merged in."""
    from avatargen.catalog import load_catalog as _load

    given = ctx.find_root().obj
    return _load(given.catalog_path if isinstance(given, CliContext) else None)
