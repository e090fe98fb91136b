"""The engine behind the service: the application layer's BatchRunner, one claimed job at a time.

A SharedEngine is made once per process and shared by every worker thread: the backends (one
provider and one cold-start / 429 gate per model, app/backends.py), the fallback chains and the
rendered skeletons, exactly what one CLI batch shares between its workers. RunSettings come from
the same options and config as `generate`'s (app/planning.run_settings)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from avatargen.app.backends import Backends
from avatargen.app.fallbacks import FallbackPolicy
from avatargen.app.planning import run_settings as cli_run_settings
from avatargen.app.request import RunOptions
from avatargen.batch import RunSettings, Summary
from avatargen.catalog import Catalog
from avatargen.config import Config
from avatargen.plan import Job

# How workers reach the models: the CLI's own options (--endpoint, --provider, --tiny, ...).
BackendOptions = RunOptions


def run_settings(config: dict[str, Any], options: RunOptions) -> RunSettings:
    """RunSettings as `generate` builds them, for one job at a time: the service's parallelism
    is its worker threads, and a job run again after a crash replaces its own half-made output."""
    settings = cli_run_settings(options, Config.from_dict(config))
    return dataclasses.replace(settings, concurrency=1, overwrite=True, live_progress=False)


class SharedEngine:
    """What every worker thread of one process shares: catalog, backends, fallbacks, poses."""

    def __init__(
        self, catalog: Catalog, settings: RunSettings, config: Config | None = None, provider_factory=None
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.backends = Backends(settings, config or Config(), provider_factory)  # None: no user config
        self.fallbacks = FallbackPolicy(
            catalog, self.backends, enabled=settings.fallback, allow_upgrade=settings.allow_upgrade
        )
        self.pose_pngs: dict[tuple[str, int, int], bytes] = {}  # skeletons, rendered once per process
        self._poses: dict[str, Any] = {}
        self._lock = threading.Lock()

    def gate_state(self, model_key: str) -> str | None:
        """What a job of this model waits for now ("model loading, ~N s"), or None."""
        return self.backends.waiting_for(model_key)

    def pose(self, spec: str) -> Any:
        with self._lock:
            cached = self._poses.get(spec)
        if cached is None:
            from avatargen.poses.sources import resolve_pose

            cached = resolve_pose(spec)
            if "/" not in spec:  # templates are kept; a user's own pose file is read per job
                with self._lock:
                    self._poses[spec] = cached
        return cached

    def close(self) -> None:
        self.backends.close()


def run_generation(shared: SharedEngine, ledger: Any, job: Job, output_dir: Path) -> Summary:
    """Run one job through BatchRunner with `ledger` (a service ledger adapter) as its ledger."""
    from avatargen.batch import BatchRunner

    runner = BatchRunner(
        ledger,
        shared.catalog,
        {job.params.pose_spec: shared.pose(job.params.pose_spec)},
        shared.settings,
        backends=shared.backends,
        fallbacks=shared.fallbacks,
        pose_pngs=shared.pose_pngs,
    )
    # No runner.close(): the backends are the process's, closed by SharedEngine.close().
    return runner.run(f"svc-{job.job_key}", [job], output_dir)
