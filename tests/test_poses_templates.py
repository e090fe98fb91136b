"""The shipped pose templates: all load, all render, anatomy and left/right are sane."""

from __future__ import annotations

import math

import pytest

from avatargen.errors import UsageError
from avatargen.poses.keypoints import BODY_NAMES, COLORS
from avatargen.poses.render import fit_transform, render_pose
from avatargen.poses.templates import get_template, load_templates, normalise_name

REQUIRED = {
    "wave", "standing", "t-pose", "arms-crossed", "hands-on-hips", "pointing", "arms-up",
    "thinking", "walking", "sitting", "jumping", "three-quarter", "portrait",
}  # fmt: skip
TEMPLATES = load_templates()
FRONT_ISH = [n for n, t in TEMPLATES.items() if t.facing in ("front", "three-quarter")]


def idx(name: str) -> int:
    return BODY_NAMES.index(name)


def test_all_required_templates_ship():
    assert set(TEMPLATES) >= REQUIRED
    assert len(TEMPLATES) >= 12


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_metadata(name):
    t = TEMPLATES[name]
    assert t.name == name
    assert t.framing in ("full-body", "upper-body")
    assert t.facing in ("front", "three-quarter")
    assert t.description and "\n" not in t.description and len(t.description) < 160
    assert len(t.pose.people) == 1
    assert t.pose.canvas_width > 0 and t.pose.canvas_height > 0
    assert t.framing == ("upper-body" if name == "portrait" else "full-body")


@pytest.mark.parametrize("size", [(512, 512), (768, 1024)])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_renders_every_joint_at_its_place(name, size):
    pose = TEMPLATES[name].pose
    image = render_pose(pose, *size)
    assert image.size == size and image.mode == "RGB"
    scale, dx, dy = fit_transform(pose, *size)
    placed = [
        None if p is None else (round(p[0] * scale + dx), round(p[1] * scale + dy))
        for p in pose.people[0].body
    ]
    checked = 0
    for i, p in enumerate(placed):
        if p is None:
            continue
        assert 0 <= p[0] < size[0] and 0 <= p[1] < size[1], f"{name}: {BODY_NAMES[i]} off canvas"
        # joints drawn later cover earlier ones; check each joint that no later joint overlaps
        if any(q is not None and math.dist(p, q) <= 8 for q in placed[i + 1 :]):
            continue
        assert image.getpixel(p) == COLORS[i], f"{name}: {BODY_NAMES[i]}"
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("name", FRONT_ISH)
def test_right_side_is_on_the_viewers_left(name):
    body = TEMPLATES[name].pose.people[0].body
    for part in ("shoulder", "hip", "eye", "ear"):
        right, left = body[idx(f"right_{part}")], body[idx(f"left_{part}")]
        if right is not None and left is not None:
            assert right[0] < left[0], f"{name}: right_{part} must be left of left_{part} in the image"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_limb_lengths_are_human(name):
    body = TEMPLATES[name].pose.people[0].body
    shoulders = math.dist(body[idx("right_shoulder")], body[idx("left_shoulder")])
    head = math.dist(body[idx("nose")], body[idx("neck")])
    assert 0.3 < head / shoulders < 0.9, name
    for side in ("right", "left"):
        s, e, w = (body[idx(f"{side}_{j}")] for j in ("shoulder", "elbow", "wrist"))
        if e is not None:
            assert 0.5 < math.dist(s, e) / shoulders < 1.2, f"{name}: {side} upper arm"
        if e is not None and w is not None:
            assert 0.5 < math.dist(e, w) / math.dist(s, e) < 1.4, f"{name}: {side} forearm"
        hip, knee, ankle = (body[idx(f"{side}_{j}")] for j in ("hip", "knee", "ankle"))
        if hip and knee and ankle:
            assert 0.7 < math.dist(knee, ankle) / math.dist(hip, knee) < 1.5, f"{name}: {side} leg"
            assert ankle[1] > hip[1], f"{name}: {side} ankle below hip"


def test_poses_that_must_bend_or_raise_arms():
    def y(name, point):
        return TEMPLATES[name].pose.people[0].body[idx(point)][1]

    def x(name, point):
        return TEMPLATES[name].pose.people[0].body[idx(point)][0]

    # wave: the person's right wrist is above the right elbow, which is out to the viewer's left
    assert y("wave", "right_wrist") < y("wave", "right_elbow")
    assert x("wave", "right_elbow") < x("wave", "right_shoulder")
    # arms-up: both wrists above the head
    assert max(y("arms-up", "right_wrist"), y("arms-up", "left_wrist")) < y("arms-up", "nose")
    # thinking: the right wrist near the chin, far from its elbow
    assert abs(y("thinking", "right_wrist") - y("thinking", "neck")) < 40
    # arms-crossed: each wrist crosses to the other side of the body's midline
    assert x("arms-crossed", "right_wrist") > x("arms-crossed", "neck") > x("arms-crossed", "left_wrist")
    # hands-on-hips: elbows out wider than the shoulders, wrists at hip height
    assert x("hands-on-hips", "right_elbow") < x("hands-on-hips", "right_shoulder")
    assert abs(y("hands-on-hips", "right_wrist") - y("hands-on-hips", "right_hip")) < 30
    # t-pose: wrists level with the shoulders
    assert abs(y("t-pose", "left_wrist") - y("t-pose", "left_shoulder")) < 10
    # sitting: knees about level with the hips
    assert abs(y("sitting", "right_knee") - y("sitting", "right_hip")) < 40
    # portrait: no legs
    assert TEMPLATES["portrait"].pose.people[0].body[idx("right_knee")] is None


@pytest.mark.parametrize("spelling", ["T-Pose", "t_pose", "tpose", " T pose "])
def test_template_names_are_forgiving(spelling):
    assert get_template(spelling).name == "t-pose"
    assert normalise_name("Hands On_Hips") == "hands-on-hips"


def test_unknown_template_suggests_close_names():
    with pytest.raises(UsageError) as err:
        get_template("wavee")
    assert "--pose" in err.value.message and "wavee" in err.value.message
    assert "'wave'" in err.value.hint and "poses list" in err.value.hint
    assert err.value.exit_code == 2
