"""Pose extraction with MediaPipe (the `pose` extra, installed in CI: these tests never skip)."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image

from avatargen.errors import InputError, MissingExtra
from avatargen.poses.extract import extract_pose, landmarks_to_pose
from avatargen.poses.keypoints import BODY_NAMES
from avatargen.poses.sources import resolve_pose


def idx(name):
    return BODY_NAMES.index(name)


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def coins_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "coins.png"
    Image.fromarray(data.coins()).save(path)
    return path


def check_astronaut_body(body):
    nose, neck = body[idx("nose")], body[idx("neck")]
    rs, ls = body[idx("right_shoulder")], body[idx("left_shoulder")]
    assert nose and neck and rs and ls
    assert nose[1] < neck[1]  # image y grows downwards
    assert rs[0] < ls[0]  # she faces the camera: her right shoulder is on the viewer's left
    elbows = [(body[idx(f"{s}_elbow")], body[idx(f"{s}_shoulder")]) for s in ("right", "left")]
    present = [(e, s) for e, s in elbows if e is not None]
    assert present, "at least one elbow found"
    for elbow, shoulder in present:
        assert elbow[1] > shoulder[1]


@pytest.mark.slow
def test_astronaut_pose(astronaut_png):
    pose = extract_pose(astronaut_png)
    assert (pose.canvas_width, pose.canvas_height) == (512, 512)
    check_astronaut_body(pose.people[0].body)
    # the neck is the shoulders' midpoint
    rs, ls, neck = (pose.people[0].body[idx(n)] for n in ("right_shoulder", "left_shoulder", "neck"))
    assert neck == pytest.approx(((rs[0] + ls[0]) / 2, (rs[1] + ls[1]) / 2), abs=1e-6)


def test_no_person_in_coins(coins_png):
    with pytest.raises(InputError) as err:
        extract_pose(coins_png)
    assert err.value.message == f"no person found in {coins_png}"


def test_no_person_in_flat_grey():
    with pytest.raises(InputError, match="no person found in grey.png"):
        extract_pose(Image.new("RGB", (320, 240), (128, 128, 128)), "grey.png")


@pytest.mark.slow
def test_unreadable_photo(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    with pytest.raises(InputError, match="bad.jpg"):
        extract_pose(bad)


def test_landmark_mapping_neck_and_confidence():
    marks = [(0.5, 0.5, 0.9)] * 33
    marks = list(marks)
    marks[11] = (0.6, 0.4, 0.9)  # MediaPipe left shoulder
    marks[12] = (0.4, 0.4, 0.2)  # right shoulder, barely visible
    marks[0] = (0.5, 0.2, 0.99)
    marks[16] = (1.3, 0.5, 0.99)  # right wrist guessed off-frame
    pose = landmarks_to_pose(marks, 200, 100)
    body = pose.people[0].body
    assert body[idx("nose")] == pytest.approx((100, 20))
    assert body[idx("left_shoulder")] == pytest.approx((120, 40))
    assert body[idx("right_shoulder")] is None  # visibility 0.2 < 0.5
    assert body[idx("neck")] is None  # confidence is the smaller of the two shoulders'
    assert body[idx("right_wrist")] is None  # outside the photo
    marks[12] = (0.4, 0.4, 0.8)
    body = landmarks_to_pose(marks, 200, 100).people[0].body
    assert body[idx("neck")] == pytest.approx((100, 40))


def test_auto_source_per_photo(astronaut_png, coins_png):
    src = resolve_pose("auto")
    assert src.per_photo and src.name == "auto" and src.description
    with Image.open(astronaut_png) as photo:
        image = src.image(768, 1024, photo)
    assert image.size == (768, 1024)
    assert sum(n for n, c in image.getcolors(maxcolors=100_000) if c != (0, 0, 0)) > 500
    assert src.image(512, 512, astronaut_png).size == (512, 512)  # a path works too
    with Image.open(coins_png) as photo, pytest.raises(InputError) as err:
        src.image(512, 512, photo)
    assert err.value.message == f"no person found in {coins_png}"


def test_missing_mediapipe_is_missing_extra(monkeypatch, astronaut_png):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(MissingExtra) as err:
        extract_pose(astronaut_png)
    assert err.value.extra == "pose"
    assert "pose extraction" in err.value.message


def test_cli_extract_astronaut(cli, astronaut_png, tmp_path):
    out, png = tmp_path / "pose.json", tmp_path / "pose.png"
    result = cli("poses", "extract", str(astronaut_png), "-o", str(out), "--png", str(png), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["output"] == str(out) and record["png"] == str(png) and record["keypoints"] >= 8
    data = json.loads(out.read_text())
    kp = data["people"][0]["pose_keypoints_2d"]
    assert len(kp) == 54 and set(kp[2::3]) <= {0, 1}  # c = 1 for every present point
    body = [(kp[3 * i], kp[3 * i + 1]) if kp[3 * i + 2] else None for i in range(18)]
    check_astronaut_body(body)
    with Image.open(png) as im:
        assert im.size == (512, 512)


@pytest.mark.slow
def test_cli_extract_no_person_exit_code(run_cli, coins_png, tmp_path):
    result = run_cli("poses", "extract", str(coins_png), "-o", str(tmp_path / "x.json"))
    assert result.returncode == 5
    assert f"no person found in {coins_png}" in result.stderr
    assert result.stderr.count("\n") == 1  # one line: MediaPipe's start-up chatter is silenced
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_cli_extract_stderr_has_no_mediapipe_noise(run_cli, astronaut_png, tmp_path):
    """MediaPipe's absl/glog (W0000 ...) and TF Lite INFO lines stay off stderr unless debugging."""
    result = run_cli("poses", "extract", str(astronaut_png), "-o", str(tmp_path / "a.json"))
    assert result.returncode == 0, result.stderr
    assert "W0000" not in result.stderr and "INFO:" not in result.stderr
    assert result.stderr == ""
    # The same run with AVATARGEN_DEBUG=1 shows them: this test would see them if they leaked.
    debug = run_cli(
        "poses", "extract", str(astronaut_png), "-o", str(tmp_path / "b.json"), env={"AVATARGEN_DEBUG": "1"}
    )
    assert debug.returncode == 0 and "W0000" in debug.stderr
