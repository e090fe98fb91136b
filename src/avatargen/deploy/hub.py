"""huggingface_hub's HfApi, pointed where the user says, with its errors mapped to ours.

HF_ENDPOINT moves the Hub (huggingface_hub reads it at import; we pass it again so a late change
counts too). The Inference Endpoints API base is a constant in huggingface_hub, so
AVATARGEN_ENDPOINTS_API is applied by setting that constant before each use. The HF token goes
only to these two bases: both are Hugging Face's unless the user named another host here.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from avatargen import environment
from avatargen.errors import AuthError, MissingExtra, ModelUnavailable, NetworkError, ProviderError

ENDPOINTS_API_ENV = environment.ENDPOINTS_API
DEFAULT_ENDPOINTS_API = "https://api.endpoints.huggingface.cloud/v2"
DEFAULT_HUB = "https://huggingface.co"
T = TypeVar("T")


def endpoints_api_base() -> str:
    return (os.environ.get(ENDPOINTS_API_ENV, "").strip() or DEFAULT_ENDPOINTS_API).rstrip("/")


def hub_base() -> str:
    return (os.environ.get(environment.HF_ENDPOINT, "").strip() or DEFAULT_HUB).rstrip("/")


def hf_api(token: str) -> Any:
    """An HfApi for `token`, with both API bases applied."""
    from avatargen import hub_extra
    from avatargen.urls import check_environment

    hub_extra.require("managing Inference Endpoints")
    check_environment()  # a malformed HF_ENDPOINT / AVATARGEN_ENDPOINTS_API: exit 3 naming it
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        raise MissingExtra("hub", "managing Inference Endpoints") from None
    constants.INFERENCE_ENDPOINTS_ENDPOINT = endpoints_api_base()
    # An explicit deploy is online work: the offline switch (set for tests, or by a user for
    # generation from the cache) would only turn every call into a confusing error.
    constants.HF_HUB_OFFLINE = False
    return huggingface_hub.HfApi(endpoint=hub_base(), token=token, library_name="avatargen")


def require_token(cli_token: str | None = None) -> str:
    from avatargen import settings
    from avatargen.redact import remember_secret

    info = settings.find_token(cli_token)
    if info.token is None:
        raise AuthError(
            "managing Inference Endpoints needs a Hugging Face token",
            "set HF_TOKEN or run `hf auth login` (a token with write access)",
        )
    remember_secret(info.token.reveal())
    return info.token.reveal()


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def server_words(exc: BaseException) -> str:
    """The server's own message from an HfHubHTTPError, else the exception text, scrubbed."""
    from avatargen.redact import redact_text

    response = getattr(exc, "response", None)
    message = ""
    if response is not None:
        try:
            data = response.json()
        except Exception:  # not JSON: fall back to the exception's text
            data = None
        if isinstance(data, dict):
            message = str(data.get("error") or data.get("message") or "")
    if not message:
        lines = str(exc).strip().splitlines()
        message = lines[0] if lines else type(exc).__name__
    return " ".join(redact_text(message).split())[:300]


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Run HfApi calls, turning its exceptions into our one-line errors naming `what`."""
    try:
        yield
    except MissingExtra:
        raise
    except Exception as exc:
        raise to_error(exc, what) from None


# The HTTP stacks huggingface_hub has sent through (httpx up to 1.x, httpx2 from 2.0; requests
# before 1.0): their transport errors share no base class with each other, so they are told by
# what they are (a class of that name in one of these packages), not by one isinstance.
_NETWORK_PACKAGES = {"httpx", "httpx2", "httpcore", "requests", "urllib3"}
_NETWORK_CLASSES = {"TransportError", "NetworkError", "TimeoutException", "ConnectionError", "Timeout"}


def is_network_error(exc: BaseException) -> bool:
    """Could the request not reach the server (refused, DNS, timeout, reset), whichever HTTP
    library huggingface_hub used, or the exception it was raised from?"""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror):
            return True
        for cls in type(current).__mro__:
            if cls.__name__ in _NETWORK_CLASSES and cls.__module__.split(".")[0] in _NETWORK_PACKAGES:
                return True
        current = current.__cause__ or current.__context__
    return False


def to_error(exc: BaseException, what: str):
    code = status_of(exc)
    if code in (401, 403):
        return AuthError(
            f"{what}: HTTP {code} ({server_words(exc)})",
            "the token needs write access to the namespace (HF_TOKEN or `hf auth login`)",
        )
    if code == 404:
        return ModelUnavailable(f"{what}: not found ({server_words(exc)})")
    if code is not None:
        return ProviderError(f"{what}: HTTP {code} ({server_words(exc)})")
    if is_network_error(exc):
        return NetworkError(f"{what}: cannot reach the server ({type(exc).__name__})")
    if isinstance(exc, ValueError):  # huggingface_hub refuses a value before sending
        return ProviderError(f"{what}: {server_words(exc)}")
    return ProviderError(f"{what}: {type(exc).__name__}: {server_words(exc)}")


def call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with mapped(what):
        return fn(*args, **kwargs)
