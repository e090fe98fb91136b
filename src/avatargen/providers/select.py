"""Which backend runs a model, and at which URL.

Endpoint URL, first match wins: `--endpoint URL`, AVATARGEN_ENDPOINT, config `endpoints.<model key>`,
the catalog's `endpoint` field. A catalog model whose `provider` is "hf-providers" runs on Inference
Providers through the router (providers/router.py) unless --provider says otherwise. Every URL is checked here, where it is resolved, so generate, retry
and status refuse the same bad values: a given but empty `--endpoint` is a usage error (never a
silent switch to another backend), an empty AVATARGEN_ENDPOINT counts as unset. Backend: a forced provider (`--provider` or config `provider`) wins;
otherwise an endpoint URL means hf-endpoint, no URL means the in-process local backend when the
`serve` extra is installed, and an error otherwise (serverless Hugging Face cannot take a control image).
`token_default_model` is the one exception to "the model asked for runs": a user with only a token
(no endpoint, no serve extra, no model chosen) gets the catalog's Inference Providers model.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avatargen import environment, settings
from avatargen.catalog import Model
from avatargen.config import Config
from avatargen.errors import AvatargenError, ModelUnavailable, UsageError
from avatargen.providers.base import Provider

ENDPOINT_ENV = environment.ENDPOINT
BACKENDS = settings.PROVIDERS  # ('hf-endpoint', 'hf-inference', 'local', 'hf-providers')
ROUTER_BACKEND = "hf-providers"
# The model a user with only a token gets (see token_default_model).
TOKEN_DEFAULT_MODEL = "avatar-generator:qwen-image-edit-pose"
# "1": behave as if the serve extra were absent (never run a model in-process by default), e.g.
# on a machine with diffusers but no GPU; the tests use it to stand for a core-only install.
NO_LOCAL_ENV = environment.NO_LOCAL


@dataclass(frozen=True)
class BackendChoice:
    backend: str | None  # None: nothing can run this model here (see `problem`)
    url: str | None
    source: str  # where the URL (or the choice) came from
    problem: AvatargenError | None = None


def _checked_url(url: str, source: str) -> str:
    """The URL, stripped, if a client can use it; else an error naming `source` (exit 2 for the
    option, 3 for the environment, config or catalog): urls.checked_url, the check of every URL."""
    from avatargen.urls import checked_url, error_for

    if not url.strip():
        raise error_for(source)(
            f"{source} is empty", "give the endpoint URL, or leave it out to use the configured one"
        )
    return checked_url(url, source, "endpoint URL")


def resolve_endpoint(model: Model, endpoint: str | None = None, *, config: Config) -> tuple[str | None, str]:
    """(url, source): --endpoint, AVATARGEN_ENDPOINT, config endpoints.<key>, catalog; else (None, 'none')."""
    if endpoint is not None:  # given, even empty: an empty value is a mistake, not "use the default"
        return _checked_url(endpoint, "--endpoint"), "--endpoint"
    env = os.environ.get(ENDPOINT_ENV, "").strip()
    if env:
        return _checked_url(env, ENDPOINT_ENV), ENDPOINT_ENV
    key = f"endpoints.{model.key}"
    configured = settings.get_value(key, config.raw)
    if isinstance(configured, list) and configured:  # several servers: the first names the model's
        configured = configured[0]
    if isinstance(configured, str) and configured.strip():
        return _checked_url(configured, f"config {key}"), f"config {key}"
    if model.endpoint.strip():
        return _checked_url(model.endpoint, f"catalog {model.source or 'models.toml'}"), "catalog"
    return None, "none"


def configured_urls(model: Model, *, config: Config) -> list[str]:
    """Every URL of config endpoints.<key> (a string or a list), checked; [] when unset."""
    key = f"endpoints.{model.key}"
    configured = settings.get_value(key, config.raw)
    values = configured if isinstance(configured, list) else [configured] if configured else []
    return [_checked_url(str(value), f"config {key}") for value in values]


def serve_extra_available() -> bool:
    if os.environ.get(NO_LOCAL_ENV, "").strip() == "1":
        return False
    return importlib.util.find_spec("diffusers") is not None


def hub_extra_available() -> bool:
    from avatargen import hub_extra

    return hub_extra.available()


def no_endpoint_error(model: Model, serve_installed: bool = False) -> ModelUnavailable:
    """No URL for a model that needs a server. One short line: the fixes this install can use.
    The story is the README's: serverless Hugging Face cannot take a control image; a token alone
    runs the Inference Providers models (they edit the photo itself), not ControlNet."""
    bundle = f"avatargen endpoint bundle {model.alias} -o DIR"
    token_only = f"--model {TOKEN_DEFAULT_MODEL.split(':', 1)[1]}"
    if not serve_installed:
        hub = "" if hub_extra_available() else "pip install 'avatargen[hub]' + "
        return ModelUnavailable(
            f"no endpoint for {model.alias}, no serve extra; serverless HF cannot take a control image",
            f"a token alone runs Inference Providers: {hub}HF_TOKEN + {token_only}; "
            f"pip install 'avatargen[serve]'; or --endpoint URL ({bundle})",
        )
    return ModelUnavailable(
        f"no endpoint for {model.key} (serverless Hugging Face cannot take a control image)",
        f"pass --endpoint URL or save it: avatargen config set endpoints.{model.key} URL "
        f"(deploy one: {bundle}, or run `avatargen serve`)",
    )


def require_backend(model: Model, *, endpoint: str | None, provider: str | None, config: Config) -> None:
    """No backend can run `model` here (exit 6): said first, once, before the token, the face
    detector (exit 11) or a plan, since no other fix helps until this one is made."""
    choice = choose_backend(model, endpoint=endpoint, provider=provider, config=config)
    if choice.problem is not None:
        raise choice.problem


def choose_backend(
    model: Model, *, endpoint: str | None = None, provider: str | None = None, config: Config
) -> BackendChoice:
    forced = provider or config.provider
    forced_from = "--provider" if provider else "config provider"
    if model.provider == ROUTER_BACKEND and not provider:
        forced, forced_from = ROUTER_BACKEND, "catalog provider"  # a config default is for the others
    if forced is not None and forced not in BACKENDS:
        raise UsageError(f"unknown provider '{forced}' ({forced_from})", f"use one of {', '.join(BACKENDS)}")
    if forced == "local":
        return BackendChoice("local", None, forced_from)
    if forced == "hf-inference":
        from avatargen.providers.inference import router_url

        return BackendChoice("hf-inference", router_url(model.base_model), forced_from)
    if forced == ROUTER_BACKEND:
        where = f"{settings.router_base_url()}/{model.hf_provider or '?'}"
        return BackendChoice(ROUTER_BACKEND, where, forced_from)
    url, source = resolve_endpoint(model, endpoint, config=config)
    if url:
        return BackendChoice("hf-endpoint", url, source)
    installed = serve_extra_available()
    if forced is None and installed:
        return BackendChoice("local", None, "no endpoint; the serve extra is installed")
    return BackendChoice(None, None, "none", no_endpoint_error(model, installed))


def make_provider(
    model: Model,
    *,
    config: Config,
    endpoint: str | None = None,
    provider: str | None = None,
    token: str | None = None,
    wait_timeout: float | None = None,
    model_dir: str | Path | None = None,
    tiny: bool = False,
    hf_provider: str | None = None,
) -> Provider:
    """The backend a generation for `model` uses (see the module docstring for the order).
    `model_dir` and `tiny` are for the local backend (--model-dir, --tiny), `hf_provider` for
    hf-providers (--hf-provider); the others ignore them."""
    from avatargen.providers import registry

    choice = choose_backend(model, endpoint=endpoint, provider=provider, config=config)
    if choice.problem is not None:
        raise choice.problem
    assert choice.backend is not None
    if choice.backend == "local":  # no token, no HTTP timeout
        config = registry.BackendConfig(model_dir=model_dir, tiny=tiny)
    else:
        config = registry.BackendConfig(
            url=choice.url,
            url_source=choice.source,
            token=settings.find_token(token, config.raw),
            wait_timeout=resolve_wait_timeout(wait_timeout, config=config),
            hf_provider=hf_provider,
        )
    return registry.get(choice.backend).build(model, config)


def resolve_wait_timeout(wait_timeout: float | None = None, *, config: Config) -> float:
    """--wait-timeout, else config wait_timeout, else 600 s."""
    from avatargen.providers.retry import DEFAULT_WAIT_TIMEOUT

    if wait_timeout is not None:
        if wait_timeout <= 0:
            raise UsageError(f"--wait-timeout must be more than 0, got {wait_timeout:g}")
        return float(wait_timeout)
    configured = config.raw.get("wait_timeout")
    if isinstance(configured, int | float) and not isinstance(configured, bool) and configured > 0:
        return float(configured)
    return DEFAULT_WAIT_TIMEOUT


def token_default_model(
    catalog,
    chosen: Model,
    *,
    explicit: bool,
    endpoint: str | None,
    provider: str | None,
    token: str | None,
    config: Config,
) -> Model | None:
    """The Inference Providers model to run instead of `chosen`, for a user with nothing but a
    token: no model chosen (explicit: --model, --quality, --tier or config `model`), no backend
    forced other than hf-providers, no endpoint for `chosen`, no serve extra, the `hub` extra
    installed and a Hugging Face token found. None: run `chosen` as asked (or fail as before)."""
    forced = provider or config.provider
    if explicit or chosen.provider == ROUTER_BACKEND or forced not in (None, ROUTER_BACKEND):
        return None
    target = catalog.by_key.get(TOKEN_DEFAULT_MODEL)
    if target is None or not target.enabled:
        return None
    plan = config.plan
    if plan in settings.TIERS and target.tier_rank > settings.TIERS.index(plan):
        return None
    if forced is None and (resolve_endpoint(chosen, endpoint, config=config)[0] or serve_extra_available()):
        return None
    if not hub_extra_available() or not settings.find_token(token, config.raw).found:
        return None
    return target


def require_token(
    model: Model,
    *,
    endpoint: str | None,
    provider: str | None,
    token: str | None,
    config: Config,
    deployed_with_token: Callable[[str, str | None], str | None] = lambda _key, _url: None,
) -> None:
    """Raise the missing-token AuthError (exit 7) when `model`, run as asked, needs a token and
    none is found; return quietly otherwise (other problems are left to the usual checks).
    `generate` and `retry` call it before anything else happens: no plan, no batch or job in the
    ledger, no face crop, no credit reserved. Needing one: hf-providers and hf-inference (the
    router answers 401 without), and an endpoint avatargen deployed as authenticated or private
    (its deploy record says so: `deployed_with_token(model key, url)` names it, e.g.
    deploy.records.authenticated_where). Any other URL may be public or take
    AVATARGEN_ENDPOINT_TOKEN: only its server can tell, so it is not refused here."""
    from avatargen.providers import registry
    from avatargen.providers.credentials import ENDPOINT_HINT, missing_token

    choice = choose_backend(model, endpoint=endpoint, provider=provider, config=config)
    if choice.backend in (None, "local") or settings.find_token(token, config.raw).found:
        return
    if registry.get(choice.backend).needs_token:
        raise missing_token(choice.backend)
    where = deployed_with_token(model.key, choice.url)
    if where and not os.environ.get(settings.ENDPOINT_TOKEN_ENV, "").strip():
        raise missing_token(f"endpoint {where} (deployed by avatargen, authenticated)", ENDPOINT_HINT)
