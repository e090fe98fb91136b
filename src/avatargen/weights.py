"""Which weights make a job's image. They are part of what a job is: its key, its default output
name, its PNG metadata and its history row, so a `--tiny` trial (random weights, noise) or a
`--model-dir` pipeline never stands in for the catalog model's real avatar, nor it for them.

A job's weights are one string in its params (`Params.weights`):
  ""             the catalog's Hub weights, as the backend loads them (an endpoint's own, or the
                 local backend's download of the Hub repos at their main revision): keys as before
  "tiny-v<N>"    the local backend's tiny random-weight model (serve/tiny.py, version N)
  "dir:<path>"   the local backend's saved pipeline in that folder (--model-dir), resolved
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

TINY_PREFIX = "tiny-v"
DIR_PREFIX = "dir:"


def weights_for(
    model: Any,
    *,
    config: Any,
    endpoint: str | None = None,
    provider: str | None = None,
    tiny: bool = False,
    model_dir: str | Path | None = None,
) -> str:
    """The weights string of jobs of `model` run with these options (and the environment's
    AVATARGEN_LOCAL_TINY / AVATARGEN_LOCAL_MODEL_DIR, which the local backend reads)."""
    from avatargen.providers.local_status import MODEL_DIR_ENV, TINY_ENV

    if tiny or model_dir:
        local = True
    else:
        from avatargen.errors import AvatargenError
        from avatargen.providers.select import choose_backend

        try:
            local = (
                choose_backend(model, endpoint=endpoint, provider=provider, config=config).backend == "local"
            )
        except AvatargenError:
            return ""  # no usable backend: the run fails later with its own clear error
    if not local:
        return ""
    tiny = tiny or os.environ.get(TINY_ENV, "") not in ("", "0")
    if tiny:
        from avatargen.serve.tiny import TINY_VERSION

        return f"{TINY_PREFIX}{TINY_VERSION}"
    folder = model_dir or os.environ.get(MODEL_DIR_ENV, "").strip()
    if folder:
        return DIR_PREFIX + os.path.realpath(Path(folder).expanduser())
    return ""


def name_tag(weights: str) -> str:
    """What the default output name carries for these weights: '' for the catalog's, 'tiny', or
    'dir-<folder name>-<4 hex of its path>'."""
    if not weights:
        return ""
    if weights.startswith(TINY_PREFIX):
        return "tiny"
    if weights.startswith(DIR_PREFIX):
        path = weights[len(DIR_PREFIX) :]
        return f"dir-{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:4]}"
    return hashlib.sha256(weights.encode()).hexdigest()[:8]


def describe(weights: str) -> str:
    """The weights in words, for PNG metadata and history."""
    if not weights:
        return "the catalog model's weights (Hugging Face Hub, main revision, or the endpoint's own)"
    if weights.startswith(TINY_PREFIX):
        return f"tiny random-weight model {weights} (--tiny): the image is noise, not an avatar"
    if weights.startswith(DIR_PREFIX):
        return f"saved pipeline in {weights[len(DIR_PREFIX) :]} (--model-dir)"
    return weights


def metadata(weights: str) -> dict[str, str]:
    """The PNG metadata fields that say which weights made the image."""
    return {"weights": weights or "catalog", "weights_note": describe(weights)}


def hub_revisions(spec: Any) -> dict[str, str]:
    """The commit of each Hub repo (ControlNet, base model, identity adapter) the local backend
    loaded, read off huggingface_hub's download cache (snapshots/<commit>/...): what "the catalog's
    weights" were exactly, for the PNG metadata. A repo not found in the cache is left out."""
    from huggingface_hub import try_to_load_from_cache

    wanted = [(spec.controlnet, "config.json"), (spec.base_model, "model_index.json")]
    if getattr(spec, "has_ip_adapter", False):
        weight = "/".join(p for p in (spec.ip_adapter_subfolder, spec.ip_adapter_weight_name) if p)
        wanted.append((spec.ip_adapter_repo, weight))
    revisions = {}
    for repo, filename in wanted:
        found = try_to_load_from_cache(repo, filename)
        parts = Path(found).parts if isinstance(found, str) else ()
        if "snapshots" in parts and parts.index("snapshots") + 1 < len(parts):
            revisions[repo] = parts[parts.index("snapshots") + 1]
    return revisions
