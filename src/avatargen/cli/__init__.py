"""The `avatargen` command line: a thin Typer layer over the modules that do the work.

Each command group lives in its own module. Heavy libraries (httpx, Pillow, sqlite3, tenacity,
diffusers) are imported inside the commands that need them so `--help` and `models list`
start fast (tests/test_startup.py checks it).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from avatargen import __version__, environment
from avatargen.cli import context
from avatargen.errors import (
    INTERRUPTED,
    AvatargenError,
    InternalError,
    StopSignal,
    UsageError,
    interrupted_by,
)

# Every command: name -> (module, attribute, kind). A run imports and builds only the command
# it names (building all of them costs more start-up than Typer itself); --help, completion
# and the tests get the whole app.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": ("generate", "generate", "command"),
    "retry": ("generate", "retry", "command"),
    "models": ("models", "app", "group"),
    "poses": ("poses", "app", "group"),
    "status": ("status", "status", "command"),
    "credits": ("credits", "app", "group"),
    "history": ("history", "app", "group"),
    "config": ("config", "app", "group"),
    "sheet": ("sheet", "sheet", "command"),
    "serve": ("serve", "serve", "command"),
    "endpoint": ("endpoint", "app", "group"),
    "api": ("api", "api", "command"),
    "worker": ("api", "worker", "command"),
    "users": ("users", "app", "group"),
}


def _version(value: bool) -> None:
    if value:
        if context.json_requested():
            from avatargen.output import emit_json

            emit_json({"version": __version__})
        else:
            print(f"avatargen {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", metavar="PATH", help="Extra catalog file merged over the others by key."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="JSON output (for --version; every command takes its own --json).")
    ] = False,
) -> None:
    ctx.obj = context.CliContext(catalog_path=catalog)


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with just `only` (the one a run asked for)."""
    import importlib

    built = typer.Typer(
        name="avatargen",
        help="Pose-guided avatars from photos with ControlNet OpenPose models, with an exact credit ledger.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    built.callback()(root)
    for name, (module_name, attribute, kind) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"avatargen.cli.{module_name}"), attribute)
        if kind == "group":
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


def _requested_command(argv: list[str]) -> str | None:
    """The command a command line names, when it can be told without building the app."""
    if os.environ.get(environment.COMPLETE):  # shell completion needs every command
        return None
    args = iter(argv)
    for arg in args:
        if arg == "--catalog":
            next(args, None)
        elif arg.startswith("--catalog=") or arg == "--json":
            continue
        elif arg.startswith("-"):
            return None  # --help, --version, completion options: the whole app
        else:
            return arg if arg in COMMANDS else None
    return None


def __getattr__(name: str):
    if name == "app":  # `from avatargen.cli import app`: the whole app, built once
        globals()["app"] = full = build_app()
        return full
    raise AttributeError(name)


def main() -> None:
    """Entry point: run the app, turning known errors into one line and a fixed exit code."""
    from avatargen.dotenv import load_dotenv_file

    load_dotenv_file()  # ./.env fills in variables the environment lacks (HUGGINGFACE_API_KEY...)
    debug = os.environ.get(environment.DEBUG, "") not in ("", "0")
    try:
        # Not standalone: Typer hands us its usage errors, so they follow our one-line
        # (or --json) error format too. (Typer itself turns Ctrl-C into exit code 130.)
        # prog_name: `python -m avatargen` speaks (help, hints, completion) as `avatargen`.
        runner = build_app(_requested_command(sys.argv[1:]))
        code = runner(prog_name="avatargen", standalone_mode=False)
    except AvatargenError as exc:
        _report(exc, debug)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort) as exc:  # Ctrl-C, SIGTERM/SIGHUP, or Ctrl-D at a prompt
        # Click turns a KeyboardInterrupt into Abort; the signal that caused it is its __cause__.
        cause = exc if isinstance(exc, StopSignal) else exc.__cause__
        error = interrupted_by(getattr(cause, "signum", None), "interrupted")
        _report(error, debug)
        sys.exit(error.exit_code)
    except typer.TyperException as exc:  # Typer's own errors: unknown option, missing argument...
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
            exc.show()
            sys.exit(exc.exit_code)
        from avatargen.cli.suggest import usage_error

        error = UsageError(*usage_error(exc))
        error.exit_code = exc.exit_code  # 2 for every usage error; Typer's file errors say 1
        _report(error, debug)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: still one line (AVATARGEN_DEBUG=1 shows the traceback)
        error = InternalError(
            f"unexpected {type(exc).__name__}: {exc}",
            "this is a bug in avatargen; rerun with AVATARGEN_DEBUG=1 and report the traceback",
        )
        _report(error, debug)
        sys.exit(error.exit_code)
    if code == INTERRUPTED:
        # Typer turns a KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP as StopSignal) raised outside
        # a batch into a silent 130: say it, with the signal's own code (143 for SIGTERM).
        from avatargen.cli import signals

        error = interrupted_by(signals.last_signal, "interrupted")
        _report(error, debug)
        sys.exit(error.exit_code)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)  # a typer.Exit(code) raised by a command


def _report(exc: AvatargenError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    if context.json_requested():
        import json

        sys.stderr.write(json.dumps({"error": exc.to_dict()}) + "\n")
    else:
        sys.stderr.write(exc.one_line() + "\n")
    sys.stderr.flush()
