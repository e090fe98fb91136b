"""Pixel tests: the renderer draws exactly the ControlNet OpenPose training style."""

from __future__ import annotations

import colorsys

import pytest

from avatargen.poses.keypoints import COLORS, LIMBS, Person, Pose
from avatargen.poses.render import fit_transform, hand_edge_color, limb_color, pose_extent, render_pose

# A wide, hand-placed figure: every joint at least 20 px from the others, every limb long.
SPREAD = [
    (200, 100), (200, 200), (120, 200), (60, 300), (40, 400), (280, 200), (340, 300), (360, 400),
    (160, 400), (150, 520), (140, 640), (240, 400), (250, 520), (260, 640),
    (160, 60), (240, 60), (120, 40), (280, 40),
]  # fmt: skip
BLACK = (0, 0, 0)


def spread_pose(**missing) -> Pose:
    body = [None if i in missing.get("drop", ()) else p for i, p in enumerate(SPREAD)]
    return Pose(400, 700, [Person(body)])


def draw_1to1(pose: Pose):
    # fit="canvas" with the pose's own canvas size is the identity transform
    return render_pose(pose, round(pose.canvas_width), round(pose.canvas_height), fit="canvas")


def test_limb_colours_are_point_six_of_the_palette():
    assert limb_color(0) == (153, 0, 0)
    assert limb_color(2) == (153, 102, 0)
    assert limb_color(13) == (51, 0, 153)
    assert [limb_color(i) for i in range(17)] == [tuple(int(c * 0.6) for c in COLORS[i]) for i in range(17)]


def test_every_joint_centre_has_its_exact_colour():
    image = draw_1to1(spread_pose())
    assert image.mode == "RGB" and image.size == (400, 700)
    for i, (x, y) in enumerate(SPREAD):
        assert image.getpixel((x, y)) == COLORS[i], f"joint {i}"
        # radius 4: still the joint 3 px away, limb or background 6 px away (across the limb)
        assert image.getpixel((x + 3, y)) == COLORS[i] or image.getpixel((x, y + 3)) == COLORS[i]


def test_every_limb_midpoint_has_its_point_six_colour():
    image = draw_1to1(spread_pose())
    for i, (a, b) in enumerate(LIMBS):
        (xa, ya), (xb, yb) = SPREAD[a], SPREAD[b]
        mid = (round((xa + xb) / 2), round((ya + yb) / 2))
        assert image.getpixel(mid) == limb_color(i), f"limb {i} {LIMBS[i]}"


def test_limb_is_an_ellipse_of_half_width_four():
    image = draw_1to1(spread_pose())
    # limb 12 runs straight down from the nose (200,100) to the neck (200,200): width 2*4 at its middle
    row = [image.getpixel((x, 150)) for x in range(190, 211)]
    inside = [x for x, c in zip(range(190, 211), row, strict=True) if c == limb_color(12)]
    assert min(inside) in (196, 197) and max(inside) in (203, 204)
    # and it tapers: near the joints' ends it is narrower than at its middle
    near_end = [x for x in range(190, 211) if image.getpixel((x, 112)) == limb_color(12)]
    assert 0 < len(near_end) < len(inside)


def test_background_is_black_and_only_palette_colours_are_drawn():
    image = draw_1to1(spread_pose())
    assert image.getpixel((0, 0)) == BLACK and image.getpixel((399, 699)) == BLACK
    assert image.getpixel((100, 600)) == BLACK
    allowed = {BLACK, *COLORS, *(limb_color(i) for i in range(17))}
    used = {c for _, c in image.getcolors(maxcolors=10_000)}
    assert used <= allowed, used - allowed  # no anti-aliasing, no stray colours


def test_missing_joint_and_its_limbs_are_absent():
    image = draw_1to1(spread_pose(drop={3}))  # right elbow
    used = {c for _, c in image.getcolors(maxcolors=10_000)}
    assert COLORS[3] not in used
    assert limb_color(2) not in used and limb_color(3) not in used  # shoulder-elbow, elbow-wrist
    assert image.getpixel(SPREAD[3]) == BLACK
    assert image.getpixel((90, 250)) == BLACK and image.getpixel((50, 350)) == BLACK
    assert image.getpixel(SPREAD[4]) == COLORS[4]  # the wrist itself is still drawn


def test_hands_and_face_are_drawn_after_the_body_in_their_colours():
    hand = [(330 + 10 * (k % 5), 500 + 12 * (k // 5)) for k in range(21)]
    hand[0], hand[1] = (300, 500), (300, 600)  # edge 0-1: a clear vertical line, midpoint (300, 550)
    face = [None] * 70
    face[30] = (100, 620)
    body = [None] * 18
    body[0] = (100, 620)  # a nose under the face point: the face must win
    pose = Pose(400, 700, [Person(body, right_hand=hand, face=face)])
    image = draw_1to1(pose)
    assert image.getpixel((300, 500)) == (0, 0, 255)  # hand joints pure blue
    assert image.getpixel((300, 550)) == hand_edge_color(0)
    r, g, b = colorsys.hsv_to_rgb(0, 1, 1)
    assert hand_edge_color(0) == (255, 0, 0) and (r, g, b) == (1, 0, 0)
    assert hand_edge_color(10) == (0, 255, 255)
    assert image.getpixel((100, 620)) == (255, 255, 255)  # face over body
    assert image.getpixel((100, 624)) == COLORS[0]  # radius-3 face point, radius-4 nose around it


@pytest.mark.parametrize("size", [(512, 512), (1024, 1024), (768, 1024), (1024, 576)])
def test_fit_keeps_proportions_centred_with_a_margin(size):
    width, height = size
    pose = spread_pose()
    scale, dx, dy = fit_transform(pose, width, height, margin=0.06)
    x0, y0, x1, y1 = pose_extent(pose)
    left, right = x0 * scale + dx, width - (x1 * scale + dx)
    top, bottom = y0 * scale + dy, height - (y1 * scale + dy)
    assert left == pytest.approx(right) and top == pytest.approx(bottom)  # centred
    assert min(left, top) >= 0
    # the limiting side touches the margin exactly
    assert min(left / width, top / height) == pytest.approx(0.06)
    image = render_pose(pose, width, height)
    assert image.size == size
    # uniform scale: the neck is where the transform puts it, with its colour
    nx, ny = SPREAD[1]
    assert image.getpixel((round(nx * scale + dx), round(ny * scale + dy))) == COLORS[1]


def test_fit_leaves_room_for_the_head_above_the_eyes():
    pose = spread_pose()
    _, y0, _, _ = pose_extent(pose)
    assert y0 < 40  # above the ears (the highest points)


def test_canvas_fit_letterboxes_the_pose_canvas():
    pose = spread_pose()  # 400x700 canvas into 800x800: scale 800/700, centred horizontally
    scale, dx, dy = fit_transform(pose, 800, 800, fit="canvas")
    assert scale == pytest.approx(800 / 700) and dy == pytest.approx(0)
    assert dx == pytest.approx((800 - 400 * scale) / 2)


def test_size_is_exact_and_rejects_empty_canvas():
    assert render_pose(spread_pose(), 37, 91).size == (37, 91)
    with pytest.raises(ValueError):
        render_pose(spread_pose(), 0, 10)
