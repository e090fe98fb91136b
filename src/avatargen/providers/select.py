"""Which backend runs a model, and at which URL.

Endpoint URL, first match wins: `--endpoint URL`, AVATARGEN_ENDPOINT, config `endpoints.<model key>`,
the catalog's `endpoint` field. Backend: a forced provider (`--provider` or config `provider`) wins;
otherwise an endpoint URL means hf-endpoint, no URL means the in-process local backend when the
`serve` extra is installed, and an error otherwise (serverless Hugging Face cannot run ControlNet).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from avatargen import settings
from avatargen.catalog import Model
from avatargen.errors import AvatargenError, ConfigError, ModelUnavailable, UsageError
from avatargen.providers.base import Provider

ENDPOINT_ENV = "AVATARGEN_ENDPOINT"
BACKENDS = settings.PROVIDERS  # ('hf-endpoint', 'hf-inference', 'local')


@dataclass(frozen=True)
class BackendChoice:
    backend: str | None  # None: nothing can run this model here (see `problem`)
    url: str | None
    source: str  # where the URL (or the choice) came from
    problem: AvatargenError | None = None


def _checked_url(url: str, source: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        cls = UsageError if source == "--endpoint" else ConfigError
        raise cls(f"endpoint URL from {source} must start with http:// or https://, got '{url}'")
    return url


def resolve_endpoint(model: Model, endpoint: str | None = None) -> tuple[str | None, str]:
    """(url, source): --endpoint, AVATARGEN_ENDPOINT, config endpoints.<key>, catalog; else (None, 'none')."""
    if endpoint and endpoint.strip():
        return _checked_url(endpoint, "--endpoint"), "--endpoint"
    env = os.environ.get(ENDPOINT_ENV, "").strip()
    if env:
        return _checked_url(env, ENDPOINT_ENV), ENDPOINT_ENV
    key = f"endpoints.{model.key}"
    configured = settings.get_value(key)
    if isinstance(configured, str) and configured.strip():
        return _checked_url(configured, f"config {key}"), f"config {key}"
    if model.endpoint.strip():
        return _checked_url(model.endpoint, f"catalog {model.source or 'models.toml'}"), "catalog"
    return None, "none"


def serve_extra_available() -> bool:
    return importlib.util.find_spec("diffusers") is not None


def no_endpoint_error(model: Model) -> ModelUnavailable:
    return ModelUnavailable(
        f"no endpoint for {model.key}: serverless Hugging Face cannot run ControlNet, so a pose-guided "
        "model needs an Inference Endpoint or a local server",
        f"deploy one (avatargen endpoint bundle {model.alias} -o DIR) or run `avatargen serve`, then pass "
        f"--endpoint URL or save it: avatargen config set endpoints.{model.key} URL "
        "(or install the 'serve' extra to run in-process; --provider hf-inference runs text-to-image only)",
    )


def choose_backend(
    model: Model, *, endpoint: str | None = None, provider: str | None = None
) -> BackendChoice:
    forced = provider or settings.get_value("provider")
    forced_from = "--provider" if provider else "config provider"
    if forced is not None and forced not in BACKENDS:
        raise UsageError(f"unknown provider '{forced}' ({forced_from})", f"use one of {', '.join(BACKENDS)}")
    if forced == "local":
        return BackendChoice("local", None, forced_from)
    if forced == "hf-inference":
        from avatargen.providers.inference import router_url

        return BackendChoice("hf-inference", router_url(model.base_model), forced_from)
    url, source = resolve_endpoint(model, endpoint)
    if url:
        return BackendChoice("hf-endpoint", url, source)
    if forced is None and serve_extra_available():
        return BackendChoice("local", None, "no endpoint; the serve extra is installed")
    return BackendChoice(None, None, "none", no_endpoint_error(model))


def make_provider(
    model: Model,
    *,
    endpoint: str | None = None,
    provider: str | None = None,
    token: str | None = None,
    wait_timeout: float | None = None,
) -> Provider:
    """The backend a generation for `model` uses (see the module docstring for the order)."""
    choice = choose_backend(model, endpoint=endpoint, provider=provider)
    if choice.problem is not None:
        raise choice.problem
    if choice.backend == "local":
        from avatargen.providers.local import LocalProvider  # the serve extra: heavy, so only now

        return LocalProvider(model)
    timeout = resolve_wait_timeout(wait_timeout)
    token_info = settings.find_token(token)
    if choice.backend == "hf-inference":
        from avatargen.providers.inference import InferenceProvider

        return InferenceProvider(model, token=token_info, wait_timeout=timeout)
    from avatargen.providers.endpoint import EndpointProvider

    assert choice.url is not None
    return EndpointProvider(
        model, choice.url, token=token_info, wait_timeout=timeout, url_source=choice.source
    )


def resolve_wait_timeout(wait_timeout: float | None = None) -> float:
    """--wait-timeout, else config wait_timeout, else 600 s."""
    from avatargen.providers.retry import DEFAULT_WAIT_TIMEOUT

    if wait_timeout is not None:
        if wait_timeout <= 0:
            raise UsageError(f"--wait-timeout must be more than 0, got {wait_timeout:g}")
        return float(wait_timeout)
    configured = settings.get_value("wait_timeout")
    if isinstance(configured, int | float) and not isinstance(configured, bool) and configured > 0:
        return float(configured)
    return DEFAULT_WAIT_TIMEOUT
