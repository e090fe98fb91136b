"""The backends avatargen can run a model on, each registered once with what the engine must
know about it: its name, whether it needs a Hugging Face token, and how it is built from a
typed BackendConfig. Which backend runs a model is chosen once, above them (select.py); a
backend never looks anything up on its own.

Built-in backends are registered here exactly as a third party's would be, through
`register` (as simonw/llm registers its default plugins)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatargen.catalog import Model
    from avatargen.providers.base import Provider


@dataclass(frozen=True)
class BackendConfig:
    """Everything a backend is built from: resolved above it, passed in."""

    url: str | None = None  # hf-endpoint: the server; others: where they send, for display
    url_source: str = ""  # where the URL came from (named in its errors)
    token: Any = None  # settings.TokenInfo (never a bare string: it stays masked)
    wait_timeout: float = 600.0
    model_dir: str | Path | None = None  # local
    tiny: bool = False  # local
    hf_provider: str | None = None  # hf-providers


@dataclass(frozen=True)
class Backend:
    name: str
    needs_token: bool  # every request is refused without a Hugging Face token
    summary: str
    build: Callable[[Model, BackendConfig], Provider]  # its status probe is the provider's status()


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    _REGISTRY[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def _endpoint(model: Model, config: BackendConfig) -> Provider:
    from avatargen.providers.endpoint import EndpointProvider

    assert config.url is not None
    return EndpointProvider(
        model, config.url, token=config.token, wait_timeout=config.wait_timeout, url_source=config.url_source
    )


def _inference(model: Model, config: BackendConfig) -> Provider:
    from avatargen.providers.inference import InferenceProvider

    return InferenceProvider(model, token=config.token, wait_timeout=config.wait_timeout)


def _local(model: Model, config: BackendConfig) -> Provider:
    from avatargen.providers.local import LocalProvider  # the serve extra: heavy, so only now

    # None, not False, when not asked for: LocalProvider then reads its environment defaults.
    return LocalProvider(model, model_dir=config.model_dir or None, tiny=True if config.tiny else None)


def _router(model: Model, config: BackendConfig) -> Provider:
    from avatargen.providers.router import RouterProvider

    return RouterProvider(
        model, token=config.token, hf_provider=config.hf_provider, wait_timeout=config.wait_timeout
    )


register(
    Backend(
        "hf-endpoint", False, "a dedicated Inference Endpoint or any server running our handler", _endpoint
    )
)
register(
    Backend(
        "hf-inference", True, "serverless Hugging Face (text-to-image only: no control image)", _inference
    )
)
register(Backend("local", False, "the model in this process (the serve extra)", _local))
register(Backend("hf-providers", True, "Inference Providers through the Hugging Face router", _router))
