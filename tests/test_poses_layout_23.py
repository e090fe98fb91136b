"""Issue 23 (5, 6): a ComfyUI COCO-18 file padded to 25 points is read as COCO-18 (the layout told
by the content), a real BODY_25 still as BODY_25; a canvas-less CMU file is re-based with a margin,
so no point lands on x = 0 / y = 0 (which sd-webui-openpose-editor drops as missing)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from avatargen.poses.keypoints import BODY_NAMES, load_pose, parse_pose_text
from cli_helpers import run_main

DATA = Path(__file__).parent / "data" / "poses"


def _file_points(name: str) -> list[tuple[float, float, float]]:
    doc = json.loads((DATA / name).read_text())
    flat = doc[0]["people"][0]["pose_keypoints_2d"]
    return [tuple(flat[k : k + 3]) for k in range(0, len(flat), 3)]


def test_coco18_padded_to_25_keeps_every_joint_in_place():
    raw = _file_points("comfyui-coco18-padded.json")
    assert len(raw) == 25 and all(c == 0 for _, _, c in raw[18:])
    person = load_pose(DATA / "comfyui-coco18-padded.json").people[0]
    assert person.body == [
        (x, y) if c > 0 else None for x, y, c in raw[:18]
    ]  # COCO-18 order, nothing dropped
    # Legs from the hips, ankles at the bottom, not on the head:
    hip, knee, ankle = (person.point(f"right_{j}") for j in ("hip", "knee", "ankle"))
    assert hip[1] < knee[1] < ankle[1]
    assert person.point("left_ankle")[1] > person.point("left_hip")[1] > person.point("neck")[1]
    assert max(p[1] for p in person.body if p) == max(ankle[1], person.point("left_ankle")[1])


def test_coco18_padded_is_drawn_as_its_18_points(monkeypatch, capsys, tmp_path):
    doc = json.loads((DATA / "comfyui-coco18-padded.json").read_text())
    doc[0]["people"][0]["pose_keypoints_2d"] = doc[0]["people"][0]["pose_keypoints_2d"][: 18 * 3]
    (tmp_path / "coco18.json").write_text(json.dumps(doc))
    images = []
    for source in (DATA / "comfyui-coco18-padded.json", tmp_path / "coco18.json"):
        out = tmp_path / f"{source.stem}.png"
        code, _, err = run_main(monkeypatch, capsys, "poses", "show", str(source), "-o", str(out))
        assert code == 0, err
        images.append(Image.open(out).convert("RGB").tobytes())
    assert images[0] == images[1]


def test_real_body25_is_still_body25_even_without_feet_and_left_ear():
    # BODY_25: MidHip (8) halfway between the hips (9, 12); 18-24 (left ear, feet) absent.
    pts = [(0.0, 0.0, 0.0)] * 25
    coords = {0: (100, 40), 1: (100, 80), 2: (70, 82), 5: (130, 82), 8: (100, 160), 9: (85, 160),
              10: (85, 230), 11: (85, 300), 12: (115, 160), 13: (115, 230), 14: (115, 300)}  # fmt: skip
    for i, (x, y) in coords.items():
        pts[i] = (float(x), float(y), 0.9)
    doc = {
        "canvas_width": 200,
        "canvas_height": 320,
        "people": [{"pose_keypoints_2d": [v for p in pts for v in p]}],
    }
    person = parse_pose_text(json.dumps(doc), "body25.json").people[0]
    assert person.point("right_hip") == (85, 160) and person.point("left_hip") == (115, 160)
    assert person.point("right_ankle") == (85, 300) and person.point("left_ankle") == (115, 300)


def test_canvas_less_cmu_file_keeps_a_margin(tmp_path):
    pose = load_pose(DATA / "openpose-body25.json")
    assert not pose.canvas_given
    xs = [x for x, _ in pose.all_points()]
    ys = [y for _, y in pose.all_points()]
    assert min(xs) > 0 and min(ys) > 0
    assert max(xs) < pose.canvas_width and max(ys) < pose.canvas_height
    # The margin is the same on each side: the figure stays centred on its canvas.
    assert abs(min(xs) - (pose.canvas_width - max(xs))) < 1e-6
    assert abs(min(ys) - (pose.canvas_height - max(ys))) < 1e-6
    # Written out (as `poses extract`/`poses show --json` would hand it to the editor): still no zeros.
    pose.save(tmp_path / "out.json")
    flat = json.loads((tmp_path / "out.json").read_text())["people"][0]["pose_keypoints_2d"]
    present = [(flat[k], flat[k + 1]) for k in range(0, len(flat), 3) if flat[k + 2] > 0]
    assert present and all(x > 0 and y > 0 for x, y in present)


def test_two_point_canvas_less_file_gets_at_least_one_pixel():
    kp = [10, 20, 0.3, 40, 80, 0.05] + [0, 0, 0] * 16
    pose = parse_pose_text(json.dumps({"people": [{"pose_keypoints_2d": kp}]}), "x")
    (ax, ay), (bx, by) = pose.people[0].body[:2]
    assert ax > 0 and ay > 0 and (bx - ax, by - ay) == (30, 60)
    assert len(BODY_NAMES) == 18
