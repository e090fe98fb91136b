"""Issue 23 (8): our skeletons are controlnet_aux's, pixel for pixel (not only at IoU >= 0.97).

controlnet_aux 0.0.10's open_pose/util.py draws, with OpenCV 4.11 in the side venv of
.ci/setup-poseref.sh, the very points we draw: every template and every sample in
tests/data/poses/ (bodies, hands, faces), at the sizes the issue measured (512x512) and our
reference size (512x768), plus canvases where limbs run off the edge (OpenCV's clipping)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from interop import interop_python

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("avatargen_bench_poses_23", REPO / "bench" / "poses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    python = interop_python("AVATARGEN_POSEREF_PYTHON")
    util = os.environ.get("AVATARGEN_POSEREF_UTIL", "")
    assert Path(util).is_file(), "AVATARGEN_POSEREF_UTIL must name controlnet_aux's open_pose/util.py"
    return str(python), util


@pytest.mark.parametrize("size", [(512, 512), (512, 768), (768, 512), (333, 517)])
def test_every_pose_is_drawn_pixel_for_pixel(reference, size):
    bench = _bench()
    poses = bench.reference_cases(size)
    drawn = bench.draw_both(poses, *reference, *size)
    differing = {}
    for name, (ours, ref) in drawn.items():
        diff = (ours != ref).any(axis=2)
        if diff.any():
            differing[name] = int(diff.sum())
    assert not differing, f"pixels that differ from controlnet_aux at {size}: {differing}"


def test_limbs_off_the_canvas_are_clipped_as_opencv_clips(reference):
    """A pose drawn with its own canvas letterboxed, then zoomed so limbs leave the frame."""
    import dataclasses

    bench = _bench()
    poses = bench.reference_cases((512, 512))
    zoomed = {}
    for name in ("wave", "t-pose", "sample:comfyui-dwpose"):
        pose = poses[name]
        # Shrink the canvas around the figure's centre: fitted to it, hands and feet fall outside.
        zoomed[f"{name}-zoomed"] = dataclasses.replace(
            pose, people=[p.mapped(lambda q: (q[0] * 1.6, q[1] * 1.6)) for p in pose.people]
        )
    for pose in zoomed.values():  # the point of the test: some of it is off the canvas
        assert any(x > pose.canvas_width or y > pose.canvas_height for x, y in pose.all_points())
    drawn = _draw_canvas_fit(bench, zoomed, *reference)
    for name, (ours, ref) in drawn.items():
        assert (ours == ref).all(), f"{name}: {int((ours != ref).any(axis=2).sum())} pixels differ"


def _draw_canvas_fit(bench, poses, python, util, width=512, height=512):
    """draw_both with fit='canvas' semantics: the points as they are on a 512x512 canvas (some off it)."""
    import json
    import subprocess
    import tempfile

    import numpy as np
    from PIL import Image

    from avatargen.poses.render import fit_transform, render_pose

    cases, ours = [], {}
    for name, pose in poses.items():
        s, dx, dy = fit_transform(pose, width, height, "canvas")

        def norm(points, s=s, dx=dx, dy=dy):
            if points is None:
                return None
            return [
                None if p is None else [(p[0] * s + dx) / width, (p[1] * s + dy) / height] for p in points
            ]

        people = [
            {part: norm(getattr(person, part)) for part in ("body", "left_hand", "right_hand", "face")}
            for person in pose.people
        ]
        safe = name.replace(":", "_")
        cases.append({"name": safe, "width": width, "height": height, "people": people})
        ours[name] = np.asarray(render_pose(pose, width, height, fit="canvas"))
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [python, str(REPO / "bench" / "poseref_draw.py"), util, out],
            input=json.dumps(cases), text=True, check=True, timeout=300,
        )  # fmt: skip
        return {
            name: (
                ours[name],
                np.asarray(Image.open(Path(out) / f"{name.replace(':', '_')}.png").convert("RGB")),
            )
            for name in poses
        }
