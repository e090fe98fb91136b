"""`avatargen poses list|show|extract`: the named pose templates, skeleton images, photo extraction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from avatargen.cli.options import Json

app = typer.Typer(
    help="OpenPose skeletons: named templates, rendering, extraction from photos.", no_args_is_help=True
)


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """'768x1024' -> (768, 1024); anything else is a UsageError naming the option."""
    from avatargen.errors import UsageError

    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad size '{text}' ({option})", "use WIDTHxHEIGHT, e.g. 768x1024") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise UsageError(f"size {width}x{height} out of range ({option})", "each side from 16 to 8192 px")
    return width, height


@app.command("list")
def list_poses(json_: Json = False) -> None:
    """The named pose templates, with their framing and prompt description."""
    from avatargen.poses.templates import load_templates

    templates = list(load_templates().values())
    if json_:
        from avatargen.output import emit_json

        emit_json([t.summary() for t in templates])
        return
    from avatargen.output import print_table

    rows = [[t.name, t.framing, t.description] for t in templates]
    print_table(
        "pose templates (use with --pose NAME)",
        ["name", "framing", "description"],
        rows,
        detail=("description",),
    )


@app.command("show")
def show_pose(
    pose: Annotated[str, typer.Argument(metavar="NAME_OR_FILE", help="Template name, pose JSON, or image.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="PNG to write (default: NAME.png here).")
    ] = None,
    size: Annotated[
        str | None, typer.Option("--size", metavar="WxH", help="Canvas size (default: 512x768 or 512x512).")
    ] = None,
    json_: Json = False,
) -> None:
    """Draw a template or a pose file as the skeleton image a ControlNet OpenPose model reads."""
    from avatargen.errors import UsageError
    from avatargen.poses.sources import KeypointSource, resolve_pose

    if pose.strip().lower() == "auto":
        raise UsageError(
            "'auto' needs a photo (poses show)", "use `avatargen poses extract PHOTO --png out.png`"
        )
    source = resolve_pose(pose, option="NAME_OR_FILE")
    framing = getattr(source, "framing", "full-body")
    if size:
        width, height = parse_size(size)
    elif isinstance(source, KeypointSource) and source.fit == "canvas":
        width, height = _canvas_size(pose, source.pose.canvas_width, source.pose.canvas_height)
    else:
        width, height = (512, 768) if framing == "full-body" else (512, 512)
    out = output or Path(f"{source.name}.png")
    _save_png(source.image(width, height), out)
    record = {
        "pose": source.name,
        "output": str(out),
        "width": width,
        "height": height,
        "framing": framing,
        "description": source.description,
    }
    _report(record, json_, f"wrote {out} ({width}x{height}, {source.name})")


def _canvas_size(pose: str, width: float, height: float) -> tuple[int, int]:
    """The pose file's own canvas, scaled to fit 8192 px; one too thin to draw (1x100000) is refused."""
    scale = min(1.0, 8192 / max(width, height, 1))
    drawn = round(width * scale), round(height * scale)
    if min(drawn) < 16:
        from avatargen.errors import InputError

        raise InputError(
            f"{pose}: its canvas is too thin to draw (a side under 16 px when the longer is at most 8192)",
            "give the size to draw at: --size 512x768",
        )
    return drawn


@app.command("extract")
def extract(
    photo: Annotated[Path, typer.Argument(help="Photo of one person.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="OpenPose JSON to write (default: PHOTO-STEM.pose.json)."),
    ] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also draw the skeleton to this PNG.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the JSON or PNG if they already exist.")
    ] = False,
    json_: Json = False,
) -> None:
    """Find the person's pose in a photo (needs the 'pose' extra) and save it as OpenPose JSON."""
    from avatargen.poses.extract import extract_pose, open_photo, require_mediapipe
    from avatargen.poses.render import render_pose

    require_mediapipe()  # before reading anything: the missing extra is the first thing to fix
    out = output or Path(f"{photo.stem}.pose.json")
    if not overwrite:  # checked before the extraction, so nothing is computed to be thrown away
        _refuse_existing(out, png)
    picture = open_photo(photo)
    pose = extract_pose(picture, str(photo))
    pose.save(out)
    if png is not None:
        _save_png(render_pose(pose, picture.width, picture.height, fit="canvas"), png)
    found = sum(p is not None for p in pose.people[0].body)
    record = {
        "photo": str(photo),
        "output": str(out),
        "png": str(png) if png else None,
        "width": picture.width,
        "height": picture.height,
        "keypoints": found,
    }
    message = f"wrote {out} ({found} of 18 body points)" + (f" and {png}" if png else "")
    _report(record, json_, message)


def _refuse_existing(*paths: Path | None) -> None:
    from avatargen.errors import InputError

    for path in paths:
        if path is not None and os.path.lexists(path):
            raise InputError(f"{path}: already exists", "pass --overwrite to replace it")


def _save_png(image, path: Path) -> None:
    from avatargen.errors import InputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot write {path}: {exc}", "check the folder exists and is writable") from None


def _report(record: dict, json_: bool, message: str) -> None:
    if json_:
        from avatargen.output import emit_json

        emit_json(record)
    else:
        print(message)
