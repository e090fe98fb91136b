"""Status probes: an endpoint's /health, the Hub's view of a model, the token, the local device.

Every network failure becomes a state ('unreachable', 'unauthorized', ...) in the report, never an
exception: `avatargen status` must answer even when nothing can be reached.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import httpx

from avatargen.providers.base import StatusReport
from avatargen.providers.http_client import TokenScope, estimated_time, scrub, server_message

HUB_API = "https://huggingface.co/api"
WHOAMI_URL = f"{HUB_API}/whoami-v2"
PROBE_TIMEOUT_S = 10.0


def _ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 1)


def _network_detail(exc: Exception, scope: TokenScope) -> str:
    return scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, scope.secrets())


def probe_endpoint(client: httpx.Client, url: str, scope: TokenScope) -> StatusReport:
    """GET {url}/health (the inference toolkit's route), falling back to GET {url}."""
    base = url.rstrip("/")
    candidates = [f"{base}/health", url]
    for probe_url in candidates:
        began = time.perf_counter()
        try:
            response = client.get(probe_url, headers=scope.headers_for(probe_url), timeout=PROBE_TIMEOUT_S)
        except httpx.TransportError as exc:
            return StatusReport(
                "hf-endpoint",
                url,
                "unreachable",
                detail=_network_detail(exc, scope),
                round_trip_ms=_ms(began),
            )
        ms = _ms(began)
        if response.status_code in (404, 405) and probe_url != url:
            continue  # a server without /health: ask the root instead
        break
    code = response.status_code
    message = scrub(server_message(response), scope.secrets()) if code >= 300 else ""
    extra = {"http_status": code, "probed": probe_url}
    if 200 <= code < 300:
        return StatusReport("hf-endpoint", url, "ready", round_trip_ms=ms, extra=extra)
    if code == 503:
        estimate = estimated_time(response)
        detail = f"loading, ~{estimate:.0f} s" if estimate is not None else "starting (scaled to zero?)"
        return StatusReport(
            "hf-endpoint",
            url,
            "starting",
            detail=detail,
            estimated_time=estimate,
            round_trip_ms=ms,
            extra=extra,
        )
    if code in (401, 403):
        has_token = scope.token_for(url) is not None
        detail = f"HTTP {code}: {message}" + ("" if has_token else " (no token is sent to this host)")
        return StatusReport("hf-endpoint", url, "unauthorized", detail=detail, round_trip_ms=ms, extra=extra)
    return StatusReport(
        "hf-endpoint", url, "unknown", detail=f"HTTP {code}: {message}", round_trip_ms=ms, extra=extra
    )


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
            "detail": _network_detail(exc, scope),
            "providers": {},
            "round_trip_ms": _ms(began),
        }
    ms = _ms(began)
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
        report["detail"] = f"could not be checked: huggingface.co unreachable ({_network_detail(exc, scope)})"
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


def local_device() -> str:
    """cuda, mps or cpu for the local backend; 'unavailable' without torch (the serve extra)."""
    try:
        import torch
    except ImportError:
        return "unavailable"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


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
    endpoint: str | None = None,
    provider: str | None = None,
    token: str | None = None,
    client: httpx.Client | None = None,
    history_stats: dict[str, Any] | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """The whole `avatargen status MODEL` report as one dict (the --json output).

    `history_stats` is the hook for recent success rate and median latency from the ledger's
    history (issue 5/7): when given, it is shown as-is under "history".
    """
    from avatargen.providers.select import choose_backend, resolve_wait_timeout
    from avatargen.settings import find_token

    choice = choose_backend(model, endpoint=endpoint, provider=provider)
    token_info = find_token(token)
    own = client is None
    client = client or httpx.Client(timeout=PROBE_TIMEOUT_S, follow_redirects=False)
    try:
        report: dict[str, Any] = {
            "model": model_facts(model),
            "backend": choice.backend,
            "url": choice.url,
            "url_source": choice.source,
            "wait_timeout": resolve_wait_timeout(None),
            "state": "unknown",
            "detail": "",
        }
        if choice.problem is not None:
            report.update(state="no-backend", detail=choice.problem.message, hint=choice.problem.hint)
        elif choice.backend == "hf-endpoint":
            assert choice.url is not None
            probe = probe_endpoint(client, choice.url, TokenScope(token_info, endpoint_url=choice.url))
            report.update(
                state=probe.state,
                detail=probe.detail,
                estimated_time=probe.estimated_time,
                round_trip_ms=probe.round_trip_ms,
            )
        elif choice.backend == "hf-inference":
            scope = TokenScope(token_info)
            hub = {
                mid: hub_model_info(client, mid, scope)
                for mid in dict.fromkeys((model.base_model, model.huggingface_model))
            }
            used = hub[model.base_model]
            state = used["state"] if used["state"] in ("warm", "cold", "unreachable") else "unknown"
            report.update(
                state=state,
                detail=used["detail"],
                round_trip_ms=used.get("round_trip_ms"),
                hub=hub,
                note="text-to-image only: the pose goes into the prompt; pose control needs an endpoint",
            )
        else:
            found = (device or local_device)()
            report.update(
                state="local",
                device=found,
                detail=f"runs in-process on {found}" + (" (slow)" if found == "cpu" else ""),
            )
        report["token"] = check_token(client, token_info)
        if history_stats is not None:
            report["history"] = history_stats
        return report
    finally:
        if own:
            client.close()
