"""`avatargen config show|get|set|unset|path`: config.toml, and where the token comes from."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli.options import Json

app = typer.Typer(help="Settings in config.toml (mode 0600).", no_args_is_help=True)


def _display(key: str, value):
    from avatargen.settings import SECRET_KEYS, mask

    return mask(str(value)) if key in SECRET_KEYS else value


@app.command("show")
def show(json_: Json = False) -> None:
    """All settings, the folders in use, and where the token comes from (masked)."""
    from avatargen import settings

    config = settings.load_config()
    values = {k: _display(k, v) for k, v in settings.flatten(config).items()}
    token = settings.find_token(config=config)
    report = {
        "config_file": str(settings.config_path()),
        "data_dir": str(settings.data_dir()),
        "settings": values,
        "token": {
            "found": token.found,
            "source": token.source,
            "masked": token.token.masked() if token.token else None,
        },
    }
    if json_:
        from avatargen.output import emit_json

        emit_json(report)
        return
    from avatargen.output import result_console

    console = result_console()
    console.print(f"config file: {report['config_file']}", markup=False, highlight=False)
    console.print(f"data folder: {report['data_dir']}", markup=False, highlight=False)
    if values:
        from avatargen.output import human

        for key, value in values.items():
            console.print(f"{key} = {human(value)}", markup=False, highlight=False)
    else:
        console.print("(no settings)", markup=False, highlight=False)
    token_line = f"token: {token.token.masked()} from {token.source}" if token.token else "token: none found"
    console.print(token_line, markup=False, highlight=False)


@app.command("get")
def get(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. endpoints.<model key>.")], json_: Json = False
) -> None:
    """One setting's value. Unset: nothing on stdout, a note on stderr, exit 0 (so
    `$(avatargen config get plan)` is empty rather than an error)."""
    from avatargen import settings

    settings.check_key(key)
    value = settings.get_value(key)
    shown = None if value is None else _display(key, value)
    if json_:
        from avatargen.output import emit_json

        emit_json({"key": key, "value": shown})
        return
    if value is None:
        from avatargen.output import info

        info(f"{key} is not set")
        return
    from avatargen.output import human

    if isinstance(value, dict):  # a table such as `endpoints`: one `key = value` line per setting
        for sub, subvalue in settings.flatten(value, key + ".").items():
            print(f"{sub} = {human(_display(sub, subvalue))}")
    else:
        print(human(shown))


# "-5" is a value to check (`config set credits.starter -5`), not an unknown option to refuse.
@app.command("set", context_settings={"ignore_unknown_options": True})
def set_(
    key: Annotated[str, typer.Argument(help="Dotted key; `avatargen config keys` lists them.")],
    value: Annotated[str, typer.Argument(help="The value.")],
    json_: Json = False,
) -> None:
    """Set one setting (the value is checked first)."""
    from avatargen import settings

    stored = settings.set_value(key, value)
    shown = _display(key, stored)
    if json_:
        from avatargen.output import emit_json

        emit_json({"key": key, "value": shown, "file": str(settings.config_path())})
    else:
        from avatargen.output import info

        info(f"set {key} = {shown} in {settings.config_path()}")


@app.command("unset")
def unset(key: Annotated[str, typer.Argument(help="Dotted key.")], json_: Json = False) -> None:
    """Remove one setting."""
    from avatargen import settings

    removed = settings.unset_value(key)
    if json_:
        from avatargen.output import emit_json

        emit_json({"key": key, "removed": removed})
    else:
        from avatargen.output import info

        info(f"unset {key}" if removed else f"{key} was not set")


@app.command("path")
def path(json_: Json = False) -> None:
    """Where avatargen keeps things: config, user catalog, ledger, tiny models, model cache."""
    from avatargen import settings

    places = settings.places()
    if json_:
        from avatargen.output import emit_json

        emit_json({name: str(where) for name, (where, _) in places.items()})
        return
    from avatargen.output import print_table

    rows = [[label, str(where)] for where, label in places.values()]
    print_table("", ["what", "path"], rows, detail=("path",), show_header=False)


@app.command("keys")
def keys(json_: Json = False) -> None:
    """The settings avatargen knows, with what each does."""
    from avatargen.settings import CONFIG_KEYS

    rows = {key: doc for key, (_, doc) in CONFIG_KEYS.items()}
    if json_:
        from avatargen.output import emit_json

        emit_json(rows)
    else:
        from avatargen.output import print_table

        print_table("", ["key", "meaning"], [[k, d] for k, d in rows.items()], detail=("meaning",))
