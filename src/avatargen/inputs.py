"""Turning PATH arguments (files, folders, globs, '-' for stdin) into a list of photo files."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from avatargen.errors import InputError
from avatargen.images import sniff_image

_GLOB_CHARS = set("*?[")


def _folder_images(folder: Path, recursive: bool) -> Iterable[Path]:
    try:
        entries = sorted(folder.rglob("*") if recursive else folder.iterdir())
    except OSError as exc:
        raise InputError(
            f"{folder}: the folder cannot be read ({exc.strerror or exc})", "check its permissions"
        ) from None
    for path in entries:
        # Hidden files (our own temporary outputs among them) and anything inside a hidden
        # folder (.git, .thumbnails) are not photos to process.
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        if sniff_image(path):  # recognised by content, not by extension
            yield path


def collect_inputs(specs: list[str], recursive: bool = False, stdin=None) -> list[Path]:
    """Every photo named by the arguments, in order, without duplicates. A named file is kept
    even when it is not an image (it becomes one failed job with a clear reason); files in
    folders are kept only when their content is an image."""
    found: list[Path] = []
    for spec in specs:
        if spec == "-":
            stream = stdin or sys.stdin
            named = [line.strip() for line in stream if line.strip()]
            found.extend(collect_inputs(named, recursive, stream))
            continue
        path = Path(spec).expanduser()
        if path.is_dir():
            found.extend(_folder_images(path, recursive))
        elif path.is_file():
            found.append(path)
        elif _GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=recursive))
            if not matches:
                raise InputError(f"{spec}: the pattern matches no file", "check the pattern and its quoting")
            found.extend(collect_inputs(matches, recursive, stdin))
        elif path.exists():  # a named pipe, a device or a socket: nothing to read a photo from
            raise InputError(
                f"{spec}: {_kind(path)}, not a photo file or a folder",
                "give photo files or folders; to read paths from a pipe, pass - and pipe them in",
            )
        else:
            raise InputError(f"{spec}: no such file or folder", "check the path")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _kind(path: Path) -> str:
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"  # pragma: no cover - every other kind is one of the above


IMAGE_NAMES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".avif")


def no_photos_error(specs: list[str], recursive: bool = False) -> InputError:
    """Nothing to run: an empty folder says so, but a folder of files named like images whose
    content is not one (damaged, truncated, renamed) names them rather than "no photos found"."""
    broken: list[Path] = []
    for spec in specs:
        folder = Path(spec).expanduser()
        if folder.is_dir():
            try:
                entries = sorted(folder.rglob("*") if recursive else folder.iterdir())
            except OSError:
                continue
            broken += [
                p
                for p in entries
                if p.suffix.lower() in IMAGE_NAMES
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                and p.is_file()
            ]
    where = " ".join(specs).strip()
    if broken:
        shown = ", ".join(str(p) for p in broken[:3]) + (
            f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        )
        return InputError(
            f"no readable photos in {where}: {shown} {'is' if len(broken) == 1 else 'are'} not an image "
            "(damaged, empty, or not the format its name says)",
            "re-export or re-download them, or name other photos",
        )
    return InputError(
        f"no photos found in {where}".rstrip(), "name image files or folders holding images, or --person DIR"
    )
