"""The local backend's probe: where it would run, without loading anything.

It lives beside local.py rather than in it because local.py needs the `serve` extra to be
constructed, and `avatargen status` must answer in a core install too.
"""

from __future__ import annotations


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
