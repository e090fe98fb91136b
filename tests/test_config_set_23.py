"""Issue 23 item 12: `config set` checks a value as `generate` would, and says what is wrong.

output_template "{nope}" and "../{stem}" were accepted and failed only at the next generate;
`config set credits.starter -5` said "No such option: -5".
"""

from __future__ import annotations

import pytest

from cli_helpers import run_main


def error_line(err: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("{nope}", "unknown field(s) {nope}"),
        ("{nope}.png", "unknown field(s) {nope}"),
        ("../{stem}.png", "outside the output folder"),
        ("sub/../../{stem}.png", "outside the output folder"),
        ("/tmp/{stem}.png", "outside the output folder"),
        ("{stem}.jpg", "must end in .png"),
        ("{seed:q}.png", "bad output name template"),
    ],
)
def test_output_template_is_checked_at_set(monkeypatch, capsys, value, said):
    code, _, err = run_main(monkeypatch, capsys, "config", "set", "output_template", value)
    assert code == 2, err
    line = error_line(err)
    assert "output_template" in line and said in line
    assert run_main(monkeypatch, capsys, "config", "get", "output_template")[1] == ""


@pytest.mark.parametrize("value", ["{stem}-{seed}.png", "people/{stem}-{pose}.png"])
def test_a_good_template_is_kept(monkeypatch, capsys, value):
    assert run_main(monkeypatch, capsys, "config", "set", "output_template", value)[0] == 0
    assert run_main(monkeypatch, capsys, "config", "get", "output_template")[1].strip() == value


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("credits.starter", "-5", "must be 0 or more, got -5"),
        ("limits.daily_requests", "-1", "must be 0 or more, got -1"),
        ("confirm_above", "-3", "must be 0 or more"),
        ("wait_timeout", "-2.5", "more than 0"),
        ("concurrency", "-2", "must be 0 or more"),
    ],
)
def test_negative_numbers_are_values_not_options(monkeypatch, capsys, key, value, said):
    code, _, err = run_main(monkeypatch, capsys, "config", "set", key, value)
    assert code == 2, err
    line = error_line(err)
    assert "No such option" not in line
    assert f"config key '{key}'" in line and said in line
