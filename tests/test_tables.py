"""Tables in pipes and on narrow terminals, through the real CLI; and no Python reprs in what a
person reads.

In a pipe every table is tab-separated columns, one line per row, nothing cut. On a terminal
(a real pty, its width from COLUMNS) long cells wrap or fold, and ids and numbers stay whole."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from avatargen.ledger import open_ledger
from cli_helpers import run_main

LONG_ERROR = (
    "photos/holiday/2024/very-long-folder-name/IMG_20240817_153012_trunc.jpg: corrupt or truncated "
    "image (Truncated File Read) — re-export the photo from your camera app and try again"
)
LONG_NOTE = "October top-up for the marketing team's avatar campaign, approved by finance on the 3rd"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def job(key: str, **overrides) -> dict:
    record = {
        "job_key": key,
        "input_path": "photos/holiday/2024/very-long-folder-name/IMG_20240817_153012_trunc.jpg",
        "input_hash": "h" * 64,
        "pose": "wave",
        "model": "avatar-generator:controlnet-openpose-sd15",
        "params": {"steps": 20, "prompt": "an avatar", "strength": None},
        "seed": 1869226934,
        "output_path": "avatars/IMG_20240817_153012_trunc-wave-controlnet-openpose-sd15-1869226934.png",
    }
    record.update(overrides)
    return record


@pytest.fixture
def ledger_with_history():
    """One done job, one failed with a long error, and a top-up with a long note."""
    with open_ledger() as ledger:
        ledger.enqueue(job("feedbeef01", input_path="photos/ok.jpg", output_path="avatars/ok.png"), "b1")
        ledger.reserve("feedbeef01", "avatar-generator:controlnet-openpose-sd15", 3, "b1")
        ledger.mark_done("feedbeef01", "avatar-generator:controlnet-openpose-sd15", 1, 1.25)
        ledger.enqueue(job("badcafe02"), "b1")
        ledger.mark_failed("badcafe02", LONG_ERROR)
        ledger.grant(500, LONG_NOTE)


def on_a_pty(argv: list[str], columns: int, cwd, **extra_env: str) -> tuple[str, bytes, int]:
    """Run `argv` with stdout on a pseudo-terminal `columns` wide: (its screen without ANSI codes,
    its stderr, its exit code). `extra_env` is added to the environment."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = dict(os.environ, **extra_env, TERM="xterm", PYTHONIOENCODING="utf-8")
    env.pop("COLUMNS", None)  # the width comes from the terminal, as it does for a person
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=60)
    return ANSI.sub("", b"".join(chunks).decode("utf-8").replace("\r\n", "\n")), err, proc.returncode


def in_terminal(args: list[str], columns: int, cwd) -> str:
    """The real CLI with stdout on a pseudo-terminal `columns` wide: what a person sees."""
    screen, err, returncode = on_a_pty([sys.executable, "-m", "avatargen", *args], columns, cwd, NO_COLOR="1")
    assert returncode == 0, err
    return screen


def words_of(text: str) -> list[str]:
    return text.split()


# ---------------------------------------------------------------- pipes
def test_history_in_a_pipe_is_one_tab_separated_line_per_job(run_cli, ledger_with_history):
    result = run_cli("history")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header, *rows = [line.split("\t") for line in lines]
    assert header[:4] == ["id", "status", "input", "pose"]
    assert header[4:] == ["model", "seed", "seconds", "credits", "output / error"]
    assert len(rows) == 2 and all(len(row) == len(header) for row in rows)
    failed = next(row for row in rows if row[1] == "failed")
    assert failed[-1] == LONG_ERROR  # whole, on its own line, not wrapped into pieces
    assert failed[2] == job("x")["input_path"] and failed[5] == "1869226934"
    assert "…" not in result.stdout and "│" not in result.stdout


def test_credits_history_in_a_pipe_keeps_the_note_whole(run_cli, ledger_with_history):
    result = run_cli("credits", "history")
    assert result.returncode == 0, result.stderr
    header, *rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert header == ["time", "kind", "amount", "model", "job", "note"]
    assert all(len(row) == 6 for row in rows)
    grant = next(row for row in rows if row[1] == "grant" and row[2] == "500")
    assert grant[5] == LONG_NOTE


@pytest.mark.slow
def test_credits_and_models_show_in_a_pipe_are_key_tab_value(run_cli, ledger_with_history):
    balance = run_cli("credits")
    assert balance.returncode == 0, balance.stderr
    pairs = dict(line.split("\t") for line in balance.stdout.splitlines())
    assert pairs["balance"] == "597" and pairs["spent today"] == "3"
    assert pairs["spent on controlnet-openpose-sd15"] == "3 today / 3 this month"

    shown = run_cli("models", "show", "controlnet-openpose-sdxl-ultra")
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split("\t") for line in shown.stdout.splitlines())
    # Keys were cut with '…' by an 80-column Rich table; now every key and value is whole.
    assert fields["huggingface_model"] == "xinsir/controlnet-openpose-sdxl-1.0"
    assert fields["modelKey"] == "avatar-generator:controlnet-openpose-sdxl-ultra"
    assert fields["defaults.negative_prompt"] == "ugly, blurry, low quality, distorted"
    assert "…" not in shown.stdout


@pytest.mark.slow
def test_every_table_is_plain_in_a_pipe(run_cli):
    for args in (["models", "list"], ["poses", "list"], ["config", "keys"], ["config", "path"]):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines and all("\t" in line for line in lines), args
        assert len({line.count("\t") for line in lines}) == 1, args  # the same columns on every line
        assert not any(ch in result.stdout for ch in "…│┃━─"), args


def test_a_newline_in_a_cell_does_not_break_the_row(run_cli):
    with open_ledger() as ledger:
        ledger.enqueue(job("0dd1ine"), "b1")
        ledger.mark_failed("0dd1ine", "the server said:\n500\tInternal Server Error")
    lines = run_cli("history").stdout.splitlines()
    assert len(lines) == 2 and lines[1].endswith("\tthe server said: 500 Internal Server Error")


# ---------------------------------------------------------------- terminals
def test_history_on_a_narrow_terminal_keeps_every_word(tmp_path, ledger_with_history):
    screen = in_terminal(["history"], 60, tmp_path)
    assert all(len(line) <= 60 for line in screen.splitlines()), screen
    # Nothing cut, no word broken into 5-character pieces: every word of the error is on screen.
    for word in words_of(LONG_ERROR.split(": ", 1)[1]):
        assert word in words_of(screen), (word, screen)
    assert "…" not in screen
    assert "1869226934" in words_of(screen)  # ids and numbers stay whole
    assert screen.count("\n") < 25, screen  # not ~40 lines of a cell wrapped 5 characters wide


def test_history_on_a_wide_terminal_is_a_table_with_one_line_per_job(tmp_path, ledger_with_history):
    screen = in_terminal(["history"], 400, tmp_path)
    rows = [line for line in screen.splitlines() if "badcafe" in line or "failed" in line]
    assert len(rows) == 1 and LONG_ERROR in rows[0] and "│" in rows[0]


def test_models_show_on_a_narrow_terminal_wraps_values_not_keys(tmp_path):
    screen = in_terminal(["models", "show", "controlnet-openpose-sdxl-ultra"], 60, tmp_path)
    assert all(len(line) <= 60 for line in screen.splitlines()), screen
    for key in ("huggingface_model", "baseModelOriginal", "defaults.controlnet_conditioning_scale"):
        assert key in screen, key
    assert "…" not in screen


def test_models_list_on_an_80_column_terminal(tmp_path):
    screen = in_terminal(["models", "list"], 80, tmp_path)
    assert all(len(line) <= 80 for line in screen.splitlines()), screen
    for key in ("controlnet-openpose-sd15", "controlnet-openpose-sdxl-ultra"):
        assert f"avatar-generator:{key}" in screen
    assert "…" not in screen


# ---------------------------------------------------------------- no Python reprs
REPRS = ("None", "{'", "['", "True", "False")


def test_human_output_has_no_python_reprs(monkeypatch, capsys, tmp_path, ledger_with_history):
    monkeypatch.chdir(tmp_path)
    commands = [
        ["history"],
        ["history", "show", "badcafe"],
        ["history", "show", "feedbeef"],
        ["credits"],
        ["credits", "history"],
        ["credits", "add", "5", "--note", "gift"],
        ["models", "list", "--all"],
        ["models", "show", "controlnet-openpose-sd15"],
        ["models", "show", "sd35-controlnet-canny"],
        ["poses", "list"],
        ["config", "set", "plan", "basic"],
        ["config", "set", "endpoints.avatar-generator:controlnet-openpose-sdxl", "https://x.example/"],
        ["config", "show"],
        ["config", "get", "plan"],
        ["config", "get", "endpoints"],
        ["config", "get", "model"],
        ["config", "unset", "plan"],
        ["config", "keys"],
        ["config", "path"],
    ]
    for args in commands:
        code, out, err = run_main(monkeypatch, capsys, *args)
        assert code == 0, (args, err)
        for text in (out, err):
            for repr_ in REPRS:
                assert repr_ not in text, (args, repr_, text)


def test_history_show_prints_params_as_lines(monkeypatch, capsys, ledger_with_history):
    code, out, _ = run_main(monkeypatch, capsys, "history", "show", "badcafe")
    assert code == 0
    assert "model_used: -" in out.splitlines()
    assert "params:" in out.splitlines() and "  steps: 20" in out.splitlines()
    assert "  prompt: an avatar" in out.splitlines()
    assert f"error: {LONG_ERROR}" in out.splitlines()


# ---------------------------------------------------------------- terminal tables, drawn lightly
TERMINAL_PROBE = """
import json, sys
sys.argv = ["avatargen", *json.loads(sys.argv[1])]
from avatargen.cli import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
roots = sorted({name.split(".")[0] for name in sys.modules})
sys.__stderr__.write("\\nPROBE " + json.dumps(roots) + "\\n")
"""


def modules_on_a_terminal(args: list[str], cwd) -> tuple[set[str], str]:
    """Top-level modules a command imported with stdout on a 100-column pty, and its screen."""
    import json

    screen, err, _ = on_a_pty([sys.executable, "-c", TERMINAL_PROBE, json.dumps(args)], 100, cwd)
    line = [ln for ln in err.decode().splitlines() if ln.startswith("PROBE ")]
    assert line, err
    return set(json.loads(line[-1].removeprefix("PROBE "))), screen


@pytest.mark.parametrize(
    "args",
    [["models", "list"], ["poses", "list"], ["credits"], ["credits", "history"], ["history"]],
    ids=" ".join,
)
def test_tables_on_a_terminal_are_drawn_without_rich(args, tmp_path, ledger_with_history):
    # Rich's console and table cost more than the rest of these commands: the start-up of a
    # listing on a terminal stays near `import typer` (bench/startup.py measures it).
    modules, screen = modules_on_a_terminal(args, tmp_path)
    assert "rich" not in modules
    assert screen.strip(), args
    assert all(len(line) <= 100 for line in screen.splitlines()), screen


def test_poses_list_on_a_terminal_is_a_boxed_table_with_whole_words(tmp_path):
    screen = in_terminal(["poses", "list"], 100, tmp_path)
    lines = screen.splitlines()
    assert lines[0] == "pose templates (use with --pose NAME)"
    assert lines[1].startswith("┏") and lines[-1].startswith("└")
    assert [cell.strip() for cell in lines[2].strip("┃").split("┃")] == ["name", "framing", "description"]
    body = [line for line in lines if line.startswith("│")]
    assert len({len(line) for line in lines[1:]}) == 1  # every line of the box as wide as the others
    assert any(line.startswith("│ wave ") for line in body)
    # Wrapped descriptions keep every word whole.
    from avatargen.poses.templates import load_templates

    description_words = [word for line in body for word in line.strip("│").split("│")[2].split()]
    expected = [word for t in load_templates().values() for word in t.description.split()]
    assert description_words == expected


def test_wide_characters_keep_the_box_aligned(tmp_path):
    with open_ledger() as ledger:
        ledger.grant(5, "写真のアバター用のクレジット 🎉 for the team")
    screen = in_terminal(["credits", "history"], 120, tmp_path)
    from avatargen.output import cell_width

    box = [line for line in screen.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(box) >= 5 and len({cell_width(line) for line in box}) == 1, screen
