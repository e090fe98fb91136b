"""Every environment variable avatargen reads is named in avatargen/environment.py, and only there."""

from __future__ import annotations

import re
from pathlib import Path

from avatargen import environment

SRC = Path(environment.__file__).parent
NAME = re.compile(
    r"""["'](_?AVATARGEN_[A-Z0-9_]+|HF_[A-Z0-9_]+|HUGGING_FACE_HUB_TOKEN|HUGGINGFACE_API_KEY)["']"""
)
# The endpoint handler is bundled to run inside the Inference Endpoints toolkit without
# avatargen installed, so it names its one variable itself.
STANDALONE = {SRC / "serve" / "handler.py": {"AVATARGEN_DEVICE"}}
# Variables avatargen sets for the libraries it quiets (never reads): quiet.py's table.
SET_FOR_OTHERS = {"HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_VERBOSITY"}


def declared() -> set[str]:
    names = set()
    for attr, value in vars(environment).items():
        if attr.isupper():
            names.update(value if isinstance(value, tuple) else [value])
    return names


def test_no_module_names_an_environment_variable_of_its_own():
    strays = []
    for path in SRC.rglob("*.py"):
        if path.name == "environment.py":
            continue
        for name in NAME.findall(path.read_text()):
            if name in STANDALONE.get(path, set()) or name in SET_FOR_OTHERS:
                continue
            strays.append(f"{path.relative_to(SRC)}: {name}")
    assert strays == [], "name these in avatargen/environment.py and import them from there"


def test_the_standalone_handler_reads_only_declared_names():
    for names in STANDALONE.values():
        assert names <= declared()
