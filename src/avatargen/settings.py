"""Where avatargen keeps things, its config.toml, and where the Hugging Face token comes from.

One variable, AVATARGEN_HOME, moves both the config and the data folder (tests rely on it).
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatargen import environment
from avatargen.errors import ConfigError, UsageError

APP = "avatargen"
TIERS = ("free", "basic", "pro", "enterprise")
PROVIDERS = ("hf-endpoint", "hf-inference", "local", "hf-providers")
# Hugging Face's router for Inference Providers; a proxy (or a test's loopback fake) replaces it.
ROUTER_URL_ENV = environment.ROUTER_URL
DEFAULT_ROUTER_URL = "https://router.huggingface.co"


def router_base_url() -> str:
    """AVATARGEN_ROUTER_URL without its trailing slash, else the public router; a malformed
    value is a ConfigError naming the variable (urls.checked_url)."""
    return _env_url(ROUTER_URL_ENV, DEFAULT_ROUTER_URL)


def hub_base_url() -> str:
    """The Hub's address as huggingface_hub reads it (HF_ENDPOINT), without a trailing slash."""
    return _env_url(environment.HF_ENDPOINT, "https://huggingface.co")


def _env_url(name: str, default: str) -> str:
    from avatargen.urls import ENV_URLS, checked_url

    value = os.environ.get(name, "").strip()
    return (checked_url(value, name, fix=ENV_URLS.get(name)) if value else default).rstrip("/")


# ---------------------------------------------------------------- folders
def home_override() -> Path | None:
    value = os.environ.get(environment.HOME, "").strip()
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = home_override()
    if home:
        return home
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP))


def data_dir() -> Path:
    home = home_override()
    if home:
        return home / "data"
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))


def config_path() -> Path:
    return config_dir() / "config.toml"


def ledger_path() -> Path:
    return data_dir() / "ledger.db"


def tiny_models_dir() -> Path:
    return data_dir() / "tiny-models"


def hf_hub_cache() -> Path:
    """Where Hugging Face keeps downloaded weights, as huggingface_hub decides it (HF_HUB_CACHE,
    else HF_HOME/hub, else the XDG cache), without importing it."""
    explicit = os.environ.get(environment.HF_HUB_CACHE, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return _hf_home() / "hub"


def places() -> dict[str, tuple[Path, str]]:
    """Every place avatargen reads or writes, for `config path`: JSON name -> (path, label)."""
    return {
        "config_dir": (config_dir(), "config folder"),
        "config_file": (config_path(), "config file"),
        "user_catalog": (config_dir() / "models.toml", "your models.toml"),
        "data_dir": (data_dir(), "data folder"),
        "ledger": (ledger_path(), "ledger (credits, history)"),
        "tiny_models": (tiny_models_dir(), "tiny models"),
        "model_cache": (hf_hub_cache(), "model weights (HF cache)"),
    }


# ---------------------------------------------------------------- config.toml
# Known keys and how to parse a value given on the command line. A '*' segment is free
# (a model key); everything else is checked so a typo is caught at `config set`.
def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got '{text}'") from None
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _at_least_one(text: str) -> int:
    value = _positive_int(text)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:  # 'nan' and 'inf' parse as floats
        raise ValueError("must be a finite number more than 0")
    return value


def _template(text: str) -> str:
    """An output name template as `generate` would take it: known fields, ends in .png, and a
    name inside the output folder (no '..', no leading '/')."""
    from pathlib import PurePath

    from avatargen.plan import check_template

    text = text.strip()
    try:
        check_template(text)
    except UsageError as exc:
        raise ValueError(f"{exc.message}{f' ({exc.hint})' if exc.hint else ''}") from None
    sample = PurePath(
        text.format(stem="photo", pose="wave", model="sd15", seed=1, variant=0, hash="0123abcd")
    )
    if sample.is_absolute() or ".." in sample.parts:
        raise ValueError(
            f"'{text}' would write outside the output folder: use a name relative to -o, "
            "without '..' or a leading '/', e.g. {stem}-{seed}.png"
        )
    return text


def _tier(text: str) -> str:
    if text not in TIERS:
        raise ValueError(f"must be one of {', '.join(TIERS)}")
    return text


def _provider(text: str) -> str:
    if text not in PROVIDERS:
        raise ValueError(f"must be one of {', '.join(PROVIDERS)}")
    return text


def _url(text: str) -> str:
    from avatargen.redact import redact_url
    from avatargen.urls import url_problem  # the check every URL avatargen reads goes through

    text = text.strip()
    problem = url_problem(text)
    if problem:
        raise ValueError(f"'{redact_url(text)}' is not a usable URL: {problem}")
    return text


def _urls(text: str) -> str | list[str]:
    """One URL, or several separated by commas or spaces (one server each, shared by a batch)."""
    urls = [_url(part) for part in text.replace(",", " ").split()]
    if not urls:
        raise ValueError("give at least one URL")
    return urls[0] if len(urls) == 1 else urls


def _endpoint_after(text: str) -> str:
    if text not in ENDPOINT_AFTER:
        raise ValueError(f"must be one of {', '.join(ENDPOINT_AFTER)}")
    return text


ENDPOINT_AFTER = ("keep", "pause", "scale-to-zero")
CONFIG_KEYS: dict[str, tuple[Any, str]] = {
    "token": (str, "Hugging Face token (prefer HF_TOKEN or `hf auth login`)"),
    "plan": (_tier, "highest tier you may use: free, basic, pro, enterprise (unset = no cap)"),
    "model": (str, "default model key or alias for generate"),
    "provider": (_provider, "default backend: hf-endpoint, hf-inference, local or hf-providers"),
    "endpoints.*": (
        _urls,
        "Inference Endpoint URL for one model key (several: comma-separated, shared by a batch)",
    ),
    "endpoint_after": (
        _endpoint_after,
        "after a batch, a deployed endpoint is: keep (default), pause, scale-to-zero",
    ),
    "wait_timeout": (_positive_float, "seconds to wait for a cold model before giving up"),
    "concurrency": (_at_least_one, "parallel requests for generate"),
    "output_template": (_template, "output file name template, e.g. {stem}-{pose}-{model}-{seed}.png"),
    "credits.starter": (_positive_int, "credits granted when a new ledger is created"),
    "limits.daily_requests": (
        _positive_int,
        "HTTP requests allowed per day (UTC), all models; every attempt counts, retries included",
    ),
    "limits.models.*": (_positive_int, "HTTP requests allowed per day for one model key (retries included)"),
    "confirm_above": (_positive_int, "ask before a batch of more images than this"),
    # `avatargen api` (docs/api.md, "Configuration"); lists and booleans are set in config.toml.
    "service.database": (
        str,
        "avatargen api/worker/users: postgresql://... (default: SQLite in the data folder)",
    ),
    "service.workers": (_positive_int, "avatargen api: worker threads in the service process"),
    "service.user_concurrency": (_at_least_one, "avatargen api: jobs of one user running at once"),
    "service.max_pending_per_user": (
        _at_least_one,
        "avatargen api: queued jobs per user (more: 503 queue_full)",
    ),
    "service.max_upload_bytes": (_at_least_one, "avatargen api: largest request body (more: 413)"),
    "service.max_pixels": (
        _at_least_one,
        "avatargen api: largest photo in pixels, read from its header (more: 413)",
    ),
    "service.rate_per_minute": (
        _positive_int,
        "avatargen api: generate requests per user per minute (more: 429)",
    ),
    "service.limits.user_daily": (_at_least_one, "avatargen api: generations per user per day, all models"),
    "service.limits.models.*": (
        _at_least_one,
        "avatargen api: generations per user per day for one model key",
    ),
}
SECRET_KEYS = {"token"}


def _pattern_for(key: str) -> str | None:
    if key in CONFIG_KEYS:
        return key
    for pattern in CONFIG_KEYS:
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            if key.startswith(prefix) and len(key) > len(prefix) and "." not in key[len(prefix) :]:
                return pattern
    return None


def check_key(key: str) -> None:
    """Refuse a key `config get/set/unset` cannot mean: not a known key nor a table holding one
    (`endpoints`, `limits`); a typo gets the list of keys."""
    if _pattern_for(key) is not None:
        return
    tables = {p.rsplit(".", n)[0] for p in CONFIG_KEYS for n in range(1, p.count(".") + 1)}
    if key in tables - {"*"}:
        return
    known = ", ".join(sorted(CONFIG_KEYS))
    raise UsageError(f"unknown config key '{key}'", f"known keys: {known}")


def _split_key(key: str) -> list[str]:
    # Model keys contain ':' and '-' but never '.', so dots separate tables.
    return key.split(".")


def load_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", f"fix the file or remove it: {path}") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(
            f"{path}: not valid TOML (nested too deeply)", f"fix the file or remove it: {path}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path}: not valid TOML (not UTF-8 text)", f"fix the file or remove it: {path}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None


def save_config(data: dict[str, Any], path: Path | None = None) -> Path:
    import tomli_w

    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # The file may hold a token: create it 0600 from the first byte, then swap it in.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        tomli_w.dump(data, fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def get_value(key: str, config: dict[str, Any] | None = None) -> Any:
    node: Any = load_config() if config is None else config
    for part in _split_key(key):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def parse_value(key: str, text: str) -> Any:
    pattern = _pattern_for(key)
    if pattern is None:
        known = ", ".join(sorted(CONFIG_KEYS))
        raise UsageError(f"unknown config key '{key}'", f"known keys: {known}")
    parser = CONFIG_KEYS[pattern][0]
    if parser is str and not text.strip():
        raise UsageError(
            f"bad value for config key '{key}': empty", f"to remove it: avatargen config unset {key}"
        )
    try:
        return parser(text)
    except ValueError as exc:
        raise UsageError(
            f"bad value for config key '{key}': {exc}", "`avatargen config keys` says what each key takes"
        ) from None


def set_value(key: str, text: str) -> Any:
    value = parse_value(key, text)
    data = load_config()
    node = data
    *tables, leaf = _split_key(key)
    for part in tables:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{config_path()}: '{part}' is not a table")
    node[leaf] = value
    save_config(data)
    return value


def unset_value(key: str) -> bool:
    data = load_config()
    if get_value(key, data) is None:
        check_key(key)  # absent: a typo deserves an error, a known key is simply not set
    node = data
    *tables, leaf = _split_key(key)
    for part in tables:
        node = node.get(part)
        if not isinstance(node, dict):
            return False
    if leaf not in node:
        return False
    del node[leaf]
    save_config(data)
    return True


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


# ---------------------------------------------------------------- token
class Secret:
    """A token that never shows itself: repr, str and f-strings give the masked form."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.masked()})"

    __str__ = masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def mask(token: str) -> str:
    if len(token) <= 8:
        return "****"
    return f"{token[:3]}…{token[-4:]}"


@dataclass(frozen=True)
class TokenInfo:
    token: Secret | None
    source: str  # where it came from, e.g. HF_TOKEN, or file ~/.cache/huggingface/token

    @property
    def found(self) -> bool:
        return self.token is not None


TOKEN_ENV_VARS = environment.HF_TOKEN_VARS
# The token for a self-hosted `avatargen serve`: sent only to the endpoint's own host.
ENDPOINT_TOKEN_ENV = environment.ENDPOINT_TOKEN


def hf_token_file() -> Path:
    explicit = os.environ.get(environment.HF_TOKEN_PATH, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return _hf_home() / "token"


def _hf_home() -> Path:
    hf_home = os.environ.get(environment.HF_HOME, "").strip()
    if hf_home:
        return Path(hf_home).expanduser()
    cache = os.environ.get(environment.XDG_CACHE_HOME, "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "huggingface"


def find_token(cli_token: str | None = None, config: dict[str, Any] | None = None) -> TokenInfo:
    """The token, in the order users expect: --token, HF_TOKEN, HUGGING_FACE_HUB_TOKEN,
    HUGGINGFACE_API_KEY (the seed's name), config.toml, then the Hugging Face token file."""
    if cli_token and cli_token.strip():
        return TokenInfo(Secret(cli_token.strip()), "--token")
    for name in TOKEN_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return TokenInfo(Secret(value), name)
    cfg = load_config() if config is None else config
    value = str(cfg.get("token") or "").strip()
    if value:
        return TokenInfo(Secret(value), f"config {config_path()}")
    path = hf_token_file()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError:
        value = ""
    if value:
        return TokenInfo(Secret(value), f"file {path}")
    return TokenInfo(None, "none")


def add_endpoint_url(model_key: str, url: str) -> None:
    """endpoints.<key> = url (what `endpoint deploy` stores); when it is a list (several servers)
    the URL joins it."""
    key = f"endpoints.{model_key}"
    current = get_value(key)
    if isinstance(current, list):
        if url not in current:
            data = load_config()
            data["endpoints"][model_key] = [*current, url]
            save_config(data)
        return
    set_value(key, url)
