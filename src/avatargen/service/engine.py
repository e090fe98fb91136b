"""The engine behind the service: the CLI's own BatchRunner, one claimed job at a time.

Everything that builds the engine is in `run_generation`, so the CLI and the service stay two
front doors to one engine (when BatchRunner becomes an application layer, only that function
changes). Providers and the per-model gates (one cold-start wait, one 429 pause) live in
`SharedEngine`, so every worker thread of a process shares them exactly as a batch's workers do.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatargen.batch import RunSettings, Summary
from avatargen.catalog import Catalog, Model
from avatargen.plan import Job


@dataclass(frozen=True)
class BackendOptions:
    """How workers reach the models: the CLI's own options (--endpoint, --provider, --tiny...)."""

    endpoint: str | None = None
    provider: str | None = None
    token: str | None = None
    wait_timeout: float | None = None
    model_dir: str | None = None
    tiny: bool = False
    hf_provider: str | None = None


def run_settings(config: dict[str, Any], options: BackendOptions) -> RunSettings:
    """RunSettings as `generate` builds them from config and options, for one job at a time."""
    limits = config.get("limits", {}) if isinstance(config.get("limits"), dict) else {}
    provider = options.provider or ("local" if options.tiny or options.model_dir else None)
    return RunSettings(
        concurrency=1,  # one job per runner: the service's parallelism is its worker threads
        overwrite=True,  # a job run again after a crash replaces its own half-finished output
        fallback=True,
        live_progress=False,
        endpoint=options.endpoint,
        provider=provider or config.get("provider"),
        token=options.token,
        wait_timeout=options.wait_timeout or config.get("wait_timeout"),
        daily_limit=limits.get("daily_requests"),
        model_limits=dict(limits.get("models", {})),
        model_dir=options.model_dir,
        tiny=options.tiny,
        hf_provider=options.hf_provider,
    )


class SharedEngine:
    """What every worker thread of one process shares: catalog, providers, gates, poses."""

    def __init__(self, catalog: Catalog, settings: RunSettings, provider_factory=None) -> None:
        self.catalog = catalog
        self.settings = settings
        self._factory = provider_factory
        self._providers: dict[tuple[str, str | None], Any] = {}
        self._gates: dict[str, Any] = {}
        self._poses: dict[str, Any] = {}
        self._lock = threading.Lock()

    def provider(self, model: Model, **kwargs: Any) -> Any:
        """One provider per model (and endpoint), made on first use by the CLI's factory."""
        key = (model.key, kwargs.get("endpoint"))
        with self._lock:
            if key not in self._providers:
                factory = self._factory
                if factory is None:
                    from avatargen.providers.select import make_provider

                    factory = make_provider
                    if self.settings.hf_provider:
                        kwargs["hf_provider"] = self.settings.hf_provider
                self._providers[key] = factory(model, **kwargs)
            return self._providers[key]

    def gate_for(self, model_key: str) -> Any:
        from avatargen.providers.gate import ModelGate

        with self._lock:
            return self._gates.setdefault(model_key, ModelGate())

    def gate_state(self, model_key: str) -> str | None:
        """What a job of this model waits for now ("model loading, ~N s"), or None."""
        with self._lock:
            gate = self._gates.get(model_key)
        if gate is None:
            return None
        seconds = int(gate.paused_for() + 0.999)
        if gate.loading:
            return f"model loading, ~{max(seconds, 1)} s"
        if seconds:
            return f"rate limited, ~{seconds} s"
        return None

    def pose(self, spec: str) -> Any:
        with self._lock:
            cached = self._poses.get(spec)
        if cached is None:
            from avatargen.poses.sources import resolve_pose

            cached = resolve_pose(spec)
            with self._lock:
                self._poses[spec] = cached
        return cached

    def close(self) -> None:
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            with contextlib.suppress(Exception):
                provider.close()


def run_generation(shared: SharedEngine, ledger: Any, job: Job, output_dir: Path) -> Summary:
    """Run one job through BatchRunner with `ledger` (a service ledger adapter) as its ledger."""
    from avatargen.batch import BatchRunner

    runner = BatchRunner(
        ledger,
        shared.catalog,
        {job.params.pose_spec: shared.pose(job.params.pose_spec)},
        shared.settings,
        provider_factory=shared.provider,
    )
    runner.gate_for = shared.gate_for  # one cold-start wait and 429 pause per model, process-wide
    # No runner.close(): the providers are the process's, closed by SharedEngine.close().
    return runner.run(f"svc-{job.job_key}", [job], output_dir)
