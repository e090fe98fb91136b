"""Keeping secrets out of everything avatargen prints or stores.

`redact_url` masks credentials inside a URL (`user:pass@`, token-like query values);
`redact_text` replaces every secret avatargen knows (tokens from the environment, the config
and the command line) wherever it appears in a piece of text. Both are cheap enough to run on
every line that leaves the process: output, errors, the ledger, webhooks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from avatargen.settings import ENDPOINT_TOKEN_ENV, TOKEN_ENV_VARS

# Environment variables that hold credentials: never shown, never passed to child processes.
SECRET_ENV_VARS = (*TOKEN_ENV_VARS, ENDPOINT_TOKEN_ENV)
# Query parameters whose values are credentials by their name.
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[a-z0-9_.-]*(?:token|key|secret|password|passwd|pwd|auth|signature|sig|credential)[a-z0-9_.-]*)=)([^&#\s]*)"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s?#]+)@")
# Hugging Face tokens have a recognisable shape: mask them even when nobody told us about them.
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
MASK = "[redacted]"
_extra_secrets: set[str] = set()


def remember_secret(value: str | None) -> None:
    """A secret given some other way (--token, the config file): redacted from then on."""
    if value and len(value.strip()) >= 4:
        _extra_secrets.add(value.strip())


def remember_url_secrets(url: str) -> None:
    """The credentials inside a URL (`user:pass@`, token-like query values), remembered as secrets,
    so they are masked even where they turn up without the URL around them (an error, a header)."""
    for match in _USERINFO.finditer(url):
        userinfo = match.group(2)
        remember_secret(userinfo)
        remember_secret(userinfo.partition(":")[2])
    for match in _SECRET_QUERY.finditer(url):
        remember_secret(match.group(2))


def known_secrets() -> list[str]:
    values = {os.environ.get(name, "").strip() for name in SECRET_ENV_VARS} | _extra_secrets
    # Longest first, so a secret that contains another is masked whole.
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact_url(url: str) -> str:
    """The URL with any `user:pass@` and token-like query values replaced by ***."""
    url = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{MASK}", url)


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """Every known secret, URL credential and HF-shaped token in `text`, masked."""
    if not text:
        return text
    for secret in sorted({*known_secrets(), *(e for e in extra if e and len(e) >= 4)}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = redact_url(text)
    return _HF_TOKEN.sub(MASK, text)


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a command avatargen starts: everything but the credentials."""
    env = dict(os.environ if base is None else base)
    for name in SECRET_ENV_VARS:
        env.pop(name, None)
    return env
