"""Which endpoint avatargen deployed for which model: {model key: {name, namespace, url}}.

Kept in the data folder (not config.toml: it is our bookkeeping, not a setting) so that
`generate --endpoint-after` and `endpoint status MODEL` know the endpoint behind a URL without
asking the API to search for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def path() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "deployed-endpoints.json"


def load() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def get(model_key: str) -> dict[str, Any] | None:
    return load().get(model_key)


def put(model_key: str, record: dict[str, Any]) -> None:
    data = load()
    data[model_key] = record
    _save(data)


def forget(model_key: str) -> None:
    data = load()
    if data.pop(model_key, None) is not None:
        _save(data)


def _save(data: dict[str, Any]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, target)
