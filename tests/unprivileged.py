"""Running the CLI as a user that file permissions apply to.

Tests and CI run as root here, and root ignores permission bits: a chmod 0444 file stays
writable. Dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (util-linux `setpriv`) makes root
meet permissions like anyone else; a non-root user needs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permission errors as root"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def run_unprivileged(*args: str, cwd, env: dict | None = None, timeout: float = 120):
    """`avatargen ARGS` in a subprocess that file permissions apply to."""
    return subprocess.run(
        [*unprivileged_prefix(), sys.executable, "-m", "avatargen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
