"""Which weights a server or the local backend loads, whether the `serve` extra is there, and
why weights could not be loaded, in plain words.

Shared by `avatargen serve` and the local provider so both answer the same way: a catalog model
from the Hub, the same model from a local folder (--model-dir), or its tiny random-weight twin.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import os
from pathlib import Path
from typing import Any

from avatargen import environment
from avatargen.errors import MissingExtra, ModelLoadError, ModelUnavailable

SERVE_MODULES = ("torch", "diffusers", "transformers", "PIL")


def require_serve_extra(what: str, modules: tuple[str, ...] = SERVE_MODULES) -> None:
    """Raise MissingExtra('serve') when a heavy dependency is not installed (no import: fast)."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise MissingExtra("serve", what)


def model_source(model: Any, model_dir: str | Path | None = None, tiny: bool = False, lazy: bool = False):
    """(ModelSpec, source folder or None) for a catalog model. With `tiny` the folder is the
    cached tiny model of the model's architecture, built on first use; with `lazy` too, the
    source is a function that builds it, so a server can listen before torch is even imported."""
    from avatargen.serve.pipelines import ARCHITECTURES, LoadError, ModelSpec, is_pipeline_folder

    if model.architecture not in ARCHITECTURES:
        raise ModelUnavailable(
            f"model '{model.key}' is architecture '{model.architecture}', which avatargen cannot run itself",
            f"serve an {' or '.join(ARCHITECTURES)} model, e.g. --model controlnet-openpose-sd15",
        )
    try:
        spec = ModelSpec.from_catalog(model, tiny=tiny)
    except LoadError as exc:
        raise ModelUnavailable(str(exc)) from None
    if tiny:
        from avatargen.serve.tiny import ensure_tiny, tiny_adapter_fields

        if spec.has_ip_adapter:  # the tiny folder holds a tiny adapter under the shipped names
            spec = dataclasses.replace(spec, **tiny_adapter_fields(model.architecture))
        if lazy:
            return spec, lambda: ensure_tiny(model.architecture)
        return spec, ensure_tiny(model.architecture)
    if model_dir:
        folder = Path(model_dir).expanduser()
        if not is_pipeline_folder(folder):
            # Every job would fail alike: a load error, which stops a batch at once.
            raise ModelLoadError(
                f"cannot load {model.key}: {folder} (--model-dir) is not a saved diffusers pipeline "
                "(it has no model_index.json)",
                "point it at a folder written by save_pretrained, or leave it out to load from the Hub",
            )
        return spec, folder
    return spec, None


# --------------------------------------------------------------- why the weights cannot load
# The ways past a model that cannot load, as the one-line hint says them. `avatargen serve` has
# no --endpoint (it is the endpoint).
TINY_WAY = (
    "--tiny (a tiny random-weight model of the same architecture, built here without downloads: "
    "its images are noise, it tries the whole path)"
)
MODEL_DIR_WAY = "--model-dir DIR (a saved diffusers pipeline)"
ENDPOINT_WAY = "--endpoint URL (a server that runs the model)"
GENERATE_WAYS = (TINY_WAY, MODEL_DIR_WAY, ENDPOINT_WAY)
SERVE_WAYS = (TINY_WAY, MODEL_DIR_WAY)
HUB_PROBE_TIMEOUT_S = 5.0  # one HEAD per missing repo; HF_HUB_ETAG_TIMEOUT overrides it

_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "ProxyError"}
_NETWORK_ERRORS |= {"ReadTimeout", "ConnectionError", "Timeout", "NewConnectionError", "MaxRetryError"}


def ways_forward(ways: tuple[str, ...] = GENERATE_WAYS) -> str:
    return "ways forward: " + ", ".join(ways[:-1]) + (f", or {ways[-1]}" if len(ways) > 1 else ways[0])


def hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_preflight(spec: Any, model: Any, ways: tuple[str, ...] = GENERATE_WAYS) -> bool:
    """Fail in a second, not after minutes of retries, when Hub weights cannot be had; True when
    every repo (ControlNet, base model, identity adapter) is in the download cache already.

    Nothing is asked of the network when both repos are in the download cache (huggingface_hub
    then loads them even offline). Otherwise one HEAD per missing repo, with a short timeout and
    no retries, says whether the Hub answers and lets us in; when it does, the real download
    follows with huggingface_hub's own retries. HF_HUB_OFFLINE=1 is answered without a request.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    timeout = float(os.environ.get(environment.HF_HUB_ETAG_TIMEOUT) or HUB_PROBE_TIMEOUT_S)
    cached = True
    wanted = [(spec.controlnet, "config.json"), (spec.base_model, "model_index.json")]
    if getattr(spec, "has_ip_adapter", False):  # the identity adapter's weight file, in its repo
        weight = "/".join(p for p in (spec.ip_adapter_subfolder, spec.ip_adapter_weight_name) if p)
        wanted.append((spec.ip_adapter_repo, weight))
    for repo, filename in wanted:
        if isinstance(try_to_load_from_cache(repo, filename), str):
            continue
        cached = False
        try:
            get_hf_file_metadata(hf_hub_url(repo, filename), timeout=timeout)
        except Exception as exc:  # classified below; an unknown kind stays a bug
            reason = failure_reason(exc, repo)
            if reason is None:
                raise
            raise ModelLoadError(f"cannot load {model.key}: {reason}", ways_forward(ways)) from None
    return cached


def load_error(exc: BaseException, model: Any, ways: tuple[str, ...] = GENERATE_WAYS) -> ModelLoadError:
    """A failure to build the pipeline (a LoadError, with the library's exception as its cause)
    as the user's error: why, in plain words, and the ways forward."""
    reason = failure_reason(exc, f"{model.huggingface_model} + {model.base_model}")
    if reason is None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = text.removeprefix("could not load ")
    return ModelLoadError(f"cannot load {model.key}: {reason}", ways_forward(ways))


def failure_reason(exc: BaseException, what: str) -> str | None:
    """Why `what` (a repo id, or the model's repos) cannot load, from an exception and its causes;
    None when no known kind is among them."""
    chain = _chain(exc)
    names = [{cls.__name__ for cls in type(e).__mro__} for e in chain]
    for e, kinds in zip(chain, names, strict=True):
        if "OfflineModeIsEnabled" in kinds:
            return (
                f"{what} is not in the download cache ({hub_cache()}) and HF_HUB_OFFLINE=1 "
                "forbids downloading it"
            )
        if "GatedRepoError" in kinds:
            return (
                f"{_repo(e, what)} is gated on the Hugging Face Hub: accept its terms on its page, "
                "then log in (hf auth login, or HF_TOKEN)"
            )
        if "RepositoryNotFoundError" in kinds:
            return (
                f"{_repo(e, what)} is not on the Hugging Face Hub, or it is private and you are not "
                "logged in (hf auth login, or HF_TOKEN)"
            )
        status = getattr(getattr(e, "response", None), "status_code", None)
        if "HfHubHTTPError" in kinds and status in (401, 403):
            return f"the Hugging Face Hub refused the token for {what} ({status}): check HF_TOKEN or hf auth login"
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return f"out of disk space while saving {what} in {hub_cache()}: free some, or set HF_HOME to a bigger disk"
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            where = e.filename or hub_cache()
            return f"cannot write {where} while saving {what}: set HF_HOME to a writable folder"
    for e, kinds in zip(chain, names, strict=True):
        if kinds & _NETWORK_ERRORS:
            return (
                f"the Hugging Face Hub ({_hub_host()}) is not reachable ({_short(e)}) and {what} is not "
                f"in the download cache ({hub_cache()})"
            )
        if "HfHubHTTPError" in kinds:
            return f"the Hugging Face Hub answered {_short(e)} for {what}"
    if any("LocalEntryNotFoundError" in kinds for kinds in names):
        return (
            f"{what} is not in the download cache ({hub_cache()}) and the Hugging Face Hub "
            f"({_hub_host()}) could not be asked for it"
        )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its cause or context, theirs, ... (diffusers re-raises inside `except`)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _repo(exc: BaseException, default: str) -> str:
    return getattr(exc, "repo_id", None) or default


def _hub_host() -> str:
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).netloc or constants.ENDPOINT


def _short(exc: BaseException) -> str:
    """A network error in a few words: 'connection refused', 'name not resolved', 'timed out'."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "getaddrinfo" in lowered
    ):
        return "its name does not resolve"
    if "timed out" in lowered or "timeout" in type(exc).__name__.lower():
        return "no answer in time"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status else text[:120]
