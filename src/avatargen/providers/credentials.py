"""The missing-token error, one line for every backend that needs a Hugging Face token: what
`select.require_token` raises up front (before a plan, a batch or a credit) and what
RouterProvider raises if a library caller gets that far without one. Exit 7 (AuthError).
"""

from __future__ import annotations

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
