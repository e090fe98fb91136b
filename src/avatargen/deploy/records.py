"""Which endpoints avatargen deployed for which model: {model key: [{name, namespace, url, security}]}.

Kept in the data folder (not config.toml: it is our bookkeeping, not a setting) so that
`generate --endpoint-after` and `endpoint status MODEL` know the endpoint behind a URL without
asking the API to search for it.

One record per endpoint (namespace/name): deploying the same model under a second --name adds a
record and never re-points the first, so a batch acts only on the endpoint whose URL it used.
A file written before that (one record per model, a dict) is read as a list of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def path() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "deployed-endpoints.json"


def load() -> dict[str, list[dict[str, Any]]]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for key, value in data.items():
        items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
        kept = [r for r in items if isinstance(r, dict) and isinstance(r.get("name"), str)]
        if kept:
            out[key] = kept
    return out


def all_for(model_key: str) -> list[dict[str, Any]]:
    return load().get(model_key, [])


def get(model_key: str) -> dict[str, Any] | None:
    """The endpoint deployed last for this model (what `endpoint status MODEL` means)."""
    found = all_for(model_key)
    return found[-1] if found else None


def same_url(a: Any, b: Any) -> bool:
    return bool(a) and bool(b) and str(a).rstrip("/") == str(b).rstrip("/")


def for_url(model_key: str, url: str | None) -> dict[str, Any] | None:
    """The record of the endpoint serving at `url`; None for any other URL, and never a record
    whose URL is unknown (a --no-wait or an aborted deploy): nobody can tell the batch uses it."""
    return next((r for r in reversed(all_for(model_key)) if same_url(r.get("url"), url)), None)


def _is(record: dict[str, Any], name: str, namespace: str | None) -> bool:
    return record.get("name") == name and (namespace is None or record.get("namespace") == namespace)


def put(model_key: str, record: dict[str, Any]) -> None:
    """Add or replace (same namespace/name) this endpoint's record; it becomes the model's last."""
    data = load()
    rest = [r for r in data.get(model_key, []) if not _is(r, record["name"], record.get("namespace"))]
    data[model_key] = [*rest, record]
    _save(data)


def forget(name: str, namespace: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Drop the records of this endpoint (whatever model); returns (model key, record) of each."""
    data = load()
    dropped = [(key, r) for key, items in data.items() for r in items if _is(r, name, namespace)]
    if dropped:
        data = {k: kept for k, v in data.items() if (kept := [r for r in v if not _is(r, name, namespace)])}
        _save(data)
    return dropped


def _save(data: dict[str, Any]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def authenticated_where(model_key: str, url: str | None) -> str | None:
    """'namespace/name' when `url` is an endpoint avatargen deployed for the model to need a
    token; None when unknown (no record, another URL, an older record)."""
    from avatargen.providers.credentials import NEEDS_TOKEN

    record = for_url(model_key, url)  # None: the batch talks to another server
    if not record or record.get("security") not in NEEDS_TOKEN:
        return None
    return f"{record.get('namespace')}/{record.get('name')}"
