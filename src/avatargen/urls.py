"""The one check every URL avatargen reads goes through, wherever it comes from.

Options (--endpoint, --pose URL, --notify-url), the environment (AVATARGEN_ENDPOINT,
AVATARGEN_ROUTER_URL, HF_ENDPOINT) and config.toml (endpoints.*) all call `checked_url`, so a
malformed value is refused where it is read, naming its source, before anything is planned or
paid: exit 2 for an option, exit 3 for the environment or the config (`error_for` picks). Both
parsers a URL later meets agree it is usable: urllib's (which raises ValueError on 'http://[::1'
or a port over 65535, an "unexpected" crash elsewhere) and httpx's, the client that sends it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from avatargen import environment
from avatargen.errors import AvatargenError, ConfigError, UsageError

EXAMPLE = "e.g. https://xyz.endpoints.huggingface.cloud or http://127.0.0.1:8000/"


def error_for(source: str) -> type[AvatargenError]:
    """A command-line option is a usage mistake (exit 2); anything else is configuration (3)."""
    return UsageError if source.startswith("--") else ConfigError


def url_problem(text: str) -> str | None:
    """Why `text` is not an http(s) URL a client can send to, or None when it is."""
    if not text:
        return "empty"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "it contains spaces or control characters"
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    if port == 0:
        return "port 0 is not a port a server listens on"
    import httpx  # the parser of the client that will send it

    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"malformed ({exc})"
    if not parsed.host:
        return "it has no host"
    return None


def checked_url(
    text: str, source: str, what: str = "URL", fix: str | None = None, *, usage: bool | None = None
) -> str:
    """`text` stripped, when it is a usable http(s) URL; else an error naming `source` (the
    option, variable or config key) and what is wrong. Credentials in it are remembered as
    secrets, and the message shows it without them. `usage`: force exit 2 (a command's argument,
    which does not start with --) or 3."""
    from avatargen.redact import redact_url, remember_url_secrets

    value = text.strip()
    remember_url_secrets(value)
    problem = url_problem(value)
    if problem is None:
        return value
    shown = redact_url(value)
    where = f": '{shown}'" if value else ""
    cls = error_for(source) if usage is None else UsageError if usage else ConfigError
    raise cls(f"{what} from {source} is not usable: {problem}{where}", fix or f"give a full URL, {EXAMPLE}")


# URLs read from the environment by every command that goes on the network (AVATARGEN_ENDPOINT
# is checked where the endpoint is resolved, since --endpoint overrides it).
ENV_URLS = {
    environment.ROUTER_URL: "unset it for Hugging Face's router, or give a proxy of it, e.g. https://router.huggingface.co",
    environment.HF_ENDPOINT: "unset it for https://huggingface.co, or give the Hub mirror's full URL",
    environment.ENDPOINTS_API: "unset it for https://api.endpoints.huggingface.cloud/v2, or give a full URL",
}


def check_environment() -> None:
    """Refuse a malformed URL in the environment (exit 3 naming the variable) before a command
    plans anything: otherwise the dry run passes and the real run fails once per job."""
    import os

    for name, fix in ENV_URLS.items():
        value = os.environ.get(name, "").strip()
        if value:
            checked_url(value, name, fix=fix)
