"""The whole `avatargen status MODEL` report: which backend and URL a generation would use (select.py),
each backend's own probe (endpoint.py, inference.py via hub.py, local_status.py), and the token.

This module sits above the selection, so no backend imports it.
"""

from __future__ import annotations

from typing import Any

import httpx

from avatargen.providers import local_status
from avatargen.providers.endpoint import probe_endpoint
from avatargen.providers.http_client import PROBE_TIMEOUT_S, TokenScope, is_hf_host
from avatargen.providers.hub import check_token, hub_model_info
from avatargen.providers.select import choose_backend, resolve_wait_timeout
from avatargen.redact import redact_url


def model_facts(model: Any) -> dict[str, Any]:
    width, height = model.size
    return {
        "key": model.key,
        "name": model.name,
        "huggingface_model": model.huggingface_model,
        "base_model": model.base_model,
        "architecture": model.architecture,
        "resolution": f"{width}x{height}",
        "tier": model.tier,
        "credit_cost": model.credit_cost,
        "status": model.status,
        "pose_control": model.pose_control,
        "fallbacks": list(model.fallbacks),
    }


def build_status(
    model: Any,
    *,
    config: Any,
    endpoint: str | None = None,
    provider: str | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
    history_stats: dict[str, Any] | None = None,
    device: Any = None,
    hf_provider: str | None = None,
) -> dict[str, Any]:
    """The whole `avatargen status MODEL` report as one dict (the --json output).

    `history_stats` is the hook for recent success rate and median latency from the ledger's
    history (issue 5/7): when given, it is shown as-is under "history".
    """
    from avatargen.settings import find_token

    choice = choose_backend(model, endpoint=endpoint, provider=provider, config=config)
    token_info = find_token(token, config.raw)
    own = client is None
    if client is None:
        from avatargen.providers import deadline

        client = deadline.install(httpx.Client(timeout=PROBE_TIMEOUT_S, follow_redirects=False))
    try:
        report: dict[str, Any] = {
            "model": model_facts(model),
            "backend": choice.backend,
            "url": redact_url(choice.url) if choice.url else None,
            "url_source": choice.source,
            "wait_timeout": resolve_wait_timeout(None, config=config),
            "state": "unknown",
            "detail": "",
        }
        if choice.problem is not None:
            report.update(state="no-backend", detail=choice.problem.message, hint=choice.problem.hint)
        else:
            report.update(_probe(choice, model, client, token_info, hf_provider, device))
        report["token"] = _token_report(choice, client, token_info)
        if history_stats is not None:
            report["history"] = history_stats
        return report
    finally:
        if own:
            client.close()


def _probe(choice, model, client: httpx.Client, token_info, hf_provider, device) -> dict[str, Any]:
    """What the chosen backend says of the model: its state, and what it knows besides."""
    if choice.backend == "hf-endpoint":
        assert choice.url is not None
        probe = probe_endpoint(
            client, choice.url, TokenScope(token_info, endpoint_url=choice.url), model=model
        )
        found: dict[str, Any] = {
            "state": probe.state,
            "detail": probe.detail,
            "estimated_time": probe.estimated_time,
            "round_trip_ms": probe.round_trip_ms,
        }
        if "handler" in probe.extra:
            found["handler"] = probe.extra["handler"]
        if probe.extra.get("hint"):
            found["hint"] = probe.extra["hint"]
        return found
    if choice.backend == "hf-providers":
        return router_status(model, client, hf_provider)
    if choice.backend == "hf-inference":
        scope = TokenScope(token_info)
        hub = {
            mid: hub_model_info(client, mid, scope)
            for mid in dict.fromkeys((model.base_model, model.huggingface_model))
        }
        used = hub[model.base_model]
        return {
            "state": used["state"] if used["state"] in ("warm", "cold", "unreachable") else "unknown",
            "detail": used["detail"],
            "round_trip_ms": used.get("round_trip_ms"),
            "hub": hub,
            "note": "text-to-image only: the pose goes into the prompt; pose control needs an endpoint",
        }
    return local_status.probe_local(model, device or local_status.local_device)


def _token_report(choice, client: httpx.Client, token_info) -> dict[str, Any]:
    if choice.backend == "hf-providers":  # whoami lives on huggingface.co, not on the router
        detail = (
            "set; sent to the router only (not checked here)"
            if token_info.found
            else "set HF_TOKEN or run `hf auth login` (the token needs 'Make calls to Inference Providers')"
        )
        return {"found": token_info.found, "source": token_info.source, "valid": None, "detail": detail}
    if not token_info.found or uses_hub_token(choice.backend, choice.url):
        return check_token(client, token_info)  # no token: answered without a request
    # Asking huggingface.co about a token this backend never sends would only leak intent.
    return {
        "found": True,
        "source": token_info.source,
        "valid": None,
        "detail": "not checked: the backend in use does not send it",
    }


def uses_hub_token(backend: str | None, url: str | None) -> bool:
    """The Hugging Face token matters only to the router and to endpoints on Hugging Face hosts."""
    return backend == "hf-inference" or (backend == "hf-endpoint" and url is not None and is_hf_host(url))


def router_status(model: Any, client: httpx.Client, hf_provider: str | None) -> dict[str, Any]:
    """The hf-providers part of the report: the Hub's live mapping for the provider used."""
    from avatargen.errors import AvatargenError
    from avatargen.providers.router import resolve_hf_provider
    from avatargen.providers.router_status import provider_mapping
    from avatargen.settings import router_base_url

    try:
        name, provider_id = resolve_hf_provider(model, hf_provider)
    except AvatargenError as exc:
        return {"state": "no-backend", "detail": exc.message, "hint": exc.hint}
    info = provider_mapping(client, model, name, provider_id)
    return {
        "state": info["state"],
        "detail": info["detail"],
        "url": f"{router_base_url()}/{name} ({provider_id})",
        "round_trip_ms": info.get("round_trip_ms"),
        "mapping": {k: v for k, v in info.items() if k not in ("state", "detail", "round_trip_ms")},
        "note": f"pose as {model.pose_input}: "
        + (
            "the skeleton is sent as a second image"
            if model.pose_input == "image"
            else "the pose is described in the prompt (no pose image)"
        ),
    }
