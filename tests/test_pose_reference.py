"""Our skeletons against the reference annotator (everyday item 15).

controlnet_aux 0.0.10's open_pose/util.py draws, in the side venv of .ci/setup-poseref.sh, the
very points we draw (every template, and the real-world samples with hands and faces); the
drawn pixels must agree at IoU >= 0.97 for bodies and >= 0.95 for hands (bench/poses.py prints
the table). Before matching OpenCV's rasterisation they agreed at about 0.89.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from interop import interop_python

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("avatargen_bench_poses", REPO / "bench" / "poses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scores():
    python = interop_python("AVATARGEN_POSEREF_PYTHON")
    util = os.environ.get("AVATARGEN_POSEREF_UTIL", "")
    assert Path(util).is_file(), "AVATARGEN_POSEREF_UTIL must name controlnet_aux's open_pose/util.py"
    return load_bench().reference_ious(str(python), util)


def test_every_template_and_sample_is_compared(scores):
    from avatargen.poses.templates import template_names

    assert set(template_names()) <= set(scores)
    assert {"sample:comfyui-dwpose", "sample:editor-normalised"} <= set(scores)


def test_bodies_match_the_annotator(scores):
    low = {name: round(s["all"], 4) for name, s in scores.items() if s["all"] < 0.97}
    assert not low, f"IoU under 0.97: {low}"


def test_hands_match_the_annotator(scores):
    hands = {name: s["hands"] for name, s in scores.items() if s["hands"] is not None}
    assert len(hands) >= 2  # the DWPose and editor samples carry hands
    low = {name: round(v, 4) for name, v in hands.items() if v < 0.95}
    assert not low, f"hand IoU under 0.95: {low}"
