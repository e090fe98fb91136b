"""The OpenPose person model and the OpenPose / sd-webui-controlnet JSON that carries it.

A `Pose` is a canvas size plus people; each `Person` has the 18 BODY_18 points (None where a
point is missing) and, optionally, 21 points per hand and 70 face points. Coordinates are in
the pose's own canvas units (pixels of `canvas_width` x `canvas_height`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatargen.errors import InputError

Point = tuple[float, float]
Points = list[Point | None]

BODY_NAMES = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
BODY_COUNT = 18
HAND_COUNT = 21
FACE_COUNT = 70

# The 17 limbs the annotator draws; limb i uses colour i.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip

HAND_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
    (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
)  # fmt: skip

# BODY_25 (OpenPose's default model) -> BODY_18: same order, minus MidHip (8) and the feet.
_BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

# A canvas-less file is re-based onto its bounding box plus this margin (a fraction of the box's
# longer side, at least 1 px) on every side: sd-webui-openpose-editor takes a point at exactly
# x = 0 or y = 0 for a missing one and drops it.
REBASE_MARGIN = 0.05

# A normalised file without a canvas size is drawn on this square canvas.
NORMALISED_CANVAS = 512.0
# controlnet_aux writes a missing hand point as -1 px / canvas (-0.00195 on 512 px): still "normalised".
NORMALISED_SLACK = 0.01
MAX_CANVAS = 100_000  # px per side; a real canvas is a few thousand
MAX_COORDINATE = 1e7  # beyond this a number is garbage, not a position

_PART_KEYS = {
    "body": "pose_keypoints_2d",
    "left_hand": "hand_left_keypoints_2d",
    "right_hand": "hand_right_keypoints_2d",
    "face": "face_keypoints_2d",
}


@dataclass
class Person:
    body: Points = field(default_factory=lambda: [None] * BODY_COUNT)
    left_hand: Points | None = None
    right_hand: Points | None = None
    face: Points | None = None

    def __post_init__(self) -> None:
        if len(self.body) != BODY_COUNT:
            raise ValueError(f"a person has {BODY_COUNT} body points, got {len(self.body)}")

    def point(self, name: str) -> Point | None:
        return self.body[BODY_NAMES.index(name)]

    def parts(self) -> dict[str, Points]:
        """The parts that are there, by name (body always)."""
        out = {"body": self.body}
        for part in ("left_hand", "right_hand", "face"):
            value = getattr(self, part)
            if value is not None:
                out[part] = value
        return out

    def all_points(self) -> list[Point]:
        return [p for points in self.parts().values() for p in points if p is not None]

    def mapped(self, fn) -> Person:
        """A copy with every present point passed through fn((x, y)) -> (x, y)."""

        def conv(points: Points | None) -> Points | None:
            return None if points is None else [None if p is None else fn(p) for p in points]

        return Person(conv(self.body), conv(self.left_hand), conv(self.right_hand), conv(self.face))


@dataclass
class Pose:
    canvas_width: float
    canvas_height: float
    people: list[Person]
    # False for a file that named no canvas: its figure is framed by its own extent.
    canvas_given: bool = True

    def all_points(self) -> list[Point]:
        return [p for person in self.people for p in person.all_points()]

    def to_json(self) -> dict[str, Any]:
        """The sd-webui-controlnet JSON: pixel coordinates, c = 1 for present points, 0,0,0 missing."""
        people = []
        for person in self.people:
            record = {}
            for part, points in person.parts().items():
                flat: list[float] = []
                for p in points:
                    flat.extend((0, 0, 0) if p is None else (_num(p[0]), _num(p[1]), 1))
                record[_PART_KEYS[part]] = flat
            people.append(record)
        return {
            "canvas_width": round(self.canvas_width),
            "canvas_height": round(self.canvas_height),
            "people": people,
        }

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        data = {**(extra or {}), **self.to_json()}
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(dumps_pose_json(data), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write pose file {path}: {exc.strerror or exc}") from exc


def dumps_pose_json(data: dict[str, Any]) -> str:
    """JSON with one line per field and per keypoint list, so files stay readable and diffable."""
    lines = []
    for key, value in data.items():
        if key != "people":
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    people = []
    for person in data.get("people", []):
        fields = [f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in person.items()]
        people.append("    {\n" + ",\n".join(fields) + "\n    }")
    lines.append('  "people": [\n' + ",\n".join(people) + "\n  ]")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _num(v: float) -> float | int:
    r = round(v, 2)
    return int(r) if r == int(r) else r


def load_pose(path: str | Path) -> Pose:
    """Read an OpenPose JSON file; anything wrong is an InputError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"pose file not found: {path}", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read pose file {path}: {exc}") from exc
    return parse_pose_text(text, str(path))


def parse_pose_text(text: str | bytes, source: str) -> Pose:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers past Python's digit limit;
        # RecursionError a document nested deeper than the decoder's stack.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InputError(
            f"{source} is not valid JSON: {reason}", "expected OpenPose JSON with people[]"
        ) from None
    return pose_from_json(data, source)


def pose_from_json(data: Any, source: str) -> Pose:
    """Build a Pose from parsed OpenPose JSON (a dict with people[], or a list of such dicts).

    Coordinates are normalised (fractions of the canvas) when the canvas is 1x1 or every present
    point lies within [-0.01, 1.01]: controlnet_aux marks a hand point it did not find with -1 px
    divided by the canvas size (e.g. -0.00195) and c = 1, so the test must tolerate a sliver below
    zero, and such out-of-canvas points are missing. A file without a canvas size (CMU OpenPose
    output) has no composition to keep: `canvas_given` is False and the figure is moved onto a
    canvas the size of its bounding box plus REBASE_MARGIN on each side (no point on x = 0 / y = 0).
    """
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # ComfyUI / the ControlNet preprocessor write a one-element list
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise InputError(f"{source}: no 'people' list", 'expected OpenPose JSON: {"people": [...]}')
    width = _canvas_dim(data, "canvas_width", source)
    height = _canvas_dim(data, "canvas_height", source)
    raw_people: list[dict[str, list[tuple[float, float, float]]]] = []
    for i, raw in enumerate(data["people"]):
        if not isinstance(raw, dict):
            raise InputError(f"{source}: people[{i}] is not an object")
        parts = {}
        for part, key in _PART_KEYS.items():
            value = raw.get(key)
            if value is None or (part != "body" and value == []):
                continue  # controlnet_aux writes null, CMU OpenPose [] for a part it did not find
            parts[part] = _triples(value, f"{source}: people[{i}].{key}")
        if "body" not in parts:
            raise InputError(f"{source}: people[{i}] has no pose_keypoints_2d")
        raw_people.append(parts)

    present = [(x, y) for parts in raw_people for t in parts.values() for x, y, c in t if c > 0]
    unit_canvas = width == 1 and height == 1
    normalised = unit_canvas or (bool(present) and all(_near_unit(x) and _near_unit(y) for x, y in present))
    canvas_given = width is not None and height is not None and not unit_canvas
    if normalised:
        if not canvas_given:
            width = height = NORMALISED_CANVAS
        sx, sy = width, height
    else:
        sx = sy = 1.0

    def place(x: float, y: float, c: float) -> Point | None:
        if c <= 0 or (normalised and not (0 <= x <= 1 and 0 <= y <= 1)):
            return None
        return (x * sx, y * sy)

    people = []
    for i, parts in enumerate(raw_people):
        person = Person()
        for part, triples in parts.items():
            expected = {"body": BODY_COUNT, "face": FACE_COUNT}.get(part, HAND_COUNT)
            if part == "body" and len(triples) == 25:
                triples = body18_of_25(triples)
            if part == "face" and len(triples) == 68:
                triples = triples + [(0.0, 0.0, 0.0)] * 2  # 68-point faces lack the two pupils
            if len(triples) != expected:
                key = _PART_KEYS[part]
                raise InputError(
                    f"{source}: people[{i}].{key} has {len(triples)} points, expected {expected}",
                    "each point is three numbers: x, y, confidence",
                )
            setattr(person, part, [place(*t) for t in triples])
        people.append(person)
    if not normalised and not canvas_given:
        # Frame the figure by its bounding box, not by its largest coordinate (which would keep
        # the empty space left of and above it and shrink the figure into a corner).
        points = [p for person in people for p in person.all_points()] or [(0.0, 0.0)]
        x0, y0 = min(x for x, _ in points), min(y for _, y in points)
        box_w = max(1.0, max(x for x, _ in points) - x0)
        box_h = max(1.0, max(y for _, y in points) - y0)
        margin = max(1.0, round(REBASE_MARGIN * max(box_w, box_h)))
        width, height = box_w + 2 * margin, box_h + 2 * margin
        people = [person.mapped(lambda p: (p[0] - x0 + margin, p[1] - y0 + margin)) for person in people]
    return Pose(float(width), float(height), people, canvas_given=canvas_given)


def body18_of_25(triples: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """BODY_18 from 25 body points, the layout told by the content, not the length alone.

    Real BODY_25 has MidHip at 8 and the left ear and feet at 18-24. ComfyUI also writes COCO-18
    padded to 25 with points 18-24 all absent: dropping "MidHip" there would drop the real right
    hip and shift every later joint. All of 18-24 absent means padded COCO-18, unless point 8 sits
    where a MidHip would, midway between points 9 and 12 (BODY_25's hips; COCO-18's right knee and
    left knee, far below a right hip), as in a BODY_25 figure seen without its feet and left ear."""
    if any(c > 0 for _, _, c in triples[18:25]):
        return [triples[j] for j in _BODY25_TO_18]
    mid, right_hip, left_hip = triples[8], triples[9], triples[12]
    if mid[2] > 0 and right_hip[2] > 0 and left_hip[2] > 0:
        span = math.dist(right_hip[:2], left_hip[:2])
        centre = ((right_hip[0] + left_hip[0]) / 2, (right_hip[1] + left_hip[1]) / 2)
        if math.dist(mid[:2], centre) <= 0.25 * span:
            return [triples[j] for j in _BODY25_TO_18]
    return triples[:BODY_COUNT]


def _near_unit(v: float) -> bool:
    return -NORMALISED_SLACK <= v <= 1 + NORMALISED_SLACK


def _canvas_dim(data: dict, key: str, source: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= MAX_CANVAS:
        raise InputError(
            f"{source}: {key} must be a number of pixels from 1 to {MAX_CANVAS}, got {_short(value)}"
        )
    return float(value)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def _triples(value: Any, where: str) -> list[tuple[float, float, float]]:
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list of numbers")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise InputError(f"{where} must hold only numbers")
    if len(value) % 3:
        raise InputError(
            f"{where} has {len(value)} numbers, not a multiple of 3", "each point is x, y, confidence"
        )
    try:
        numbers = [float(v) for v in value]
    except OverflowError:  # an integer beyond any float
        numbers = [math.inf]
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in numbers):
        raise InputError(f"{where} holds a number that is not finite or is absurdly large")
    return [(numbers[k], numbers[k + 1], numbers[k + 2]) for k in range(0, len(numbers), 3)]
