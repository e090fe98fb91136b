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
        else:
            raise InputError(f"{spec}: no such file or folder", "check the path")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
