"""A backend that cannot work without a Hugging Face token, and none is found: refused up front.

`generate` and `retry` call `require_token` before anything else happens (no plan, no batch or
job row in the ledger, no face crop, no credit reserved), so a missing token costs nothing and
leaves no batch to clean up. Exit 7 (AuthError), with the same line the backend itself gives
when it meets the missing token mid-batch (RouterProvider.generate uses `missing_token` too).

Which paths need one: hf-providers and hf-inference (both go through router.huggingface.co,
which answers 401 without a token), and an Inference Endpoint avatargen deployed as
authenticated or private (its deploy record says so). Any other endpoint URL may be public or
take AVATARGEN_ENDPOINT_TOKEN: only the server can tell, so it is not refused here.
"""

from __future__ import annotations

import os
from typing import Any

from avatargen.errors import AuthError

ROUTER_HINT = (
    "set HF_TOKEN (or run `hf auth login`); a fine-grained token needs the "
    "'Make calls to Inference Providers' permission"
)
ENDPOINT_HINT = "set HF_TOKEN (or run `hf auth login`) with a token that may call the endpoint"
# The API's name for "authenticated" is "protected"; both, and "private", need a token.
NEEDS_TOKEN = ("authenticated", "protected", "private")


def missing_token(what: str, hint: str = ROUTER_HINT) -> AuthError:
    error = AuthError(f"{what} needs a Hugging Face token, and none was found", hint)
    error.stops_batch = True  # every job would fail alike
    return error


def require_token(model: Any, *, endpoint: str | None, provider: str | None, token: str | None) -> None:
    """Raise the missing-token AuthError when `model`, run as asked, needs a token and none is
    found; return quietly otherwise (other problems are left to the usual checks)."""
    from avatargen import settings
    from avatargen.providers.select import ROUTER_BACKEND, choose_backend

    choice = choose_backend(model, endpoint=endpoint, provider=provider)
    if choice.backend in (None, "local") or settings.find_token(token).found:
        return
    if choice.backend in (ROUTER_BACKEND, "hf-inference"):
        raise missing_token(choice.backend)
    where = _authenticated_deployment(model, choice.url)
    if where and not os.environ.get(settings.ENDPOINT_TOKEN_ENV, "").strip():
        raise missing_token(f"endpoint {where} (deployed by avatargen, authenticated)", ENDPOINT_HINT)


def _authenticated_deployment(model: Any, url: str | None) -> str | None:
    """'namespace/name' when `url` is the endpoint avatargen deployed for `model` and it was
    deployed to need a token; None when unknown (no record, another URL, an older record)."""
    from avatargen.deploy import records

    record = records.get(model.key)
    if not record or not url or record.get("security") not in NEEDS_TOKEN:
        return None
    if str(record.get("url") or "").rstrip("/") != url.rstrip("/"):
        return None  # the batch talks to another server
    return f"{record.get('namespace')}/{record.get('name')}"
