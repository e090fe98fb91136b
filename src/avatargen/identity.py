"""Identity options of `generate`, checked before anything is spent: the adapter scale, the
--ref photos (their faces cropped now, so a bad one stops the batch at once) and --person folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avatargen.errors import InputError, UsageError

if TYPE_CHECKING:
    from avatargen.catalog import Model

Reference = tuple[str, Path]  # (content sha256, the file)


def resolve_scale(model: Model, given: float | None) -> tuple[float, str]:
    """(scale, adapter id) for a model: the catalog's default scale unless given; 0 = off.
    Asking a model without an adapter for identity is refused, naming the option."""
    adapter = model.identity_adapter
    if adapter is None:
        if given:
            raise UsageError(
                f"--identity-scale {given}: {model.alias} has no identity adapter",
                "use --identity-scale 0, or a model with one (avatargen models show MODEL)",
            )
        return 0.0, ""
    scale = adapter.scale if given is None else given
    if not scale:
        return 0.0, ""
    return scale, "/".join(part for part in (adapter.repo, adapter.subfolder, adapter.weight_name) if part)


def require_face_finder(
    model: Model, endpoint: str | None, provider: str | None, local: bool = False, *, config
) -> None:
    """Identity is on: someone must find the faces. This install, with the pose extra's MediaPipe;
    else the server, when the backend is an endpoint or `avatargen serve` (their handler crops the
    photo it is sent, `ip_adapter_photo`); else MissingExtra (exit 11), before any photo is read.
    `local`: --tiny/--model-dir, the in-process backend, which is this install."""
    from avatargen.errors import AvatargenError
    from avatargen.faces import require_detector, shared_cache

    if shared_cache().finds_faces() or local:
        if not shared_cache().finds_faces():
            require_detector()
        return
    from avatargen.providers.select import choose_backend

    try:
        choice = choose_backend(model, endpoint=endpoint, provider=provider, config=config)
    except AvatargenError:
        return  # a bad --provider is said by the selection itself, once
    if choice.problem is not None or choice.backend == "hf-endpoint":
        return  # no backend: that is the blocker to say; an endpoint: its handler finds the face
    require_detector()


def hash_photo(path: Path) -> str:
    from avatargen.images import file_hash

    try:
        return file_hash(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None


def hash_photos(paths: list[Path]) -> dict[Path, str]:
    """Each photo's content hash. A big folder is read and hashed on a few threads (file reads
    and hashlib let go of the GIL: ~2x on 2 cores); the first unreadable photo, in order, raises."""
    if len(paths) < 16:
        return {path: hash_photo(path) for path in paths}
    import os
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        return dict(zip(paths, pool.map(hash_photo, paths), strict=True))


def check_references(paths: list[Path], crop_faces: bool = True) -> tuple[Reference, ...]:
    """Each --ref photo hashed and, for the identity adapter, its face cropped now (exit 5 naming
    the file when it has none)."""
    from avatargen.faces import shared_cache

    refs: list[Reference] = []
    for path in paths:
        if not path.is_file():
            raise InputError(f"--ref {path}: no such file", "name a photo of the same person")
        digest = hash_photo(path)
        if crop_faces:
            shared_cache().get(digest, path)
        if digest not in {d for d, _ in refs}:
            refs.append((digest, path))
    return tuple(refs)


@dataclass(frozen=True)
class Person:
    name: str  # the folder's name: the {stem} of the person's avatars
    subject: Path  # the first photo by name: the one whose avatars are made
    references: tuple[Path, ...]  # the others


def people(folder: Path) -> list[Person]:
    """`--person DIR`: each sub-folder is one person; its first photo (sorted by name) is the
    subject, every other photo a reference. Hidden and empty folders are left out."""
    from avatargen.inputs import collect_inputs

    if not folder.is_dir():
        raise InputError(f"--person {folder}: not a folder", "give a folder with one sub-folder per person")
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(collect_inputs([str(sub)]), key=lambda p: p.name)
        if photos:
            found.append(Person(sub.name, photos[0], tuple(photos[1:])))
    if not found:
        raise InputError(
            f"--person {folder}: no sub-folder holds a photo",
            "put each person's photos in a sub-folder of their own, e.g. people/alice/1.jpg",
        )
    return found
