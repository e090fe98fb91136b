"""Settings: AVATARGEN_HOME, config.toml through `avatargen config ...` (mode 0600, checked keys and
values), and the Hugging Face token: its lookup order, step by step, and that it is never printed."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest

from avatargen import settings
from avatargen.errors import ConfigError, UsageError
from cli_helpers import run_main

TOKEN = "hf_TopSecretValue0123456789abcdefWXYZ"  # never to be seen whole in any output
SDXL = "avatar-generator:controlnet-openpose-sdxl"


def _no_token_in(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[3:-4] not in text  # not even the part the mask hides


# ---------------------------------------------------------------- folders
def test_avatargen_home_moves_config_and_data(avatargen_home, cli):
    assert settings.config_dir() == avatargen_home
    assert settings.config_path() == avatargen_home / "config.toml"
    assert settings.data_dir() == avatargen_home / "data"


def test_config_path_names_every_place_the_readme_promises(avatargen_home, monkeypatch, capsys):
    from avatargen.ledger import default_path
    from avatargen.serve.tiny import tiny_models_dir

    monkeypatch.setenv("HF_HUB_CACHE", str(avatargen_home / "weights"))
    code, out, _ = run_main(monkeypatch, capsys, "config", "path", "--json")
    assert code == 0
    assert json.loads(out) == {
        "config_dir": str(avatargen_home),
        "config_file": str(avatargen_home / "config.toml"),
        "user_catalog": str(avatargen_home / "models.toml"),
        "data_dir": str(avatargen_home / "data"),
        "ledger": str(avatargen_home / "data" / "ledger.db"),
        "tiny_models": str(avatargen_home / "data" / "tiny-models"),
        "model_cache": str(avatargen_home / "weights"),
    }
    # The places the code really uses, not a copy that could drift.
    assert json.loads(out)["ledger"] == str(default_path())
    assert json.loads(out)["tiny_models"] == str(tiny_models_dir())
    code, out, _ = run_main(monkeypatch, capsys, "config", "path")  # a pipe: `label<TAB>path` lines
    places = dict(line.split("\t") for line in out.splitlines())
    assert places["config folder"] == str(avatargen_home)
    assert places["data folder"] == str(avatargen_home / "data")
    assert places["ledger (credits, history)"] == str(avatargen_home / "data" / "ledger.db")
    assert places["model weights (HF cache)"] == str(avatargen_home / "weights")


def test_the_model_cache_follows_hugging_face_rules(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert settings.hf_hub_cache() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.hf_hub_cache() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert settings.hf_hub_cache() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert settings.hf_hub_cache() == tmp_path / "cache"


def test_without_avatargen_home_the_platform_folders_are_used(tmp_path, monkeypatch):
    monkeypatch.delenv("AVATARGEN_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    assert settings.config_path() == tmp_path / "xdg-config" / "avatargen" / "config.toml"
    assert settings.data_dir() == tmp_path / "xdg-data" / "avatargen"
    monkeypatch.setenv("AVATARGEN_HOME", "  ")  # blank counts as unset
    assert settings.config_dir() == tmp_path / "xdg-config" / "avatargen"


# ---------------------------------------------------------------- config commands
@pytest.mark.slow
def test_set_get_unset_round_trip(avatargen_home, cli):
    assert cli("config", "set", "plan", "basic").exit_code == 0
    assert cli("config", "set", "concurrency", "4").exit_code == 0
    assert cli("config", "set", "wait_timeout", "90.5").exit_code == 0
    assert cli("config", "set", f"endpoints.{SDXL}", " https://x.endpoints.huggingface.cloud ").exit_code == 0
    assert cli("config", "set", f"limits.models.{SDXL}", "20").exit_code == 0

    data = tomllib.loads((avatargen_home / "config.toml").read_text(encoding="utf-8"))
    assert data == {
        "plan": "basic",
        "concurrency": 4,
        "wait_timeout": 90.5,
        "endpoints": {SDXL: "https://x.endpoints.huggingface.cloud"},
        "limits": {"models": {SDXL: 20}},
    }
    assert cli("config", "get", "plan").stdout == "basic\n"
    assert json.loads(cli("config", "get", "concurrency", "--json").stdout) == {
        "key": "concurrency",
        "value": 4,
    }
    assert cli("config", "get", f"endpoints.{SDXL}").stdout.strip() == "https://x.endpoints.huggingface.cloud"
    table = json.loads(cli("config", "get", "limits", "--json").stdout)
    assert table == {"key": "limits", "value": {"models": {SDXL: 20}}}

    shown = json.loads(cli("config", "show", "--json").stdout)
    assert shown["settings"]["plan"] == "basic" and shown["settings"][f"limits.models.{SDXL}"] == 20
    assert shown["config_file"] == str(avatargen_home / "config.toml")

    result = cli("config", "unset", "plan", "--json")
    assert json.loads(result.stdout) == {"key": "plan", "removed": True}
    assert json.loads(cli("config", "unset", "plan", "--json").stdout) == {"key": "plan", "removed": False}
    assert "plan" not in tomllib.loads((avatargen_home / "config.toml").read_text(encoding="utf-8"))


def test_set_reports_on_stderr_and_keeps_stdout_clean(cli):
    result = cli("config", "set", "plan", "pro")
    assert result.stdout == ""
    assert "set plan = pro in " in result.stderr


def test_keys_lists_every_known_key(cli):
    listed = json.loads(cli("config", "keys", "--json").stdout)
    assert set(listed) == set(settings.CONFIG_KEYS)
    assert all(isinstance(doc, str) and doc for doc in listed.values())
    text = cli("config", "keys").stdout
    assert all(key in text for key in settings.CONFIG_KEYS)


def test_show_without_config(avatargen_home, cli):
    out = cli("config", "show").stdout
    assert "(no settings)" in out and "token: none found" in out
    assert str(avatargen_home / "config.toml") in out


def test_config_file_is_private(avatargen_home, cli):
    cli("config", "set", "token", TOKEN)
    path = avatargen_home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # loosened by hand: the next write tightens it again
    cli("config", "set", "plan", "free")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(avatargen_home.glob("*.tmp"))


@pytest.mark.parametrize(
    "args, words",
    [
        (("set", "tokn", "x"), ["unknown config key 'tokn'", "known keys:"]),
        (("set", "endpoints", "https://x"), ["unknown config key 'endpoints'"]),
        (("set", "plan", "gold"), ["bad value for config key 'plan'", "free, basic, pro, enterprise"]),
        (("set", "concurrency", "many"), ["'concurrency'", "whole number"]),
        (("set", "concurrency", "0"), ["'concurrency'", "1 or more"]),
        (("set", "--", "credits.starter", "-5"), ["'credits.starter'", "0 or more"]),
        (("set", "wait_timeout", "nan"), ["'wait_timeout'", "finite"]),
        (("set", "wait_timeout", "inf"), ["'wait_timeout'", "finite"]),
        (("set", f"endpoints.{SDXL}", "ftp://x"), ["http:// or https://"]),
        (("set", "provider", "aws"), ["hf-endpoint, hf-inference"]),
        (("set", "model", "  "), ["empty", "config unset model"]),
        (("get", "tokn"), ["unknown config key 'tokn'"]),
        (("unset", "tokn"), ["unknown config key 'tokn'"]),
        (("get", "limits.x"), ["unknown config key 'limits.x'"]),
    ],
)
def test_unknown_keys_and_bad_values_exit_2(monkeypatch, capsys, avatargen_home, args, words):
    code, out, err = run_main(monkeypatch, capsys, "config", *args)
    assert code == 2
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ")
    for word in words:
        assert word in err, (word, err)
    assert not (avatargen_home / "config.toml").exists()  # nothing half-written


def test_get_of_an_unset_key_prints_nothing_and_exits_0(monkeypatch, capsys):
    # Not a config error: `$(avatargen config get plan)` is simply empty; the note is on stderr.
    code, out, err = run_main(monkeypatch, capsys, "config", "get", "plan")
    assert (code, out, err) == (0, "", "plan is not set\n")
    code, out, err = run_main(monkeypatch, capsys, "config", "get", f"endpoints.{SDXL}", "--json")
    assert code == 0 and err == "" and json.loads(out) == {"key": f"endpoints.{SDXL}", "value": None}


def test_get_of_a_table_prints_key_value_lines(monkeypatch, capsys):
    settings.set_value(f"endpoints.{SDXL}", "https://x.endpoints.huggingface.cloud")
    settings.set_value("limits.daily_requests", "1000")
    code, out, _ = run_main(monkeypatch, capsys, "config", "get", "endpoints")
    assert code == 0 and out == f"endpoints.{SDXL} = https://x.endpoints.huggingface.cloud\n"
    code, out, _ = run_main(monkeypatch, capsys, "config", "get", "limits")
    assert code == 0 and out == "limits.daily_requests = 1000\n"


def test_unset_removes_an_unknown_key_that_is_in_the_file(avatargen_home, cli):
    settings.save_config({"old_key": 1, "plan": "free"})
    assert json.loads(cli("config", "unset", "old_key", "--json").stdout)["removed"] is True
    assert settings.load_config() == {"plan": "free"}


def test_a_broken_config_file_is_a_config_error(avatargen_home, monkeypatch, capsys):
    (avatargen_home / "config.toml").write_text("plan = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        settings.load_config()
    code, _, err = run_main(monkeypatch, capsys, "config", "show")
    assert code == 3 and str(avatargen_home / "config.toml") in err
    (avatargen_home / "config.toml").write_bytes(b"plan = '\xff'\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        settings.load_config()


def test_parse_value_is_the_one_checker():
    assert settings.parse_value("confirm_above", "50") == 50
    assert settings.parse_value("limits.daily_requests", "0") == 0
    with pytest.raises(UsageError):
        settings.parse_value("limits.models", "3")  # a table, not a value


# ---------------------------------------------------------------- token lookup order
def _steps(tmp_path: Path, monkeypatch) -> list[tuple[str, object]]:
    """Each place a token can come from, highest first, with a setter that puts a distinct
    token there and returns the source name find_token should report."""
    hf_home = tmp_path / "hf-home"
    xdg = tmp_path / "xdg-cache"
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def write(path: Path, value: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value, encoding="utf-8")
        return path

    def env(name):
        def put(value):
            monkeypatch.setenv(name, value)
            return name

        return put

    def config(value):
        settings.save_config({"token": value})
        return f"config {settings.config_path()}"

    def token_path(value):
        path = write(tmp_path / "elsewhere" / "my-token", value)
        monkeypatch.setenv("HF_TOKEN_PATH", str(path))
        return f"file {path}"

    def hf_home_file(value):
        path = write(hf_home / "token", value)
        monkeypatch.setenv("HF_HOME", str(hf_home))
        return f"file {path}"

    def xdg_file(value):
        path = write(xdg / "huggingface" / "token", value)
        monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
        return f"file {path}"

    def home_file(value):
        return f"file {write(home / '.cache' / 'huggingface' / 'token', value)}"

    return [
        ("--token", None),  # passed as an argument, see below
        ("HF_TOKEN", env("HF_TOKEN")),
        ("HUGGING_FACE_HUB_TOKEN", env("HUGGING_FACE_HUB_TOKEN")),
        ("HUGGINGFACE_API_KEY", env("HUGGINGFACE_API_KEY")),
        ("config", config),
        ("HF_TOKEN_PATH", token_path),
        ("HF_HOME", hf_home_file),
        ("XDG_CACHE_HOME", xdg_file),
        ("~/.cache", home_file),
    ]


STEP_NAMES = [
    "--token",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_API_KEY",
    "config",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "XDG_CACHE_HOME",
    "~/.cache",
]


@pytest.mark.parametrize("step", range(len(STEP_NAMES)), ids=STEP_NAMES)
def test_token_order_each_step_beats_the_ones_below(step, tmp_path, monkeypatch):
    steps = _steps(tmp_path, monkeypatch)
    assert [name for name, _ in steps] == STEP_NAMES
    expected_source = None
    cli_token = None
    # Set this step and every step below it, each with its own token; lowest first.
    for index in range(len(steps) - 1, step - 1, -1):
        name, put = steps[index]
        value = f"hf_token_from_step_{index}_xxxxxxxx"
        if put is None:
            cli_token, source = value, "--token"
        else:
            source = put(value)
        if index == step:
            expected_source = source
    info = settings.find_token(cli_token=cli_token)
    assert info.found
    assert info.token.reveal() == f"hf_token_from_step_{step}_xxxxxxxx"
    assert info.source == expected_source


def test_hf_token_path_is_the_only_file_when_set(tmp_path, monkeypatch):
    # huggingface_hub reads HF_TOKEN_PATH alone when it is set; a missing file means no token
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "absent"))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_from_hf_home_xxxxxxxx", encoding="utf-8")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert settings.find_token() == settings.TokenInfo(None, "none")


def test_whitespace_is_stripped_and_empty_means_none(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "   ")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "  hf_spaced_token_value  \n")
    info = settings.find_token(cli_token="  ")
    assert info.source == "HUGGING_FACE_HUB_TOKEN" and info.token.reveal() == "hf_spaced_token_value"

    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN")
    settings.save_config({"token": ""})
    hf_home = tmp_path / "hf"
    hf_home.mkdir()
    (hf_home / "token").write_text("\n  hf_file_token_value_xx \n", encoding="utf-8")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    info = settings.find_token()
    assert info.token.reveal() == "hf_file_token_value_xx" and info.source.startswith("file ")

    (hf_home / "token").write_text(" \n", encoding="utf-8")
    assert not settings.find_token().found
    assert settings.find_token().source == "none"


def test_secret_never_shows_itself():
    secret = settings.Secret(TOKEN)
    for text in (
        str(secret),
        repr(secret),
        f"{secret}",
        secret.masked(),
        repr(settings.TokenInfo(secret, "x")),
    ):
        _no_token_in(text)
    assert secret.masked() == "hf_…WXYZ"
    assert settings.mask("short") == "****"
    assert secret == settings.Secret(TOKEN) and secret.reveal() == TOKEN


# ---------------------------------------------------------------- the token is never printed
def test_config_show_masks_an_env_token(monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, err = run_main(monkeypatch, capsys, "config", "show")
    assert code == 0
    assert "token: hf_…WXYZ from HF_TOKEN" in out
    _no_token_in(out, err)
    code, out, err = run_main(monkeypatch, capsys, "config", "show", "--json")
    report = json.loads(out)
    assert report["token"] == {"found": True, "source": "HF_TOKEN", "masked": "hf_…WXYZ"}
    _no_token_in(out, err)


def test_a_config_token_is_masked_everywhere(avatargen_home, monkeypatch, capsys):
    outputs = []
    for args in (
        ("config", "set", "token", TOKEN),
        ("config", "set", "token", TOKEN, "--json"),
        ("config", "get", "token"),
        ("config", "get", "token", "--json"),
        ("config", "show"),
        ("config", "show", "--json"),
        ("config", "unset", "token", "--json"),
    ):
        code, out, err = run_main(monkeypatch, capsys, *args)
        assert code == 0, err
        outputs.append((args, out, err))
        _no_token_in(out, err)
    assert outputs[2][1].strip() == "hf_…WXYZ"
    assert json.loads(outputs[3][1]) == {"key": "token", "value": "hf_…WXYZ"}
    report = json.loads(outputs[5][1])
    assert report["settings"]["token"] == "hf_…WXYZ"
    assert report["token"]["source"] == f"config {avatargen_home / 'config.toml'}"


def test_a_token_file_source_is_named(tmp_path, monkeypatch, cli):
    path = tmp_path / "tok"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    result = cli("config", "show", "--json")
    assert json.loads(result.stdout)["token"]["source"] == f"file {path}"
    _no_token_in(result.stdout, result.stderr)


@pytest.mark.slow
def test_the_real_command_never_prints_the_token(run_cli):
    for args in (("config", "show"), ("config", "show", "--json"), ("config", "get", "token")):
        result = run_cli(*args, env={"HUGGINGFACE_API_KEY": TOKEN})
        _no_token_in(result.stdout, result.stderr)
    result = run_cli("config", "show", env={"HUGGINGFACE_API_KEY": TOKEN})
    assert result.returncode == 0 and "from HUGGINGFACE_API_KEY" in result.stdout
