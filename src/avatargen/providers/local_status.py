"""The local backend's probe: where it would run, without loading anything.

It lives beside local.py rather than in it because local.py needs the `serve` extra to be
constructed, and `avatargen status` must answer in a core install too.
"""

from __future__ import annotations

import os
from typing import Any

from avatargen import environment

# Read by LocalProvider too (local.py): a folder of weights, or the tiny random-weight model.
MODEL_DIR_ENV = environment.LOCAL_MODEL_DIR
TINY_ENV = environment.LOCAL_TINY


def local_device() -> str:
    """cuda, mps or cpu for the local backend; 'unavailable' without torch (the serve extra)."""
    try:
        import torch
    except ImportError:
        return "unavailable"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def missing_serve_modules() -> list[str]:
    """The serve extra's modules that are not installed (found without importing them)."""
    import importlib.util

    from avatargen.serve.resolve import SERVE_MODULES

    return [name for name in SERVE_MODULES if importlib.util.find_spec(name) is None]


def _hub_cache_dir() -> str:
    """Where huggingface_hub keeps downloads, read now (its own constant is fixed at import)."""
    explicit = os.environ.get(environment.HF_HUB_CACHE, "").strip()
    if explicit:
        return explicit
    home = os.environ.get(environment.HF_HOME, "").strip()
    if home:
        return os.path.join(home, "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def weights_cache(model: Any) -> dict[str, Any]:
    """Where the local backend's weights would come from, and whether they are in the Hugging Face
    cache (offline, no network). A repo counts as cached when its config file is there."""
    model_dir = os.environ.get(MODEL_DIR_ENV, "").strip()
    if os.environ.get(TINY_ENV, "") not in ("", "0"):
        return {"source": "tiny", "cached": True, "missing": [], "detail": "tiny random-weight model"}
    if model_dir:
        return {"source": model_dir, "cached": True, "missing": [], "detail": f"from {model_dir}"}
    from huggingface_hub import try_to_load_from_cache

    cache = _hub_cache_dir()
    wanted = {model.huggingface_model: "config.json", model.base_model: "model_index.json"}
    missing = [
        repo
        for repo, filename in wanted.items()
        if not isinstance(try_to_load_from_cache(repo, filename, cache), str)
    ]
    if missing:
        detail = "not cached: the first run downloads " + " and ".join(missing) + " (several GB)"
    else:
        detail = "cached (HF_HOME): nothing to download"
    return {"source": "hub", "cached": not missing, "missing": missing, "cache_dir": cache, "detail": detail}


def probe_local(model: Any, device: Any = None) -> dict[str, Any]:
    """The status fields of the local backend: the missing extra and how to install it, or the
    device and the weights."""
    missing = missing_serve_modules()
    if missing:
        return {
            "state": "missing-extra",
            "detail": f"the local backend needs the 'serve' extra ({', '.join(missing)} not installed)",
            "hint": "install it with: pip install 'avatargen[serve]'",
        }
    found = (device or local_device)()
    return {
        "state": "local",
        "device": found,
        "detail": f"runs in-process on {found}" + (" (slow)" if found == "cpu" else ""),
        "weights": weights_cache(model),
    }
