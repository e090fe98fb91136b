"""The Hugging Face Hub's API as the status probes use it: a model's serving state, the token's owner.

Every network failure becomes a state ('unreachable', 'unauthorized', ...), never an exception:
`avatargen status` must answer even when nothing can be reached.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx

from avatargen.providers.http_client import (
    PROBE_TIMEOUT_S,
    TokenScope,
    elapsed_ms,
    network_detail,
    scrub,
    server_message,
)

HUB_API = "https://huggingface.co/api"
WHOAMI_URL = f"{HUB_API}/whoami-v2"


def hub_model_info(client: httpx.Client, model_id: str, scope: TokenScope) -> dict[str, Any]:
    """The Hub's answer for `model_id`: warm or cold on the serverless router, and which providers."""
    url = f"{HUB_API}/models/{model_id}"
    params = [("expand[]", "inference"), ("expand[]", "inferenceProviderMapping")]
    began = time.perf_counter()
    try:
        response = client.get(url, params=params, headers=scope.headers_for(url), timeout=PROBE_TIMEOUT_S)
    except httpx.TransportError as exc:
        return {
            "id": model_id,
            "state": "unreachable",
            "detail": network_detail(exc, scope.secrets()),
            "providers": {},
            "round_trip_ms": elapsed_ms(began),
        }
    ms = elapsed_ms(began)
    code = response.status_code
    if code != 200:
        state = {401: "unauthorized", 403: "unauthorized", 404: "not-found"}.get(code, "unknown")
        detail = f"HTTP {code}: {scrub(server_message(response), scope.secrets())}"
        return {"id": model_id, "state": state, "detail": detail, "providers": {}, "round_trip_ms": ms}
    try:
        data = response.json()
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    providers = _providers(data.get("inferenceProviderMapping"))
    warm = data.get("inference") == "warm"
    detail = (
        "served by " + ", ".join(f"{p} ({s})" for p, s in providers.items())
        if providers
        else ("no inference provider serves it")
    )
    return {
        "id": model_id,
        "state": "warm" if warm else "cold",
        "detail": detail,
        "providers": providers,
        "round_trip_ms": ms,
    }


def _providers(mapping: Any) -> dict[str, str]:
    """{provider: status}; the Hub has sent both a dict by provider and a list of entries."""
    out: dict[str, str] = {}
    if isinstance(mapping, dict):
        for name, entry in mapping.items():
            out[str(name)] = str(entry.get("status", "")) if isinstance(entry, dict) else ""
    elif isinstance(mapping, list):
        for entry in mapping:
            if isinstance(entry, dict) and entry.get("provider"):
                out[str(entry["provider"])] = str(entry.get("status", ""))
    return out


def check_token(client: httpx.Client, token_info: Any) -> dict[str, Any]:
    """Where the token was found and whether whoami-v2 accepts it; never its value."""
    report: dict[str, Any] = {"found": token_info.found, "source": token_info.source, "valid": None}
    if not token_info.found:
        report["detail"] = "no token found (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, config token, hf auth login)"
        return report
    scope = TokenScope(token_info)
    try:
        response = client.get(WHOAMI_URL, headers=scope.headers_for(WHOAMI_URL), timeout=PROBE_TIMEOUT_S)
    except httpx.TransportError as exc:
        detail = network_detail(exc, scope.secrets())
        report["detail"] = f"could not be checked: huggingface.co unreachable ({detail})"
        return report
    if response.status_code == 200:
        try:
            data = response.json()
        except ValueError:
            data = {}
        report["valid"] = True
        report["user"] = data.get("name") if isinstance(data, dict) else None
        with contextlib.suppress(KeyError, TypeError):  # the role is a nicety, not a requirement
            report["role"] = data["auth"]["accessToken"]["role"]
        report["detail"] = "valid"
    elif response.status_code in (401, 403):
        report["valid"] = False
        report["detail"] = f"rejected by huggingface.co (HTTP {response.status_code})"
    else:
        report["detail"] = f"could not be checked (HTTP {response.status_code})"
    return report
