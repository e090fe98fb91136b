"""Draw a Pose the way ControlNet OpenPose models were trained to read it (Pillow only).

Style (docs/openpose-facts.md): black canvas; each of the 17 limbs a filled ellipse along the
limb, half-width 4 px, at 0.6 of its colour; each joint a radius-4 disc in full colour; then
hands (2 px HSV-coloured edges, blue joints) and face points (radius-3 white). Sizes are in
output pixels whatever the canvas size, as the annotators draw them.
"""

from __future__ import annotations

import colorsys
import math
from typing import Literal

from PIL import Image, ImageDraw

from avatargen.poses.keypoints import COLORS, HAND_EDGES, LIMBS, Person, Point, Pose

STICK_HALF_WIDTH = 4
JOINT_RADIUS = 4
HAND_JOINT_RADIUS = 4
HAND_LINE_WIDTH = 2
FACE_RADIUS = 3
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
ELLIPSE_POINTS = 72  # polygon vertices per limb: smooth at 1024 px, still cheap

Fit = Literal["pose", "canvas"]


def limb_color(i: int) -> tuple[int, int, int]:
    return tuple(int(float(c) * 0.6) for c in COLORS[i])  # type: ignore[return-value]


def hand_edge_color(e: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(e / len(HAND_EDGES), 1.0, 1.0)
    return (int(r * 255), int(g * 255), int(b * 255))


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
    for person in people:
        _draw_limbs(draw, person)
    for person in people:
        _draw_joints(draw, person)
    for person in people:
        for hand in (person.left_hand, person.right_hand):
            if hand is not None:
                _draw_hand(draw, hand)
    for person in people:
        if person.face is not None:
            for p in person.face:
                if p is not None:
                    _disc(draw, p, FACE_RADIUS, FACE_COLOR)
    return image


def _draw_limbs(draw: ImageDraw.ImageDraw, person: Person) -> None:
    for i, (a, b) in enumerate(LIMBS):
        pa, pb = person.body[a], person.body[b]
        if pa is None or pb is None:
            continue  # a limb needs both of its joints
        draw.polygon(_limb_polygon(pa, pb), fill=limb_color(i))


def _limb_polygon(pa: Point, pb: Point) -> list[tuple[float, float]]:
    """Vertices of the ellipse centred between the joints, long axis along the limb.

    Pillow has no rotated ellipse, so the outline is sampled and filled as a polygon.
    """
    cx, cy = (pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2
    half_len = math.dist(pa, pb) / 2
    angle = math.atan2(pb[1] - pa[1], pb[0] - pa[0])
    ca, sa = math.cos(angle), math.sin(angle)
    out = []
    for k in range(ELLIPSE_POINTS):
        t = 2 * math.pi * k / ELLIPSE_POINTS
        u, v = half_len * math.cos(t), STICK_HALF_WIDTH * math.sin(t)
        out.append((cx + u * ca - v * sa, cy + u * sa + v * ca))
    return out


def _draw_joints(draw: ImageDraw.ImageDraw, person: Person) -> None:
    for i, p in enumerate(person.body):
        if p is not None:
            _disc(draw, p, JOINT_RADIUS, COLORS[i])


def _draw_hand(draw: ImageDraw.ImageDraw, hand: list[Point | None]) -> None:
    for e, (a, b) in enumerate(HAND_EDGES):
        pa, pb = hand[a], hand[b]
        if pa is not None and pb is not None:
            draw.line([_px(pa), _px(pb)], fill=hand_edge_color(e), width=HAND_LINE_WIDTH)
    for p in hand:
        if p is not None:
            _disc(draw, p, HAND_JOINT_RADIUS, HAND_JOINT_COLOR)


def _px(p: Point) -> tuple[int, int]:
    return (round(p[0]), round(p[1]))


def _disc(draw: ImageDraw.ImageDraw, p: Point, r: int, color: tuple[int, int, int]) -> None:
    x, y = _px(p)  # whole-pixel centres, as the annotators draw them
    draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
