"""Start-up stays light: `--help` and `models list` import none of the heavy libraries.

Every registered CLI module is imported on these paths, so a module-level `import httpx` (or
PIL, sqlite3, tenacity...) in any command module fails here. Timing lives in bench/startup.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The list, then the server/pose stack that is heavier still.
FORBIDDEN = ("httpx", "PIL", "sqlite3", "tenacity", "numpy", "torch", "diffusers", "mediapipe", "uvicorn")

PROBE = """
import json, sys
sys.argv = ["avatargen", *json.loads(sys.argv[1])]
from avatargen.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
roots = sorted({name.split(".")[0] for name in sys.modules})
sys.__stderr__.write("\\nPROBE " + json.dumps({"code": code, "modules": roots}) + "\\n")
"""


def _imports_after(args: list[str], tmp_path) -> tuple[int, set[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # no ./.env of a developer's
    )
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("PROBE ")]
    assert line, result.stderr
    report = json.loads(line[-1].removeprefix("PROBE "))
    return report["code"], set(report["modules"]), result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models", "list"],
        ["models", "list", "--json"],
        ["models", "list", "--all", "-q"],
        ["models", "show", "controlnet-openpose-sdxl", "--json"],
        ["config", "show"],
    ],
    ids=" ".join,
)
def test_light_commands_import_no_heavy_library(args, tmp_path):
    code, modules, stdout = _imports_after(args, tmp_path)
    assert code in (0, None), stdout
    assert stdout.strip(), "the command printed nothing: the probe did not run it"
    heavy = sorted(set(FORBIDDEN) & modules)
    assert heavy == [], f"`avatargen {' '.join(args)}` imported {heavy}"


def test_the_probe_can_see_an_import(tmp_path):
    # The same probe does report a library a command does import, so a pass above means something.
    code, modules, _ = _imports_after(["models", "list", "--json"], tmp_path)
    assert "avatargen" in modules and "typer" in modules and "json" in modules


def test_import_time_report_agrees(tmp_path):
    """`python -X importtime` of the real `python -m avatargen models list` names none of them."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "avatargen", "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line
    }
    assert "avatargen" in imported
    assert sorted(set(FORBIDDEN) & imported) == []
