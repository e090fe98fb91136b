"""The service's settings: config.toml's `[service]` table, overridden by command-line options.

[service]
workers = 2                # worker threads in `avatargen api` (0: accept only)
user_concurrency = 2       # jobs of one user running at once, across all workers
max_pending_per_user = 10000  # more queued is answered 503 queue_full + Retry-After
max_upload_bytes = 20000000   # a request body larger is 413 too_large
max_pixels = 40000000      # an image whose header says more is 413 too_large (never decoded)
body_timeout = 30          # seconds a request body may take; slower is 408 request_timeout
rate_per_minute = 120      # generate requests per user per minute; more is 429 rate_limited
lease_seconds = 60         # a claimed job's lease; renewed while it runs
cors_origins = []          # origins allowed to call the API from a browser (off when empty)
webhooks = false           # accept per-generation webhookUrl
webhook_secret = "..."     # HMAC key of X-Avatargen-Signature (default: one made per database)
[service.limits]
user_daily = 500           # generations per user per day (UTC), all models
[service.limits.models]
"avatar-generator:controlnet-openpose-sdxl-ultra" = 50   # per user per day for one model
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatargen.errors import ConfigError
from avatargen.service.queue import Limits


@dataclass
class ServiceConfig:
    data_dir: Path
    database: str | None = None
    workers: int = 2
    user_concurrency: int = 2
    max_pending_per_user: int = 10000
    max_upload_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    body_timeout: float = 30.0
    rate_per_minute: int = 120
    lease_seconds: float = 60.0
    cors_origins: list[str] = field(default_factory=list)
    webhooks: bool = False
    webhook_secret: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"


_INTS = (
    "workers",
    "user_concurrency",
    "max_pending_per_user",
    "max_upload_bytes",
    "max_pixels",
    "rate_per_minute",
)
_FLOATS = ("body_timeout", "lease_seconds")


def load(
    config: dict[str, Any], data_dir: Path | None = None, database: str | None = None, **overrides: Any
) -> ServiceConfig:
    from avatargen.settings import data_dir as default_data_dir

    table = config.get("service", {})
    if not isinstance(table, dict):
        raise ConfigError("config: [service] must be a table", "see docs/api.md, 'Configuration'")
    out = ServiceConfig(
        data_dir=Path(data_dir) if data_dir else default_data_dir(),
        database=database or table.get("database"),
    )
    for name in _INTS + _FLOATS:
        if name in table:
            value = table[name]
            kind = int if name in _INTS else (int, float)
            if not isinstance(value, kind) or isinstance(value, bool) or value < 0:
                raise ConfigError(
                    f"config: service.{name} = {value!r} is not a number >= 0", "fix config.toml"
                )
            setattr(out, name, value)
    if "cors_origins" in table:
        origins = table["cors_origins"]
        if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
            raise ConfigError(
                "config: service.cors_origins must be a list of origins", 'e.g. ["https://app.example"]'
            )
        out.cors_origins = origins
    out.webhooks = bool(table.get("webhooks", False))
    out.webhook_secret = table.get("webhook_secret") or None
    limits = table.get("limits", {}) if isinstance(table.get("limits"), dict) else {}
    models = limits.get("models", {}) if isinstance(limits.get("models"), dict) else {}
    out.limits = Limits(
        user_daily=limits.get("user_daily"), model_daily={str(k): int(v) for k, v in models.items()}
    )
    for name, value in overrides.items():
        if value is not None:
            setattr(out, name, value)
    return out
