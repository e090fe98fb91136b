"""OpenPose JSON in and out: pixel and normalised coordinates, BODY_25, clear errors."""

from __future__ import annotations

import json

import pytest

from avatargen.errors import InputError
from avatargen.poses.keypoints import Person, Pose, load_pose, parse_pose_text


def body_with(points: dict[int, tuple[float, float]]) -> list:
    body = [None] * 18
    for i, p in points.items():
        body[i] = p
    return body


def test_round_trip_writes_c1_and_zeros_for_missing(tmp_path):
    hand = [(float(10 + k), 20.0) for k in range(21)]
    pose = Pose(640, 480, [Person(body_with({0: (100, 50), 1: (100.5, 90)}), left_hand=hand)])
    path = tmp_path / "p.json"
    pose.save(path)
    data = json.loads(path.read_text())
    assert data["canvas_width"] == 640 and data["canvas_height"] == 480
    kp = data["people"][0]["pose_keypoints_2d"]
    assert len(kp) == 54
    assert kp[:6] == [100, 50, 1, 100.5, 90, 1]
    assert kp[6:9] == [0, 0, 0]
    assert len(data["people"][0]["hand_left_keypoints_2d"]) == 63
    assert "face_keypoints_2d" not in data["people"][0]
    back = load_pose(path)
    assert back.people[0].body[1] == (100.5, 90) and back.people[0].body[2] is None
    assert back.people[0].left_hand == hand and back.people[0].right_hand is None


def test_normalised_coordinates_are_scaled_by_the_canvas():
    kp = [0.5, 0.25, 1] + [0, 0, 0] * 16 + [0.75, 1.0, 0.9]
    pose = parse_pose_text(
        json.dumps({"canvas_width": 800, "canvas_height": 400, "people": [{"pose_keypoints_2d": kp}]}), "x"
    )
    assert pose.people[0].body[0] == (400, 100)
    assert pose.people[0].body[17] == (600, 400)


def test_low_confidence_points_still_count_when_above_zero():
    kp = [10, 20, 0.3, 40, 80, 0.05] + [0, 0, 0] * 16
    pose = parse_pose_text(json.dumps({"people": [{"pose_keypoints_2d": kp}]}), "x")
    # No canvas given: the figure is framed by its bounding box plus a margin (5 % of 60 = 3 px).
    assert pose.people[0].body[:2] == [(3, 3), (33, 63)]
    assert (pose.canvas_width, pose.canvas_height) == (36, 66) and not pose.canvas_given


def test_controlnet_list_wrapper_and_body25_are_read():
    body25 = [[float(i), float(i), 1.0] for i in range(25)]
    flat = [v for p in body25 for v in p]
    pose = parse_pose_text(
        json.dumps([{"canvas_width": 100, "canvas_height": 100, "people": [{"pose_keypoints_2d": flat}]}]),
        "x",
    )
    xs = [p[0] for p in pose.people[0].body]
    assert xs[:8] == [0, 1, 2, 3, 4, 5, 6, 7]  # same order up to the wrists
    assert xs[8] == 9  # BODY_25's MidHip (8) is skipped


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"canvas_width": 10}', "no 'people' list"),
        ('{"people": [{"pose_keypoints_2d": [1, 2]}]}', "not a multiple of 3"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 1]}]}', "has 1 points, expected 18"),
        ('{"people": [{"pose_keypoints_2d": "abc"}]}', "must be a list"),
        ('{"people": [{"pose_keypoints_2d": [1, "a", 1]}]}', "only numbers"),
        ('{"people": [{"face_keypoints_2d": []}]}', "no pose_keypoints_2d"),
        ('{"canvas_width": -5, "people": []}', "canvas_width must be a number of pixels"),
        ('{"people": [3]}', "people[0] is not an object"),
    ],
)
def test_bad_json_names_the_file_and_the_problem(tmp_path, text, words):
    path = tmp_path / "bad-pose.json"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_pose(path)
    assert str(path) in err.value.message
    assert words in err.value.message
    assert err.value.exit_code == 5


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="not found: .*nope.json"):
        load_pose(tmp_path / "nope.json")
