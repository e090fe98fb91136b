"""Carry out a deploy plan: bundle -> private repository -> endpoint (created or updated) ->
running -> one probe -> URL stored in config `endpoints.<model key>`."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avatargen import settings
from avatargen.deploy import hub, records
from avatargen.deploy.plan import DeployPlan
from avatargen.errors import ModelUnavailable, NetworkError

DEFAULT_WAIT_S = 1800.0
FAILED_STATES = ("failed", "updateFailed")


def deploy(
    plan: DeployPlan,
    model: Any,
    token: str,
    *,
    wait: bool = True,
    wait_timeout: float = DEFAULT_WAIT_S,
    say: Callable[[str], None],
    show_state: Callable[[str, float], None],
) -> dict[str, Any]:
    from avatargen.serve.bundle import write_bundle

    api = hub.hf_api(token)
    if plan.namespace is None:
        me = hub.call("who am I (whoami)", api.whoami)
        plan.namespace = str(me.get("name") or "")
    with tempfile.TemporaryDirectory(prefix="avatargen-bundle-") as tmp:
        folder = Path(tmp)
        write_bundle(model, folder)
        hub.call(
            f"create repository {plan.repo_id}", api.create_repo, plan.repo_id, private=True, exist_ok=True
        )
        say(f"uploading the bundle to {plan.repo_id}")
        commit = hub.call(
            f"upload to {plan.repo_id}",
            api.upload_folder,
            repo_id=plan.repo_id,
            folder_path=str(folder),
            commit_message="avatargen endpoint deploy",
        )
    revision = getattr(commit, "oid", None)
    endpoint, created = _create_or_update(api, plan, revision)
    say(f"{'created' if created else 'updated'} endpoint {plan.namespace}/{plan.name}")
    result = {
        "model": plan.model_key,
        "name": plan.name,
        "namespace": plan.namespace,
        "repository": plan.repo_id,
        "revision": revision,
        "created": created,
        "state": endpoint.status,
        "url": endpoint.url,
    }
    records.put(plan.model_key, _record(plan, endpoint))
    if not wait:
        return result
    endpoint = wait_running(endpoint, wait_timeout, show_state)
    result.update(state=endpoint.status, url=endpoint.url)
    records.put(plan.model_key, _record(plan, endpoint))
    result["probe"] = probe(model, endpoint.url)
    settings.add_endpoint_url(plan.model_key, endpoint.url)
    result["config"] = f"endpoints.{plan.model_key}"
    return result


def _record(plan: DeployPlan, endpoint: Any) -> dict[str, Any]:
    """What generate needs to know of the endpoint: which it is, and whether it needs a token
    (the API's own type: an update cannot change the security the endpoint was created with)."""
    raw = getattr(endpoint, "raw", None) or {}
    security = raw.get("type") or plan.security
    return {"name": plan.name, "namespace": plan.namespace, "url": endpoint.url, "security": security}


def _create_or_update(api: Any, plan: DeployPlan, revision: str | None) -> tuple[Any, bool]:
    """Update the endpoint of this name if there is one (deploying twice never makes two)."""
    kwargs = plan.endpoint_kwargs()
    try:
        existing = api.get_inference_endpoint(plan.name, namespace=plan.namespace)
    except Exception as exc:
        if hub.status_of(exc) != 404:
            raise hub.to_error(exc, f"look up endpoint {plan.name}") from None
        return (
            hub.call(
                f"create endpoint {plan.name}",
                api.create_inference_endpoint,
                plan.name,
                namespace=plan.namespace,
                revision=revision,
                **kwargs,
            ),
            True,
        )
    # The API cannot move an endpoint to another vendor or region, nor change its security.
    where = (kwargs.pop("vendor"), kwargs.pop("region"))
    kwargs.pop("type")
    provider = existing.raw.get("provider") or {}
    now = (provider.get("vendor"), provider.get("region"))
    if where != now:
        from avatargen.errors import UsageError

        raise UsageError(
            f"endpoint {plan.name} runs on {now[0]} {now[1]}, not {where[0]} {where[1]}: an endpoint cannot move",
            f"delete it first (avatargen endpoint delete {plan.name}) or deploy under another --name",
        )
    return (
        hub.call(
            f"update endpoint {plan.name}",
            api.update_inference_endpoint,
            plan.name,
            namespace=plan.namespace,
            revision=revision,
            **kwargs,
        ),
        False,
    )


def wait_running(endpoint: Any, timeout: float, show_state: Callable[[str, float], None]) -> Any:
    """Poll the API (never the endpoint itself: the HF token stays with the API hosts) until the
    endpoint runs with a URL; a failed state raises with the endpoint's own message."""
    began = time.monotonic()
    pause = 0.2  # quick first looks (a fake or an update can be fast), then every 10 s at most
    while True:
        state = str(endpoint.status)
        show_state(state, time.monotonic() - began)
        if state in FAILED_STATES:
            message = failure_message(endpoint.raw)
            raise ModelUnavailable(
                f"endpoint {endpoint.name} {'failed to update' if state == 'updateFailed' else 'failed'}: {message}",
                f"fix it, then run the deploy again (logs: https://endpoints.huggingface.co/{endpoint.namespace}"
                f"/endpoints/{endpoint.name})",
            )
        if state == "running" and endpoint.url:
            return endpoint
        if time.monotonic() - began > timeout:
            raise NetworkError(
                f"endpoint {endpoint.name} is still {state} after {timeout:.0f} s",
                f"check later: avatargen endpoint status {endpoint.name}",
            )
        time.sleep(pause)
        pause = min(pause * 2, 10.0)
        hub.call(f"read endpoint {endpoint.name}", endpoint.fetch)


def failure_message(raw: dict) -> str:
    status = raw.get("status") if isinstance(raw, dict) else None
    status = status if isinstance(status, dict) else {}
    text = status.get("errorMessage") or status.get("message") or "no message from the API"
    from avatargen.redact import redact_text

    return " ".join(redact_text(str(text)).split())[:300]


def probe(model: Any, url: str) -> dict[str, Any]:
    """One GET /health through our own client (its token rule: the HF token only to HF hosts)."""
    from avatargen import settings
    from avatargen.providers.endpoint import EndpointProvider

    provider = EndpointProvider(model, url, token=settings.find_token(), url_source="deploy")
    try:
        report = provider.status()
    finally:
        provider.close()
    return {"state": report.state, "detail": report.detail}
