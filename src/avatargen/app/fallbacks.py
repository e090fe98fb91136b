"""Which models a job may run on: the model asked for, then its catalog fallbacks that are
enabled, no dearer (unless --allow-upgrade) and run on the same backend."""

from __future__ import annotations

import threading

from avatargen.catalog import Catalog, Model
from avatargen.errors import AvatargenError, ModelUnavailable, NetworkError


class FallbackPolicy:
    def __init__(self, catalog: Catalog, backends, *, enabled: bool, allow_upgrade: bool) -> None:
        self.catalog = catalog
        self.backends = backends
        self.enabled = enabled
        self.allow_upgrade = allow_upgrade
        self._chains: dict[str, list[Model]] = {}
        self._lock = threading.Lock()

    def models_to_try(self, model: Model) -> list[Model]:
        with self._lock:
            cached = self._chains.get(model.key)
        if cached is None:
            cached = self._chain(model)
            with self._lock:
                self._chains[model.key] = cached
        return cached

    def _chain(self, model: Model) -> list[Model]:
        chain = [model]
        if not self.enabled:
            return chain
        for key in model.fallbacks:
            candidate = self.catalog.by_key.get(key)
            if candidate is None or not candidate.enabled or candidate in chain:
                continue
            if candidate.credit_cost > model.credit_cost and not self.allow_upgrade:
                continue
            if self._same_backend(model, candidate):
                chain.append(candidate)
        return chain

    def _same_backend(self, model: Model, candidate: Model) -> bool:
        """A fallback runs where the asked-for model runs: never a surprise switch from an
        endpoint to downloading gigabytes for an in-process model, or to a text-only router."""
        from avatargen.providers.select import choose_backend

        try:
            choice = choose_backend(
                candidate, provider=self.backends.settings.provider, config=self.backends.config
            )
        except AvatargenError:
            return False
        return choice.problem is None and choice.backend == self.backends.provider_for(model).name


def fallback_worthy(exc: AvatargenError) -> bool:
    """A model that stayed unavailable, or 5xx / network failures beyond the retries."""
    if isinstance(exc, ModelUnavailable | NetworkError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status >= 500
