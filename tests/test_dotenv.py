""".env support: the parser, the never-override rule, and the real CLI picking the token up."""

from __future__ import annotations

import json
import os

import pytest

from avatargen.dotenv import load_dotenv_file, parse_dotenv

TOKEN = "hf_dotenvSecretToken1234567890"


def test_parser_reads_the_common_forms():
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "  SPACED  =  padded value  \n"
        "export EXPORTED=yes\n"
        "SINGLE='it''s not expanded $HOME \\n'\n"
        'DOUBLE="tab\\there \\"quoted\\" # not a comment"\n'
        "COMMENTED=value # trailing comment\n"
        "HASH_INSIDE=a#b\n"
        "EMPTY=\n"
        "QUOTED_THEN_COMMENT='x' # fine\n"
    )
    values, bad = parse_dotenv(text)
    # 'it''s...' is "it" followed by text after the quote: malformed on purpose (line 6).
    assert bad == [6]
    assert values == {
        "PLAIN": "value",
        "SPACED": "padded value",
        "EXPORTED": "yes",
        "DOUBLE": 'tab\there "quoted" # not a comment',
        "COMMENTED": "value",
        "HASH_INSIDE": "a#b",
        "EMPTY": "",
        "QUOTED_THEN_COMMENT": "x",
    }


def test_single_quotes_are_literal():
    values, bad = parse_dotenv("A='$HOME \\n stays'\n")
    assert bad == []
    assert values == {"A": "$HOME \\n stays"}


def test_malformed_lines_are_reported_by_number():
    values, bad = parse_dotenv('GOOD=1\nno equals sign\n1BAD=x\nOPEN="unterminated\nALSO_GOOD=2\n')
    assert values == {"GOOD": "1", "ALSO_GOOD": "2"}
    assert bad == [2, 3, 4]


def test_environment_wins_and_loaded_names_are_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("AVG_TEST_EXISTING", "from-env")
    monkeypatch.delenv("AVG_TEST_NEW", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("AVG_TEST_EXISTING=from-file\nAVG_TEST_NEW=new\n")
    try:
        assert load_dotenv_file(env_file) == ["AVG_TEST_NEW"]
        assert os.environ["AVG_TEST_EXISTING"] == "from-env"
        assert os.environ["AVG_TEST_NEW"] == "new"
    finally:
        os.environ.pop("AVG_TEST_NEW", None)


def test_an_empty_env_var_still_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("AVG_TEST_EMPTY", "")
    (tmp_path / ".env").write_text("AVG_TEST_EMPTY=filled\n")
    monkeypatch.chdir(tmp_path)
    assert load_dotenv_file() == []
    assert os.environ["AVG_TEST_EMPTY"] == ""


def test_missing_file_does_nothing(tmp_path, capsys):
    assert load_dotenv_file(tmp_path / ".env") == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("content", [b"\xff\xfe\x00bad", None])
def test_unreadable_file_warns_and_carries_on(tmp_path, capsys, content):
    path = tmp_path / ".env"
    if content is None:
        path.mkdir()  # a folder named .env
    else:
        path.write_bytes(content)
    assert load_dotenv_file(path) == []
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and str(path) in err


# ---------------------------------------------------------------- the real CLI
def _config_show(run_cli, cwd, env=None):
    result = run_cli("config", "show", "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result


def test_cli_picks_the_token_up_from_dotenv_masked(run_cli, tmp_path):
    (tmp_path / ".env").write_text(f'# seed-style file\nexport HUGGINGFACE_API_KEY="{TOKEN}"\n')
    report, result = _config_show(run_cli, tmp_path)
    assert report["token"]["found"] is True
    assert report["token"]["source"] == "HUGGINGFACE_API_KEY"
    assert report["token"]["masked"] != TOKEN and report["token"]["masked"].endswith(TOKEN[-4:])
    assert TOKEN not in result.stdout and TOKEN not in result.stderr


def test_cli_environment_beats_dotenv(run_cli, tmp_path):
    (tmp_path / ".env").write_text(f"HUGGINGFACE_API_KEY={TOKEN}\n")
    env_token = "hf_fromTheEnvironment987654"
    report, _ = _config_show(run_cli, tmp_path, env={"HUGGINGFACE_API_KEY": env_token})
    assert report["token"]["masked"].endswith(env_token[-4:])


def test_cli_malformed_lines_warn_with_file_and_line_never_the_content(run_cli, tmp_path):
    (tmp_path / ".env").write_text(f"this is not {TOKEN}\nHUGGINGFACE_API_KEY={TOKEN}\nBROKEN='x\n")
    report, result = _config_show(run_cli, tmp_path)
    assert report["token"]["source"] == "HUGGINGFACE_API_KEY"
    env_path = str(tmp_path / ".env")
    assert f"{env_path}:1: line ignored" in result.stderr
    assert f"{env_path}:3: line ignored" in result.stderr
    assert TOKEN not in result.stderr and TOKEN not in result.stdout


def test_cli_without_dotenv_finds_no_token(run_cli, tmp_path):
    report, result = _config_show(run_cli, tmp_path)
    assert report["token"] == {"found": False, "source": "none", "masked": None}
    assert result.stderr == ""
