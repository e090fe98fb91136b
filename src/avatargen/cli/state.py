"""Process-wide CLI state set by the root callback and read by commands."""

from __future__ import annotations

import sys

catalog_path: str | None = None


def json_requested() -> bool:
    # Errors raised before a command runs still honour --json on the command line.
    return "--json" in sys.argv[1:]


def load_catalog():
    from avatargen.catalog import load_catalog as _load

    return _load(catalog_path)
