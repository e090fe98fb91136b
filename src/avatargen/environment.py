"""Every environment variable avatargen reads, named once with what it does. Modules take the
name from here (tests/test_environment.py fails on one named anywhere else), so this page is
the whole list a user or an operator can set."""

from __future__ import annotations

import os

# ---------------------------------------------------------------- avatargen's own
HOME = "AVATARGEN_HOME"  # one folder for config, ledger and data instead of the platform's
CATALOG = "AVATARGEN_CATALOG"  # an extra catalog file merged over the others by key
ENDPOINT = "AVATARGEN_ENDPOINT"  # the endpoint URL for every model (after --endpoint)
ENDPOINT_TOKEN = "AVATARGEN_ENDPOINT_TOKEN"  # the bearer token of a self-hosted endpoint / `serve --token`
ROUTER_URL = "AVATARGEN_ROUTER_URL"  # Inference Providers' router (default https://router.huggingface.co)
ENDPOINTS_API = "AVATARGEN_ENDPOINTS_API"  # the Inference Endpoints API (tests point it at a fake)
IDENTITY_SCALE = "AVATARGEN_IDENTITY_SCALE"  # generate --identity-scale's default
LOCAL_MODEL_DIR = "AVATARGEN_LOCAL_MODEL_DIR"  # the local backend's --model-dir default
LOCAL_TINY = "AVATARGEN_LOCAL_TINY"  # 1: the local backend runs the tiny random-weight model
NO_LOCAL = "AVATARGEN_NO_LOCAL"  # 1: act as if the serve extra were absent (never run in-process by default)
DEVICE = "AVATARGEN_DEVICE"  # the endpoint handler's torch device (cuda, cpu, ...)
DEBUG = "AVATARGEN_DEBUG"  # 1: show tracebacks and third-party log lines
RETRY_SCALE = "AVATARGEN_RETRY_SCALE"  # tests and benchmarks shrink our own back-off waits
SERVE_MIN_LOAD_S = "AVATARGEN_SERVE_MIN_LOAD_S"  # tests: `serve` keeps its loading phase open this long
SERVE_BODY_TIMEOUT_S = (
    "AVATARGEN_SERVE_BODY_TIMEOUT_S"  # `serve`: seconds a client has to send its body (default 60)
)
DATABASE = "AVATARGEN_DATABASE"  # `api` / `worker`: the service database (a SQLite path or postgresql://...)
COMPLETE = "_AVATARGEN_COMPLETE"  # set by the shell completion script: every command is loaded

# ---------------------------------------------------------------- Hugging Face's conventions
HF_TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_API_KEY")  # first found wins
HF_TOKEN_PATH = "HF_TOKEN_PATH"
HF_HOME = "HF_HOME"
HF_HUB_CACHE = "HF_HUB_CACHE"
HF_ENDPOINT = "HF_ENDPOINT"  # the Hub's URL
HF_HUB_OFFLINE = "HF_HUB_OFFLINE"
HF_HUB_ETAG_TIMEOUT = "HF_HUB_ETAG_TIMEOUT"

# ---------------------------------------------------------------- the terminal's conventions
NO_COLOR = "NO_COLOR"
FORCE_COLOR = "FORCE_COLOR"
COLUMNS = "COLUMNS"
TERM = "TERM"
XDG_CACHE_HOME = "XDG_CACHE_HOME"


def value(name: str) -> str:
    """The variable's value, stripped; '' when unset."""
    return os.environ.get(name, "").strip()
