"""Which weights a server or the local backend loads, and whether the `serve` extra is there.

Shared by `avatargen serve` and the local provider so both answer the same way: a catalog model
from the Hub, the same model from a local folder (--model-dir), or its tiny random-weight twin.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from avatargen.errors import InputError, MissingExtra, ModelUnavailable

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
        from avatargen.serve.tiny import ensure_tiny

        if lazy:
            return spec, lambda: ensure_tiny(model.architecture)
        return spec, ensure_tiny(model.architecture)
    if model_dir:
        folder = Path(model_dir).expanduser()
        if not is_pipeline_folder(folder):
            raise InputError(
                f"{folder} (--model-dir) is not a saved diffusers pipeline: it has no model_index.json",
                "point it at a folder written by save_pretrained, or leave it out to load from the Hub",
            )
        return spec, folder
    return spec, None


def load_error(exc: BaseException, model: Any) -> ModelUnavailable:
    """A LoadError (or any failure to build the pipeline) as the user's error, with what to do."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not text.startswith("could not load"):
        text = f"could not load {model.key}: {text}"
    return ModelUnavailable(
        text,
        "the first run downloads the weights from the Hugging Face Hub (check the network and HF_TOKEN), "
        "or give a local copy with --model-dir; try --tiny to check the setup without downloads",
    )
