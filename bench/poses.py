"""Pose benchmarks (issue 3, item 7): render one template, extract one photo, compare drawings.

Prints the median of many runs, in milliseconds:
  1. render the `wave` template at 1024x1024 (Pillow, the training style)
  2. extract the pose from scikit-image's astronaut photo (MediaPipe, model_complexity=1),
     after one warm-up call (the first call also builds MediaPipe's graph; printed separately)
Then, where the reference annotator's venv exists (`source .ci/setup-poseref.sh`), the IoU of
our drawing against controlnet_aux's draw_bodypose/draw_handpose for every template and every
sample in tests/data/poses/ (all drawn pixels; body = limbs and joints only, hands = hand pixels).

Usage: python bench/poses.py [--renders 50] [--extracts 20] [--template wave] [--size 1024x1024]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "poses"


def reference_cases(size: tuple[int, int] = (512, 768)) -> dict:
    """name -> Pose: every template and every real-world sample (drawn fitted to `size`)."""
    from avatargen.poses.keypoints import load_pose
    from avatargen.poses.templates import load_templates

    cases = {t.name: t.pose for t in load_templates().values()}
    cases.update({f"sample:{f.stem}": load_pose(f) for f in sorted(SAMPLES.glob("*.json"))})
    return cases


def draw_both(poses: dict, python: str, util: str, width: int, height: int) -> dict:
    """name -> (ours, reference) as HxWx3 uint8 arrays; the reference is drawn by
    bench/poseref_draw.py in the side venv from the very points we draw."""
    import numpy as np
    from PIL import Image

    from avatargen.poses.render import fit_transform, render_pose

    cases, ours = [], {}
    for name, pose in poses.items():
        scale, dx, dy = fit_transform(pose, width, height, "pose")

        def norm(points, scale=scale, dx=dx, dy=dy):
            if points is None:
                return None
            return [
                None if p is None else [(p[0] * scale + dx) / width, (p[1] * scale + dy) / height]
                for p in points
            ]

        people = [
            {part: norm(getattr(person, part)) for part in ("body", "left_hand", "right_hand", "face")}
            for person in pose.people
        ]
        safe = name.replace(":", "_")
        cases.append({"name": safe, "width": width, "height": height, "people": people})
        ours[name] = np.asarray(render_pose(pose, width, height, fit="pose"))
    with tempfile.TemporaryDirectory(prefix="avatargen-poseref-") as out:
        subprocess.run(
            [python, str(REPO / "bench" / "poseref_draw.py"), util, out],
            input=json.dumps(cases),
            text=True,
            check=True,
            timeout=300,
        )
        return {
            name: (
                ours[name],
                np.asarray(Image.open(Path(out) / f"{name.replace(':', '_')}.png").convert("RGB")),
            )
            for name in poses
        }


def hand_mask(image):
    """Pixels of hand drawing: the blue hand joints and the HSV-coloured hand edges, told apart
    from the body's colours by being none of the 18 joint colours (but blue, which the left
    ankle shares with hand joints) nor their 0.6 limb shades, nor the face's white."""
    import numpy as np

    from avatargen.poses.keypoints import COLORS
    from avatargen.poses.render import limb_color

    body = {tuple(c) for c in COLORS} | {limb_color(i) for i in range(17)} | {(0, 0, 0), (255, 255, 255)}
    flat = image.reshape(-1, 3)
    keys = flat[:, 0].astype(np.int64) << 16 | flat[:, 1].astype(np.int64) << 8 | flat[:, 2]
    body_keys = np.array([r << 16 | g << 8 | b for r, g, b in body - {(0, 0, 255)}])
    mask = ~np.isin(keys, body_keys)
    return mask.reshape(image.shape[:2])


def iou(a, b) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def reference_ious(python: str, util: str, size: tuple[int, int] = (512, 768)) -> dict:
    """name -> {"all": IoU, "hands": IoU or None} against the reference annotator."""
    poses = reference_cases(size)
    drawn = draw_both(poses, python, util, *size)
    out = {}
    for name, (ours, ref) in drawn.items():
        has_hands = any(p.left_hand or p.right_hand for p in poses[name].people)
        hands = iou(hand_mask(ours), hand_mask(ref)) if has_hands else None
        out[name] = {"all": iou(ours.any(axis=2), ref.any(axis=2)), "hands": hands}
    return out


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--extracts", type=int, default=20)
    parser.add_argument("--template", default="wave")
    parser.add_argument("--size", default="1024x1024")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from avatargen.poses.render import render_pose
    from avatargen.poses.templates import get_template

    pose = get_template(args.template).pose
    render_pose(pose, width, height)  # warm-up: imports, template load
    render = median_ms(lambda: render_pose(pose, width, height), args.renders)
    print(f"render {args.template} at {width}x{height}: {render:.2f} ms (median of {args.renders})")

    from PIL import Image
    from skimage import data

    from avatargen.poses.extract import extract_pose

    photo = Image.fromarray(data.astronaut())
    start = time.perf_counter()
    extract_pose(photo, "astronaut")
    first = (time.perf_counter() - start) * 1000
    extract = median_ms(lambda: extract_pose(photo, "astronaut"), args.extracts)
    print(
        f"extract astronaut 512x512: {extract:.1f} ms (median of {args.extracts}; first call {first:.0f} ms)"
    )

    python, util = os.environ.get("AVATARGEN_POSEREF_PYTHON"), os.environ.get("AVATARGEN_POSEREF_UTIL")
    if not (python and util and Path(python).exists()):
        print("reference IoU: skipped (run `source .ci/setup-poseref.sh` first)")
        return
    print("\nIoU against controlnet_aux 0.0.10's annotator at 512x768 (drawn pixels; hand pixels):")
    for name, scores in reference_ious(python, util).items():
        hands = "" if scores["hands"] is None else f"  hands {scores['hands']:.4f}"
        print(f"  {name:28s} {scores['all']:.4f}{hands}")


if __name__ == "__main__":
    main()
