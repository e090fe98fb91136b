"""The "did you mean" of an unknown option: the one closest option of the command, when one is
close, instead of Click's alphabetical list of loose matches (`retry --steps` offered
`--help, --yes`); for `retry`, an option only `generate` has is named as such."""

from __future__ import annotations

import difflib
from typing import Any

_CLOSE = 0.75  # difflib ratio: --step / --steps 0.92, --stepz / --seed 0.55


def usage_error(exc: Any) -> tuple[str, str | None]:
    """(message, hint) of a Click usage error, the unknown-option case rewritten."""
    ctx = getattr(exc, "ctx", None)
    see = f"see '{ctx.command_path} --help'" if ctx is not None else None
    name = getattr(exc, "option_name", None)
    if type(exc).__name__ != "NoSuchOption" or not name or ctx is None:
        return exc.format_message(), see
    options = [
        opt for param in ctx.command.params for opt in getattr(param, "opts", ()) if opt.startswith("-")
    ]
    close = difflib.get_close_matches(name, options, n=1, cutoff=_CLOSE)
    message = f"No such option: {name}"  # Click's words, without its loose list
    if close:
        return message, f"did you mean {close[0]}? {see}"
    if ctx.command.name == "retry" and name in _generate_options(ctx):
        return (
            f"{message} for retry: it re-runs the batch's jobs as they were planned",
            f"{name} is an option of `avatargen generate`: run the generate command again with it; {see}",
        )
    return message, see


def _generate_options(_ctx: Any) -> set[str]:
    """The option names of `generate`, read off its signature (the app may be built without it)."""
    import inspect
    import typing

    from avatargen.cli.generate import generate

    names: set[str] = set()
    hints = typing.get_type_hints(generate, include_extras=True)
    for param in inspect.signature(generate).parameters:
        for extra in getattr(hints.get(param), "__metadata__", ()):
            # typer.Option("--pose", "-p"): the first name is kept as its `default`
            decls = [getattr(extra, "default", None), *(getattr(extra, "param_decls", None) or ())]
            names.update(d for d in decls if isinstance(d, str) and d.startswith("-"))
    return names
