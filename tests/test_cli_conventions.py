"""Conventions every command keeps: --json everywhere, --version, one-line errors with fixed exit
codes (JSON with --json, a traceback only with AVATARGEN_DEBUG=1), the exit-code table of docs/exit-codes.md,
and shell completion. The --json walk covers whatever is registered, so new commands are held to it."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from avatargen import __version__, errors
from avatargen.cli import app
from cli_helpers import run_main

REPO = Path(__file__).resolve().parents[1]


def _leaf_commands(command, path=("avatargen",)):
    """(command path, click command) for every runnable command, through nested groups."""
    children = getattr(command, "commands", None)
    if children is None:
        yield " ".join(path), command
        return
    for name, child in sorted(children.items()):
        yield from _leaf_commands(child, (*path, name))


# ---------------------------------------------------------------- --json on every command
def test_every_command_takes_json():
    root = typer.main.get_command(app)
    commands = list(_leaf_commands(root))
    # the foundation's own commands are there, so the walk really walks
    names = {path for path, _ in commands}
    assert {"avatargen models list", "avatargen models show", "avatargen config show"} <= names
    missing = [
        path
        for path, command in commands
        if not any("--json" in param.opts for param in command.params if hasattr(param, "opts"))
    ]
    assert missing == [], f"commands without --json: {missing}"


def test_every_json_flag_is_a_flag():
    for path, command in _leaf_commands(typer.main.get_command(app)):
        (param,) = [p for p in command.params if "--json" in getattr(p, "opts", ())]
        assert param.is_flag, path


# ---------------------------------------------------------------- --version
def test_version_through_python_m(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"avatargen {__version__}\n" and result.stderr == ""


def test_version_through_the_console_script(tmp_path):
    script = Path(sys.executable).with_name("avatargen")
    script = script if script.exists() else Path(shutil.which("avatargen") or "avatargen")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.strip() == f"avatargen {__version__}"


def test_version_in_process(cli):
    assert cli("--version").stdout == f"avatargen {__version__}\n"


# ---------------------------------------------------------------- error format and exit codes
@pytest.mark.slow
@pytest.mark.parametrize(
    "args, code, words",
    [
        (("config", "get", "tokn"), errors.USAGE, ["unknown config key 'tokn'"]),
        (("config", "set", "nope", "1"), errors.USAGE, ["unknown config key 'nope'"]),
        (("models", "show", "sdxl-ultra"), errors.USAGE, ["did you mean 'controlnet-openpose-sdxl-ultra'"]),
        (
            ("models", "list", "--bogus"),
            errors.USAGE,
            ["No such option: --bogus", "avatargen models list --help"],
        ),
        (("models", "list", "--tier", "gold"), errors.USAGE, ["unknown tier 'gold'"]),
        (("models", "show"), errors.USAGE, ["Missing argument"]),
        (
            ("--catalog", "/nonexistent/models.toml", "models", "list"),
            errors.CONFIG,
            ["catalog file not found"],
        ),
    ],
)
def test_errors_are_one_line_with_their_exit_code(run_cli, args, code, words):
    result = run_cli(*args)
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


@pytest.mark.slow
def test_json_errors_are_one_json_object_on_stderr(run_cli, avatargen_home):
    (avatargen_home / "config.toml").write_text("plan = \n", encoding="utf-8")
    result = run_cli("config", "get", "plan", "--json")
    assert result.returncode == errors.CONFIG and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert set(error) == {"type", "message", "hint", "exit_code"}
    assert error["type"] == "ConfigError" and error["exit_code"] == 3
    assert error["message"].startswith(f"{avatargen_home / 'config.toml'}: not valid TOML")
    usage = run_cli("models", "list", "--bogus", "--json")
    error = json.loads(usage.stderr)["error"]
    assert usage.returncode == 2 and error["type"] == "UsageError" and "--bogus" in error["message"]


@pytest.mark.slow
def test_debug_shows_the_traceback(run_cli, avatargen_home):
    (avatargen_home / "config.toml").write_text("plan = \n", encoding="utf-8")
    result = run_cli("config", "get", "plan", env={"AVATARGEN_DEBUG": "1"})
    assert result.returncode == errors.CONFIG
    assert "Traceback (most recent call last)" in result.stderr and "ConfigError" in result.stderr
    last = result.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"error: {avatargen_home / 'config.toml'}: not valid TOML")
    quiet = run_cli("config", "get", "plan", env={"AVATARGEN_DEBUG": "0"})
    assert "Traceback" not in quiet.stderr


def test_a_bug_is_one_line_too(monkeypatch, capsys):
    from avatargen.cli import context

    def broken(_ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(context, "load_catalog", broken)
    code, out, err = run_main(monkeypatch, capsys, "models", "list")
    assert code == errors.INTERNAL == 70
    assert out == "" and err.count("\n") == 1 and "unexpected RuntimeError: boom" in err
    assert "AVATARGEN_DEBUG=1" in err and "Traceback" not in err
    code, _, err = run_main(monkeypatch, capsys, "models", "list", debug=True)
    assert code == 70 and "Traceback (most recent call last)" in err and "RuntimeError: boom" in err


def test_ctrl_c_exits_130(monkeypatch, capsys):
    from avatargen.cli import context

    def interrupted(_ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(context, "load_catalog", interrupted)
    code, out, _ = run_main(monkeypatch, capsys, "models", "list")
    assert code == errors.INTERRUPTED == 130 and out == ""


def test_success_exits_0_in_process(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "models", "list", "-q")
    assert code == 0 and err == "" and len(out.split()) == 5


def test_error_class_codes_are_the_table():
    classes = {
        errors.UsageError: 2,
        errors.ConfigError: 3,
        errors.CatalogError: 3,
        errors.CreditsError: 4,
        errors.InputError: 5,
        errors.ModelUnavailable: 6,
        errors.AuthError: 7,
        errors.NetworkError: 8,
        errors.ProviderError: 9,
        errors.LimitError: 10,
        errors.MissingExtra: 11,
        errors.ModelLoadError: 6,
        errors.OutputError: 74,
        errors.InternalError: 70,
        errors.Interrupted: 130,
        errors.HangUp: 129,
        errors.Terminated: 143,
    }
    for cls, code in classes.items():
        assert cls.exit_code == code and code in errors.EXIT_CODES, cls
    assert set(errors.EXIT_CODES) == set(classes.values()) | {errors.OK, errors.PARTIAL}
    one = errors.UsageError("bad\nthing", "do\n  this").one_line()
    assert one == "error: bad thing — do this"


# ---------------------------------------------------------------- README
def _readme_exit_codes() -> dict[int, str]:
    text = (REPO / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.fullmatch(r"#{1,6}\s+Exit codes\s*", line.strip())]
    assert starts, "docs/exit-codes.md has no heading 'Exit codes'"
    rows: dict[int, str] = {}
    for line in lines[starts[0] + 1 :]:
        if line.startswith("#"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0].strip("`").isdigit():
            rows[int(cells[0].strip("`"))] = " ".join(cells[1].replace("`", "").split())
        elif rows and not line.strip():
            break  # the end of the first table
    return rows


def test_readme_exit_code_table_matches_the_code():
    """docs/exit-codes.md must have a heading named exactly "Exit codes" (any level) followed by a Markdown
    table whose rows are `| code | meaning |` (a header row and a `|---|---|` row first): one row
    per code of `errors.EXIT_CODES`, no other codes, each meaning the same text as in
    EXIT_CODES (backticks and line wrapping aside). Change both together."""
    rows = _readme_exit_codes()
    assert sorted(rows) == sorted(errors.EXIT_CODES), f"docs/exit-codes.md codes {sorted(rows)}"
    for code, meaning in errors.EXIT_CODES.items():
        assert rows[code] == " ".join(meaning.split()), code


# ---------------------------------------------------------------- completion
def test_shell_completion_is_offered(cli):
    text = cli("--help").stdout
    assert "--show-completion" in text and "--install-completion" in text


def test_completion_script_is_generated(tmp_path):
    """`--show-completion` names the shell it runs under (Typer asks shellingham, which walks the
    parent processes): run it from a real bash, as a user does, so the test holds whatever
    started pytest (a terminal, CI, or a detached process with no shell above it). The trailing
    `exit` keeps bash from exec'ing the CLI in its own place."""
    bash = shutil.which("bash")
    assert bash, "bash is needed (CI runs .ci/run with it)"
    command = f"{shlex.quote(sys.executable)} -m avatargen --show-completion; exit $?"
    result = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "_AVATARGEN_COMPLETE" in result.stdout and "complete " in result.stdout  # bash's own syntax


@pytest.mark.slow
def test_version_as_json(run_cli):
    result = run_cli("--version", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"version": __version__}
