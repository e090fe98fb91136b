"""Draw a Pose the way ControlNet OpenPose models were trained to read it (Pillow only).

Style (docs/openpose-facts.md): black canvas; each of the 17 limbs a filled ellipse along the
limb, half-width 4 px, at 0.6 of its colour; each joint a radius-4 disc in full colour; then
hands (2 px HSV-coloured edges, blue joints) and face points (radius-3 white). Sizes are in
output pixels whatever the canvas size, as the annotators draw them.

Pixels follow the reference annotator's OpenCV rasterisation (controlnet_aux's draw_bodypose,
checked by tests/test_pose_reference.py): truncated joint centres, OpenCV's filled discs,
ellipse2Poly limbs filled as fillConvexPoly fills, 3 px hand lines, rounded edge colours.
"""

from __future__ import annotations

import colorsys
import math
import struct
from typing import Literal

from PIL import Image, ImageDraw

from avatargen.poses import cvraster
from avatargen.poses.keypoints import COLORS, HAND_EDGES, LIMBS, Person, Point, Pose

STICK_HALF_WIDTH = 4
JOINT_RADIUS = 4
HAND_JOINT_RADIUS = 4
HAND_LINE_HALF_WIDTH = 1  # OpenCV's thickness=2
FACE_RADIUS = 3
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)

Fit = Literal["pose", "canvas"]


def limb_color(i: int) -> tuple[int, int, int]:
    return tuple(int(float(c) * 0.6) for c in COLORS[i])  # type: ignore[return-value]


def hand_edge_color(e: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(e / len(HAND_EDGES), 1.0, 1.0)
    return (round(r * 255), round(g * 255), round(b * 255))  # OpenCV rounds a float colour


def pose_extent(pose: Pose) -> tuple[float, float, float, float]:
    """The box the figure occupies: its points, plus room for the head above the eyes.

    Keypoints stop at the eyes and ears; the crown of the head is roughly half the nose-to-neck
    distance above the nose, so a pose fitted to its bare points would crop the head.
    """
    xs: list[float] = []
    ys: list[float] = []
    for person in pose.people:
        for x, y in person.all_points():
            xs.append(x)
            ys.append(y)
        nose, neck = person.body[0], person.body[1]
        if nose and neck:
            r = 0.7 * math.dist(nose, neck)
            xs += [nose[0] - r, nose[0] + r]
            ys.append(nose[1] - r)
    if not xs:
        return (0.0, 0.0, pose.canvas_width, pose.canvas_height)
    return (min(xs), min(ys), max(xs), max(ys))


def fit_transform(
    pose: Pose, width: int, height: int, fit: Fit = "pose", margin: float = 0.06
) -> tuple[float, float, float]:
    """(scale, dx, dy) mapping pose units to canvas pixels: uniform scale, centred.

    fit="pose": the figure's extent fills the canvas less `margin` (a fraction of each side).
    fit="canvas": the pose's own canvas is letterboxed into the target (keeps its composition).
    """
    if fit == "canvas":
        x0, y0, x1, y1 = 0.0, 0.0, pose.canvas_width, pose.canvas_height
        margin = 0.0
    else:
        x0, y0, x1, y1 = pose_extent(pose)
    avail_w, avail_h = width * (1 - 2 * margin), height * (1 - 2 * margin)
    bw, bh = x1 - x0, y1 - y0
    scales = [s for s in (avail_w / bw if bw > 0 else None, avail_h / bh if bh > 0 else None) if s]
    scale = min(scales) if scales else 1.0
    dx = (width - bw * scale) / 2 - x0 * scale
    dy = (height - bh * scale) / 2 - y0 * scale
    return scale, dx, dy


def render_pose(
    pose: Pose, width: int, height: int, *, fit: Fit = "pose", margin: float = 0.06
) -> Image.Image:
    """An RGB skeleton image of exactly width x height."""
    if width < 1 or height < 1:
        raise ValueError(f"canvas must be at least 1x1, got {width}x{height}")
    scale, dx, dy = fit_transform(pose, width, height, fit, margin)
    people = [p.mapped(lambda pt: (pt[0] * scale + dx, pt[1] * scale + dy)) for p in pose.people]
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    for person in people:  # the annotator's order: each person's body, hands, then face
        _draw_limbs(draw, person)
        _draw_joints(draw, person)
        for hand in (person.left_hand, person.right_hand):
            if hand is not None:
                _draw_hand(draw, hand)
        for p in person.face or ():
            if p is not None and min(_px(p)) > 0:  # the annotator skips the top and left edge
                _disc(draw, _px(p), FACE_RADIUS, FACE_COLOR)
    return image


def _draw_limbs(draw: ImageDraw.ImageDraw, person: Person) -> None:
    for i, (a, b) in enumerate(LIMBS):
        pa, pb = person.body[a], person.body[b]
        if pa is None or pb is None:
            continue  # a limb needs both of its joints
        _fill_convex(draw, _limb_polygon(pa, pb), limb_color(i))


def _limb_polygon(pa: Point, pb: Point) -> list[tuple[int, int]]:
    """The annotator's limb: an ellipse polygon with whole-pixel centre, axes and angle.

    The outline is sampled every degree (as OpenCV's ellipse2Poly does) around the truncated
    midpoint, with half-length int(length / 2), half-width 4 and the angle truncated to whole
    degrees; vertices are rounded and repeats dropped.
    """
    cx, cy = int((pa[0] + pb[0]) / 2), int((pa[1] + pb[1]) / 2)
    half_len = int(math.dist(pa, pb) / 2)
    angle = int(math.degrees(math.atan2(pa[1] - pb[1], pa[0] - pb[0]))) % 360
    ca, sa = _COS[angle], _SIN[angle]
    out: list[tuple[int, int]] = []
    for degree in range(0, 361):
        u, v = half_len * _COS[degree], STICK_HALF_WIDTH * _SIN[degree]
        vertex = (round(cx + u * ca - v * sa), round(cy + u * sa + v * ca))  # half to even, as cvRound
        if not out or vertex != out[-1]:
            out.append(vertex)
    return out


def _float32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


# OpenCV's ellipse2Poly reads sines and cosines of whole degrees from a table of floats.
_SIN = [_float32(math.sin(math.radians(d))) for d in range(361)]
_COS = [_float32(math.cos(math.radians(d))) for d in range(361)]


def _fill_convex(draw: ImageDraw.ImageDraw, points: list[tuple[int, int]], color, shift: int = 0) -> None:
    """Fill a convex polygon exactly as OpenCV's fillConvexPoly does (poses/cvraster.py): its
    outline as OpenCV's 1 px lines, then each row between its fixed-point edges."""
    width, height = draw.im.size
    outline, runs = cvraster.fill_convex(points, width, height, shift)
    if outline:
        draw.point(outline, fill=color)
    for y, x0, x1 in runs:
        draw.line([(x0, y), (x1, y)], fill=color, width=1)


def _cv_round(v: float) -> int:
    return math.floor(v + 0.5)


def _draw_joints(draw: ImageDraw.ImageDraw, person: Person) -> None:
    for i, p in enumerate(person.body):
        if p is not None:
            _disc(draw, _px(p), JOINT_RADIUS, COLORS[i])


def _draw_hand(draw: ImageDraw.ImageDraw, hand: list[Point | None]) -> None:
    # The annotator skips points on the canvas's top or left edge (x or y of 0 after truncation).
    pixels = [None if p is None or min(_px(p)) <= 0 else _px(p) for p in hand]
    for e, (a, b) in enumerate(HAND_EDGES):
        pa, pb = pixels[a], pixels[b]
        if pa is not None and pb is not None:
            _thick_line(draw, pa, pb, hand_edge_color(e))
    for p in pixels:
        if p is not None:
            _disc(draw, p, HAND_JOINT_RADIUS, HAND_JOINT_COLOR)


def _thick_line(draw: ImageDraw.ImageDraw, pa: tuple[int, int], pb: tuple[int, int], color) -> None:
    """OpenCV's line(thickness=2): a quad 1 px either side of the segment in 16-bit fixed point,
    filled the fillConvexPoly way, with a radius-1 disc on each end (about 3 px wide in all)."""
    quad = cvraster.thick_line_quad(pa, pb)
    if quad is not None:
        _fill_convex(draw, quad, color, shift=cvraster.XY_SHIFT)
    for x, y in (pa, pb):
        draw.point([(x, y), (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)], fill=color)


def _px(p: Point) -> tuple[int, int]:
    return (int(p[0]), int(p[1]))  # truncated, as the annotator does: int(x * W)


# Rows of OpenCV's filled circle, as (dy, half-width): radius 4 covers 49 px, radius 3 covers 29
# (Pillow's ellipse of the same radius covers 61 and 37).
_DISC_ROWS = {
    4: ((-4, 0), (-3, 2), (-2, 3), (-1, 3), (0, 4), (1, 3), (2, 3), (3, 2), (4, 0)),
    3: ((-3, 0), (-2, 2), (-1, 2), (0, 3), (1, 2), (2, 2), (3, 0)),
}


def _disc(draw: ImageDraw.ImageDraw, centre: tuple[int, int], r: int, color: tuple[int, int, int]) -> None:
    x, y = centre
    for dy, half in _DISC_ROWS[r]:
        draw.line([(x - half, y + dy), (x + half, y + dy)], fill=color, width=1)
