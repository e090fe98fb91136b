"""The backends of one run (or of a service's lifetime): one provider and one cold-start /
rate-limit gate per model, shared by every worker thread, so a cold model is waited for once and
a 429 slows every worker down, not just the one that met it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from avatargen.catalog import Model
from avatargen.errors import AvatargenError


class Backends:
    def __init__(self, settings, config, factory: Callable[..., Any] | None = None) -> None:
        self.settings = settings  # RunSettings: endpoint, provider, token, wait_timeout, local options
        self.config = config  # the user's Config, read once by the front door
        self._factory = factory
        self._providers: dict[str, Any] = {}
        self._gates: dict[str, Any] = {}
        self._lock = threading.Lock()

    def provider_for(self, model: Model, primary: bool = True):
        """The model's provider, built once. `primary`: --endpoint names the server of the model
        asked for; a fallback uses its own."""
        with self._lock:
            if model.key not in self._providers:
                from avatargen.providers.select import make_provider

                factory = self._factory or make_provider
                # Backend-specific options, passed only when set (--model-dir, --tiny, --hf-provider).
                local = {
                    "model_dir": self.settings.model_dir,
                    "tiny": self.settings.tiny,
                    "hf_provider": self.settings.hf_provider,
                }
                self._providers[model.key] = factory(
                    model,
                    config=self.config,
                    endpoint=self.settings.endpoint if primary else None,
                    provider=self.settings.provider,
                    token=self.settings.token,
                    wait_timeout=self.settings.wait_timeout,
                    **{k: v for k, v in local.items() if v},
                )
            return self._providers[model.key]

    def gate_for(self, model_key: str):
        from avatargen.providers.gate import ModelGate

        with self._lock:
            return self._gates.setdefault(model_key, ModelGate())

    def waiting_for(self, model_key: str) -> str | None:
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

    def preflight(self, model: Model, announce: Callable[[str], None], fallbacks: list[Model] = ()) -> None:
        """One status probe before any job is sent: a cold model is announced once and every
        worker waits at the gate instead of discovering it on its own. Nothing listening at any
        server of the model or its fallbacks raises NetworkError (providers/reachable.py)."""
        from avatargen.providers.reachable import every_server_refused, nothing_listens

        provider = self.provider_for(model)
        try:
            report = provider.status()
        except AvatargenError as exc:
            announce(f"pre-flight check of {model.alias} failed: {exc.message}")
            return
        if every_server_refused(provider, report) and all(
            every_server_refused(p, p.status())
            for p in (self.provider_for(m, primary=False) for m in fallbacks)
        ):
            raise nothing_listens(model, report)
        if report.state == "starting":
            seconds = report.estimated_time or 10.0
            announce(f"model loading, ~{int(seconds)} s ({model.alias} at {report.url})")
            self.gate_for(model.key).mark_loading(seconds)
        elif report.state in ("unreachable", "unauthorized") and report.backend == "hf-providers":
            # Its probe asks the Hub for the provider mapping, not the router the jobs go to.
            announce(
                f"pre-flight: the Hugging Face Hub did not confirm {model.alias}'s provider mapping "
                f"({report.detail}); sending to the router anyway"
            )
        elif report.state in ("unreachable", "unauthorized", "foreign-handler"):
            announce(f"pre-flight: {model.alias} is {report.state}: {report.detail}")

    def close(self) -> None:
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
        for provider in providers:
            with contextlib.suppress(Exception):  # closing must never hide the batch's own result
                provider.close()
