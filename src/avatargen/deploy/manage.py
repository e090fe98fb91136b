"""Reading and steering endpoints: which one a name means, what state it is in, what it costs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from avatargen.deploy import hub, records
from avatargen.deploy.plan import TAG, endpoint_name


@dataclass
class Target:
    name: str
    namespace: str | None
    model_key: str | None = None


def target_for(what: str, catalog, namespace: str | None = None) -> Target:
    """A catalog model (key or alias: the endpoint deploy made for it) or an endpoint name."""
    from avatargen.deploy.plan import check_name, check_namespace
    from avatargen.errors import AvatargenError

    check_namespace(namespace)
    try:
        model = catalog.lookup(what)
    except AvatargenError:
        return Target(check_name(what, "endpoint"), namespace)
    record = records.get(model.key) or {}
    return Target(
        str(record.get("name") or endpoint_name(model.alias)),
        namespace or record.get("namespace"),
        model.key,
    )


def namespace_of(api: Any, target_namespace: str | None) -> str:
    if target_namespace:
        return target_namespace
    return str(hub.call("who am I (whoami)", api.whoami).get("name") or "")


def summary(raw: dict, namespace: str, prices: dict[tuple, float] | None = None) -> dict[str, Any]:
    """What `status` and `list` show, from the API's own JSON."""
    compute = raw.get("compute") or {}
    scaling = compute.get("scaling") or {}
    provider = raw.get("provider") or {}
    status = raw.get("status") or {}
    hardware = {
        "vendor": provider.get("vendor"),
        "region": provider.get("region"),
        "accelerator": compute.get("accelerator"),
        "instance_type": compute.get("instanceType"),
        "instance_size": compute.get("instanceSize"),
    }
    price = (prices or {}).get(
        (hardware["vendor"], hardware["region"], hardware["instance_type"], hardware["instance_size"])
    )
    return {
        "name": raw.get("name"),
        "namespace": namespace,
        "state": status.get("state"),
        "url": status.get("url"),
        "message": status.get("errorMessage") or status.get("message"),
        "repository": (raw.get("model") or {}).get("repository"),
        "replicas": {
            "current": status.get("readyReplica"),
            "target": status.get("targetReplica"),
            "min": scaling.get("minReplica"),
            "max": scaling.get("maxReplica"),
        },
        "scale_to_zero_after_min": scaling.get("scaleToZeroTimeout"),
        "hardware": hardware,
        "security": raw.get("type"),
        "tags": raw.get("tags") or [],
        # The API's price for one replica of this hardware; None when it does not say.
        "cost_per_hour_usd": price,
    }


def prices(api: Any, namespace: str) -> dict[tuple, float]:
    """(vendor, region, instance type, size) -> price per hour, from the API's hardware list;
    empty when it cannot be read (the cost is then shown as unknown, never guessed)."""
    try:
        hardware = api.list_inference_endpoints_hardware(namespace=namespace)
    except Exception:  # a price is a nicety: its absence must not stop `status`
        return {}
    return {(h.vendor, h.region, h.instance_type, h.instance_size): h.price_per_hour for h in hardware}


def is_ours(raw: dict) -> bool:
    return TAG in (raw.get("tags") or [])
