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
# Modules really loaded (a stand-in such as avatargen's for httpx._main has no spec)
roots = sorted({name.split(".")[0] for name, mod in list(sys.modules.items()) if getattr(mod, "__spec__", None)})
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_httpx_loads_without_its_command_line_client():
    """httpx's CLI module (click, rich.syntax, pygments) is never loaded for avatargen's requests,
    and httpx itself works as before."""
    code = (
        "import sys, avatargen, httpx\n"
        "assert httpx.Client().get is not None\n"
        "print(sorted(m for m in ('pygments', 'rich.syntax', 'rich.console') if m in sys.modules))\n"
        "httpx.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout
    assert done.returncode == 1 and "run `httpx` itself" in done.stderr


@pytest.mark.slow
def test_a_scripted_batch_never_loads_rich(tmp_path):
    """`generate --json` with stderr to a pipe (a script's run): its lines are plain text, so
    rich (~20-40 ms to import) is never loaded, and the summary line is still there."""
    import os

    from fake_endpoint import FakeEndpoint
    from test_generate_e2e import make_photos

    make_photos(tmp_path / "photos", 2)
    env = {**os.environ, "AVATARGEN_HOME": str(tmp_path / "home")}
    env.pop("FORCE_COLOR", None)
    add = [sys.executable, "-m", "avatargen", "credits", "add", "20"]
    subprocess.run(add, env=env, check=True, capture_output=True, timeout=120)
    with FakeEndpoint() as endpoint:
        args = ["generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out"),
                "--identity-scale", "0", "--json"]  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, timeout=120,
            cwd=tmp_path, env=env,
        )  # fmt: skip
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("PROBE ")]
    report = json.loads(line[-1].removeprefix("PROBE "))
    assert report["code"] in (0, None), result.stderr
    assert "httpx" in report["modules"] and "rich" not in report["modules"]
    assert "2 done, 0 failed" in result.stderr
