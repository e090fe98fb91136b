"""Draw poses with the reference annotator (controlnet_aux 0.0.10's open_pose/util.py).

Runs in the side venv that .ci/setup-poseref.sh builds (OpenCV, numpy, matplotlib; no avatargen):

    $AVATARGEN_POSEREF_PYTHON bench/poseref_draw.py $AVATARGEN_POSEREF_UTIL OUT_DIR < cases.json

cases.json: [{"name", "width", "height", "people": [{"body", "left_hand", "right_hand", "face"}]}]
with normalised [x, y] points (null where missing), as the annotator receives them. Writes
OUT_DIR/NAME.png (RGB) for each case. util.py is loaded by path; the two names it imports from
its sibling body.py (which needs torch) are stubbed here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import NamedTuple


class Keypoint(NamedTuple):  # the shape of controlnet_aux.open_pose.body.Keypoint
    x: float
    y: float
    score: float = 1.0
    id: int = -1


def load_util(path: str):
    package = types.ModuleType("poseref")
    package.__path__ = []
    body = types.ModuleType("poseref.body")
    body.Keypoint, body.BodyResult = Keypoint, tuple
    sys.modules.update({"poseref": package, "poseref.body": body})
    spec = importlib.util.spec_from_file_location("poseref.util", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import cv2
    import numpy as np

    util = load_util(sys.argv[1])
    out = Path(sys.argv[2])
    for case in json.load(sys.stdin):
        width, height = case["width"], case["height"]
        canvas = np.zeros((height, width, 3), dtype=np.uint8)

        def points(raw):
            return [None if p is None else Keypoint(*p) for p in raw]

        def hand_points(raw, missing=Keypoint(-1 / width, -1 / height)):
            # The annotator's hand detector marks a point it did not find as -1 px.
            return [missing if p is None else Keypoint(*p) for p in raw]

        for person in case["people"]:  # controlnet_aux's draw_poses: each person's body, hands, face
            canvas = util.draw_bodypose(canvas, points(person["body"]))
            for hand in ("left_hand", "right_hand"):
                if person.get(hand):
                    canvas = util.draw_handpose(canvas, hand_points(person[hand]))
            if person.get("face"):
                canvas = util.draw_facepose(canvas, [p for p in points(person["face"]) if p is not None])
        cv2.imwrite(str(out / f"{case['name']}.png"), canvas[:, :, ::-1])  # imwrite takes BGR


if __name__ == "__main__":
    main()
