"""The user's config.toml as the engine reads it: typed, read once by the front door and passed
down, so nothing below the app layer looks config up on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_CONCURRENCY = 4
DEFAULT_CONFIRM_ABOVE = 100


@dataclass(frozen=True)
class Config:
    model: str | None = None
    plan: str | None = None  # the highest tier this user may run
    provider: str | None = None
    concurrency: int | None = None  # None: not set (a deployed endpoint's replicas may decide)
    wait_timeout: float | None = None
    output_template: str | None = None
    confirm_above: int = DEFAULT_CONFIRM_ABOVE
    endpoint_after: str = "keep"
    daily_requests: int | None = None
    model_limits: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        limits = data.get("limits") if isinstance(data.get("limits"), dict) else {}
        models = limits.get("models") if isinstance(limits.get("models"), dict) else {}
        return cls(
            model=data.get("model") or None,
            plan=data.get("plan") or None,
            provider=data.get("provider") or None,
            concurrency=int(data["concurrency"]) if data.get("concurrency") else None,
            wait_timeout=data.get("wait_timeout") or None,
            output_template=data.get("output_template") or None,
            confirm_above=int(data.get("confirm_above") or DEFAULT_CONFIRM_ABOVE),
            endpoint_after=str(data.get("endpoint_after") or "keep"),
            daily_requests=limits.get("daily_requests"),
            model_limits=dict(models),
            raw=data,
        )


def load() -> Config:
    from avatargen import settings

    return Config.from_dict(settings.load_config())
