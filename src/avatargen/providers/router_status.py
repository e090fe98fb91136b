"""Is a model served by an Inference Provider right now? The Hub's live provider mapping.

GET {HF_ENDPOINT or https://huggingface.co}/api/models/{id}?expand[]=inferenceProviderMapping
answers {provider: {status: live|staging, providerId, task}} (older answers: a list of entries).
No token is sent: the mapping is public, and this host is not the router.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx

from avatargen import environment, settings
from avatargen.providers.http_client import (
    PROBE_BODY_BYTES,
    PROBE_TIMEOUT_S,
    BodyTooLarge,
    elapsed_ms,
    network_detail,
    send_capped,
    server_message,
)


def mapping_entries(data: Any) -> dict[str, dict[str, str]]:
    """{provider: {"status", "providerId", "task"}} from either shape the Hub has sent."""
    mapping = data.get("inferenceProviderMapping") if isinstance(data, dict) else None
    items: list[tuple[str, Any]] = []
    if isinstance(mapping, dict):
        items = list(mapping.items())
    elif isinstance(mapping, list):
        items = [(e.get("provider"), e) for e in mapping if isinstance(e, dict)]
    out: dict[str, dict[str, str]] = {}
    for name, entry in items:
        if isinstance(name, str) and isinstance(entry, dict):
            out[name] = {k: str(entry.get(k, "")) for k in ("status", "providerId", "task")}
    return out


def provider_mapping(
    client: httpx.Client, model: Any, hf_provider: str, provider_model_id: str
) -> dict[str, Any]:
    """state: live | staging | absent (the provider does not serve it) | unreachable | unknown."""
    model_id = model.huggingface_model
    url = f"{settings.hub_base_url()}/api/models/{model_id}"
    began = time.perf_counter()
    base = {"model": model_id, "provider": hf_provider, "catalog_id": provider_model_id, "url": url}
    if os.environ.get(environment.HF_HUB_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on"):
        return {**base, "state": "unknown", "detail": "not checked: HF_HUB_OFFLINE is set", "providers": {}}
    try:
        response = send_capped(
            client,
            "GET",
            url,
            cap=PROBE_BODY_BYTES,
            params={"expand[]": "inferenceProviderMapping"},
            timeout=PROBE_TIMEOUT_S,
        )
    except httpx.TransportError as exc:
        detail = f"the Hub could not be reached ({network_detail(exc, [])})"
        return {**base, "state": "unreachable", "detail": detail, "round_trip_ms": elapsed_ms(began)}
    except BodyTooLarge as exc:
        return {**base, "state": "unknown", "detail": f"the Hub answered {exc}", "providers": {}}
    ms = elapsed_ms(began)
    if response.status_code != 200:
        detail = f"the Hub answered HTTP {response.status_code}: {server_message(response)}"
        return {**base, "state": "unknown", "detail": detail, "round_trip_ms": ms, "providers": {}}
    try:
        entries = mapping_entries(response.json())
    except ValueError:
        entries = {}
    others = ", ".join(f"{p} ({e['status'] or '?'})" for p, e in entries.items() if p != hf_provider)
    also = f"; also {others}" if others else ""
    entry = entries.get(hf_provider)
    if entry is None:
        detail = f"{hf_provider} does not serve {model_id} now{also or '; no provider does'}"
        return {**base, "state": "absent", "detail": detail, "round_trip_ms": ms, "providers": entries}
    state = entry["status"] if entry["status"] in ("live", "staging") else "unknown"
    detail = f"{hf_provider} serves it as {entry['providerId'] or '?'} ({entry['status'] or 'no status'})"
    if entry["providerId"] and entry["providerId"] != provider_model_id:
        detail += f", not as the catalog's {provider_model_id}"
    if entry["task"] and entry["task"] != "image-to-image":
        detail += f", for task {entry['task']} (not image-to-image)"
    return {**base, "state": state, "detail": detail + also, "round_trip_ms": ms, "providers": entries}


def live_provider_id(info: dict[str, Any], hf_provider: str) -> str | None:
    """The id a provider_mapping answer maps the model to on `hf_provider` when that mapping is live
    (for image-to-image); None when the Hub was offline, unreachable, or maps nothing live there."""
    entry = (info.get("providers") or {}).get(hf_provider) or {}
    if info.get("state") != "live" or entry.get("task") not in ("", "image-to-image"):
        return None
    return entry.get("providerId") or None
