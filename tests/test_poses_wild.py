"""Pose JSON from the wild (everyday item 13): the files other tools really write.

Samples in tests/data/poses/ (see the README there for where each shape comes from):
  editor-normalised.json  controlnet_aux / sd-webui-controlnet JSON as the openpose editor gets it:
                          normalised, missing hand points at (-1/W, -1/H) with c = 1
  comfyui-dwpose.json     ComfyUI DWPose POSE_KEYPOINT: a one-item list, pixels, body + 70 face + hands
  openpose-body25.json    CMU OpenPose BODY_25 output: no canvas size, a figure in a 1920x1080 frame
  editor-two-people.json  the openpose editor's own download: two people, animals[], pixels
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from avatargen.poses.keypoints import load_pose, parse_pose_text
from avatargen.poses.render import HAND_JOINT_COLOR
from cli_helpers import run_main

DATA = Path(__file__).parent / "data" / "poses"
FACE_WHITE = (255, 255, 255)


def show(monkeypatch, capsys, tmp_path, sample: str, *extra: str) -> tuple[Image.Image, dict]:
    out = tmp_path / f"{sample}.png"
    code, stdout, err = run_main(
        monkeypatch, capsys, "poses", "show", str(DATA / f"{sample}.json"), "-o", str(out), "--json", *extra
    )
    assert code == 0, err
    image = Image.open(out)
    image.load()
    return image, json.loads(stdout)


def figure_box(image: Image.Image) -> tuple[int, int, int, int]:
    box = image.convert("L").point(lambda v: 255 if v else 0).getbbox()
    assert box, "nothing drawn"
    return box


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    return {c for _, c in image.getcolors(maxcolors=1_000_000)}


def test_editor_normalised_file_is_drawn_full_size_not_as_a_dot(monkeypatch, capsys, tmp_path):
    image, record = show(monkeypatch, capsys, tmp_path, "editor-normalised")
    assert (record["width"], record["height"]) == (512, 512)
    x0, y0, x1, y1 = figure_box(image)
    assert y1 - y0 > 250 and x1 - x0 > 80  # the whole figure, as composed on its 512x512 canvas
    # The hand points it did not find (-1/512, c = 1) are missing: nothing drawn in the corner.
    assert image.crop((0, 0, 20, 20)).getbbox() is None
    assert HAND_JOINT_COLOR in colours(image)


def test_editor_normalised_points_outside_the_canvas_are_missing():
    pose = load_pose(DATA / "editor-normalised.json")
    person = pose.people[0]
    assert (pose.canvas_width, pose.canvas_height) == (512, 512)
    assert sum(p is None for p in person.right_hand) == 4  # the pinky the annotator did not find
    assert sum(p is None for p in person.left_hand) == 2
    assert all(0 <= x <= 512 and 0 <= y <= 512 for x, y in person.all_points())
    assert person.face is None  # written as null


def test_normalised_without_canvas_or_with_a_1x1_canvas():
    doc = json.loads((DATA / "editor-normalised.json").read_text())
    del doc["canvas_width"], doc["canvas_height"]
    pose = parse_pose_text(json.dumps(doc), "no-canvas.json")
    assert not pose.canvas_given and max(x for x, _ in pose.all_points()) > 100
    doc["canvas_width"] = doc["canvas_height"] = 1
    # A 1x1 canvas says "normalised" even when a point strays past the slack.
    doc["people"][0]["pose_keypoints_2d"][0:3] = [1.2, 0.5, 1.0]
    pose = parse_pose_text(json.dumps(doc), "unit-canvas.json")
    assert not pose.canvas_given and pose.people[0].body[0] is None
    assert pose.people[0].body[1] is not None


def test_comfyui_dwpose_list_with_face_and_hands(monkeypatch, capsys, tmp_path):
    pose = load_pose(DATA / "comfyui-dwpose.json")
    person = pose.people[0]
    assert (pose.canvas_width, pose.canvas_height) == (512, 768)
    assert len(person.face) == 70 and all(p is not None for p in person.face)
    assert all(p is not None for p in person.left_hand + person.right_hand)
    image, record = show(monkeypatch, capsys, tmp_path, "comfyui-dwpose")
    assert (record["width"], record["height"]) == (512, 768)
    assert {FACE_WHITE, HAND_JOINT_COLOR} <= colours(image)


def test_body25_without_canvas_is_framed_by_the_figure(monkeypatch, capsys, tmp_path):
    pose = load_pose(DATA / "openpose-body25.json")
    assert not pose.canvas_given
    assert min(x for x, _ in pose.all_points()) > 0 and min(y for _, y in pose.all_points()) > 0  # margin
    image, record = show(monkeypatch, capsys, tmp_path, "openpose-body25")
    assert (record["width"], record["height"]) == (512, 768) and record["framing"] == "full-body"
    x0, y0, x1, y1 = figure_box(image)
    # Filling the height (6 % margins), centred: not a small figure in the frame's far corner.
    assert y1 - y0 > 0.8 * 768
    assert abs((x0 + x1) / 2 - 256) < 40


def test_two_people_are_both_drawn(monkeypatch, capsys, tmp_path):
    pose = load_pose(DATA / "editor-two-people.json")
    assert len(pose.people) == 2
    image, record = show(monkeypatch, capsys, tmp_path, "editor-two-people")
    assert (record["width"], record["height"]) == (768, 512)
    left, right = image.crop((0, 0, 300, 512)), image.crop((330, 0, 768, 512))
    for half in (left, right):
        assert (255, 0, 0) in colours(half)  # each person's nose


@pytest.mark.slow
@pytest.mark.parametrize("sample", sorted(p.stem for p in DATA.glob("*.json")))
def test_every_sample_works_as_generate_pose(monkeypatch, capsys, tmp_path, sample):
    photo = tmp_path / "me.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(photo)
    code, _, err = run_main(
        monkeypatch, capsys, "generate", str(photo), "--pose", str(DATA / f"{sample}.json"), "--dry-run"
    )
    assert code == 0, err
