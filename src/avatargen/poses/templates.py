"""Named pose templates shipped as package data (poses/templates/NAME.json).

Each file is ordinary OpenPose JSON (so it opens in a pose editor) plus four fields of ours:
name, description (prompt text for backends that cannot take a pose image), framing
(full-body or upper-body) and facing (front or three-quarter). The poses were placed by hand
and checked by rendering them.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from avatargen.errors import UsageError
from avatargen.poses.keypoints import Pose, pose_from_json

FRAMINGS = ("full-body", "upper-body")


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    framing: str
    facing: str
    pose: Pose

    def summary(self) -> dict[str, str]:
        return {
            "name": self.name,
            "description": self.description,
            "framing": self.framing,
            "facing": self.facing,
        }


def normalise_name(name: str) -> str:
    """'T Pose', 't_pose' and 't-pose' are the same template."""
    return "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())


@cache
def load_templates() -> dict[str, Template]:
    out: dict[str, Template] = {}
    folder = resources.files("avatargen.poses") / "templates"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        source = f"template {entry.name}"
        data = json.loads(entry.read_text(encoding="utf-8"))
        template = Template(
            name=data["name"],
            description=data["description"],
            framing=data["framing"],
            facing=data.get("facing", "front"),
            pose=pose_from_json(data, source),
        )
        out[template.name] = template
    return out


def template_names() -> list[str]:
    return list(load_templates())


def get_template(name: str, option: str = "--pose") -> Template:
    """A template by name; an unknown name is a UsageError with the closest names."""
    templates = load_templates()
    key = normalise_name(name)
    if key in templates:
        return templates[key]
    compact = {n.replace("-", ""): n for n in templates}  # 'tpose', 'armsup'
    if key.replace("-", "") in compact:
        return templates[compact[key.replace("-", "")]]
    close = difflib.get_close_matches(key, list(templates), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    hint += "see `avatargen poses list`; --pose also takes FILE.json, FILE.png, auto or a URL"
    raise UsageError(f"unknown pose '{name}' ({option})", hint)
