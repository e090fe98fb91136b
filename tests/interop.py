"""Third-party software that lives in a venv of its own (see .ci/setup-*.sh).

`interop_python("AVATARGEN_X_PYTHON")` gives that venv's python. Outside CI a missing one skips
the test (a developer may not have built it); in CI (CI=true) it fails, because CI builds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def interop_python(variable: str) -> Path:
    value = os.environ.get(variable, "")
    if value and Path(value).exists():
        return Path(value)
    if os.environ.get("CI"):
        pytest.fail(f"{variable} is not set in CI: a .ci/setup-*.sh script should have built it")
    pytest.skip(f"{variable} not set: run the matching .ci/setup-*.sh to build that venv")
