"""Helpers shared by CLI tests."""

from __future__ import annotations

import sys


def run_main(monkeypatch, capsys, *args: str, debug: bool = False) -> tuple[int, str, str]:
    """The real entry point in-process (error formatting and exit codes included):
    returns (exit code, stdout, stderr)."""
    from avatargen.cli import main

    if debug:
        monkeypatch.setenv("AVATARGEN_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["avatargen", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
