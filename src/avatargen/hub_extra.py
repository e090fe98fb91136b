"""Is the `hub` extra really there? huggingface_hub at the version the extra pins, not any copy.

Another package can pull in an old huggingface_hub (0.30 has `get_provider_helper(provider, task)`
without `model=`, and no InferenceProviderMapping fields we pass): code written for >= 1.0 would
then fail with a TypeError deep inside it. The installed version is read from its metadata
(no import), and anything older than the extra's floor counts as the extra missing.
"""

from __future__ import annotations

import re

from avatargen.errors import MissingExtra

MIN_VERSION = (1, 0)  # pyproject.toml: hub = ["huggingface_hub>=1.0,<3"]


def installed_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("huggingface_hub")
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:2])


def available() -> bool:
    version = installed_version()
    return version is not None and _release(version) >= MIN_VERSION


def require(what: str) -> None:
    """MissingExtra('hub') naming `what`, and the old version found when there is one."""
    version = installed_version()
    if version is not None and _release(version) >= MIN_VERSION:
        return
    error = MissingExtra("hub", what)
    if version is not None:
        floor = ".".join(map(str, MIN_VERSION))
        error.message += f" (huggingface_hub {version} is installed; {floor} or newer is needed)"
        error.hint = f"upgrade it with: pip install 'avatargen[hub]' (huggingface_hub>={floor})"
    raise error
