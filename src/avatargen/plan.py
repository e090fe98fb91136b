"""Planning a batch: one Job per photo x variant, with its seed, job key and output path.

The job key is a hash of everything that decides the image (photo content, pose, model, weights,
parameters, seed), so running the same command again finds the same jobs: that is resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avatargen.errors import UsageError

DEFAULT_TEMPLATE = "{stem}-{pose}-{model}-{seed}.png"
TEMPLATE_FIELDS = ("stem", "pose", "model", "seed", "variant", "hash", "weights")


@dataclass(frozen=True)
class Params:
    """Everything a job sends besides the photo and the pose image."""

    pose_spec: str
    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    controlnet_conditioning_scale: float
    width: int
    height: int
    strength: float | None  # None: the photo is not sent, only the pose guides
    # Identity (IP-Adapter on a face crop): 0 = off. The adapter as "repo/subfolder/weight" and the
    # content hashes of the reference photos (--ref, --person) besides the photo itself.
    identity_scale: float = 0.0
    identity_adapter: str = ""
    references: tuple[str, ...] = ()
    # Which weights make the image (weights.py): "" the catalog's, else tiny or a --model-dir.
    weights: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if not self.weights:
            data.pop("weights")  # the catalog's weights: the job key is what it was before
        if not self.identity_scale:
            # Identity off: the dict (so the job key) is what it was before identity existed.
            for name in ("identity_scale", "identity_adapter", "references"):
                data.pop(name)
        else:
            data["references"] = list(self.references)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        return cls(**{**data, "references": tuple(data.get("references", ()))})


@dataclass
class Job:
    job_key: str
    input_path: Path
    input_hash: str
    pose: str  # the pose's short name
    model: str  # model key asked for (a fallback may run instead)
    params: Params
    seed: int
    output_path: Path
    status: str = "queued"
    notes: list[str] = field(default_factory=list)
    # The reference photos behind params.references, as (content hash, path): used to crop their
    # faces while running, never recorded (history and metadata keep only the hashes).
    reference_files: tuple[tuple[str, Path], ...] = ()

    def result_line(self, **fields: Any) -> dict[str, Any]:
        """The job as one `--json` result line, with its outcome fields."""
        return {
            "input": str(self.input_path),
            "output": str(self.output_path),
            "pose": self.pose,
            "model": self.model,
            "seed": self.seed,
            "job_key": self.job_key,
            **fields,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """A job read back from the ledger's history (the inverse of `record`)."""
        return cls(
            row["job_key"],
            Path(row["input_path"]),
            row["input_hash"],
            row["pose"],
            row["model"],
            Params.from_dict(json.loads(row["params"])),
            row["seed"],
            Path(row["output_path"]),
        )

    def record(self) -> dict[str, Any]:
        """What the ledger keeps: a pose URL's credentials (`user:pass@`, `?token=`, presigned
        signatures) masked, as endpoint URLs are; the job key, computed before, is unchanged."""
        from avatargen.redact import redact_url

        params = self.params.to_dict()
        if isinstance(params.get("pose_spec"), str):
            params["pose_spec"] = redact_url(params["pose_spec"])
        return {
            "job_key": self.job_key,
            "input_path": str(self.input_path),
            "input_hash": self.input_hash,
            "pose": self.pose,
            "model": self.model,
            "params": params,
            "seed": self.seed,
            "output_path": str(self.output_path),
        }


def check_template(template: str) -> None:
    import string

    try:
        # '{}' parses as the name '' (refused below); literal text gives None.
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UsageError(f"bad output name template '{template}': {exc}") from None
    bad = next((c for c in template if ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029"), None)
    if bad is not None:
        raise UsageError(
            f"bad output name template {template!r}: it holds the control character {bad!r}",
            "use printable characters only",
        )
    conversions = {conv for _, name, _, conv in string.Formatter().parse(template) if conv}
    if conversions:
        raise UsageError(
            f"bad output name template '{template}': conversions like "
            f"{', '.join('!' + c for c in sorted(conversions))} are not allowed",
            "use plain fields, e.g. {stem}-{seed}.png (a format spec such as {seed:08d} is fine)",
        )
    unknown = names - set(TEMPLATE_FIELDS)
    if unknown:
        raise UsageError(
            f"bad output name template '{template}': unknown field(s) {', '.join('{' + n + '}' for n in sorted(unknown))}",
            f"use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}",
        )
    if not template.lower().endswith(".png"):
        raise UsageError(f"output name template '{template}' must end in .png")
    sample = {"stem": "photo", "pose": "wave", "model": "sd15", "seed": 1, "variant": 0, "hash": "0123abcd"}
    sample["weights"] = "tiny"
    try:
        template.format(**sample)  # a bad format spec ('{seed:q}') fails here, not mid-plan
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise UsageError(f"bad output name template '{template}': {exc}") from None


def derive_seed(input_hash: str, variant: int, base: int | None) -> int:
    """--seed S gives S, S+1, ...; without it the seed comes from the photo, so a re-run matches."""
    if base is not None:
        return (base + variant) % 2**32
    return int(hashlib.sha256(f"{input_hash}:{variant}".encode()).hexdigest()[:8], 16)


def job_key(input_hash: str, pose_identity: str, model: str, params: Params, seed: int) -> str:
    fields: dict[str, Any] = {
        "input": input_hash,
        "pose": pose_identity,
        "model": model,
        "params": params.to_dict(),
        "seed": seed,
    }
    if params.identity_scale:
        from avatargen.faces import crop_version

        fields["face_crop"] = crop_version()  # another crop (or cropper) is another image
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _safe(text: str) -> str:
    """A field value fit for a file name: no separator, no `..`, no leading dot."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    safe = re.sub(r"\.{2,}", "_", safe)
    return "_" + safe[1:] if safe.startswith(".") else safe or "_"


NAME_MAX_BYTES = 255  # a file name's limit on every common file system (ext4, APFS, NTFS in UTF-16 units)


def check_name_length(path: Path, template: str) -> None:
    """A file name over the file system's limit, refused while planning (exit 74, as writing it
    would be), before the ledger or the disk is asked about it."""
    size = len(os.fsencode(path.name))
    if size > NAME_MAX_BYTES:
        from avatargen.errors import OutputError

        shown = template if len(template) <= 60 else template[:59] + "…"
        raise OutputError(
            f"{path.parent}: File name too long: --name '{shown}' makes a name of {size} bytes, "
            f"over the {NAME_MAX_BYTES} a file system allows",
            "use a shorter --name template (or shorter photo file names)",
        )


def check_inside(path: Path, folder: Path, template: str, root: str | None = None) -> None:
    """Every output lies inside the output folder, links resolved: a template like
    `../x.png` or `/abs/x.png` is refused before anything is spent. `root`: the folder's
    realpath, when the caller resolved it once for many paths."""
    root = root or os.path.realpath(folder)
    target = os.path.realpath(path)
    if os.path.commonpath([root, target]) != root or target == root:
        raise UsageError(
            f"--name '{template}' would write {path}, outside the output folder {folder}",
            "use a name relative to -o without '..' or a leading '/', e.g. {stem}-{seed}.png",
        )


def plan_jobs(
    inputs: list[Path],
    *,
    hashes: dict[Path, str],
    pose_name: str,
    pose_identity: str,
    model_key: str,
    model_alias: str,
    params: Params,
    num: int,
    seed: int | None,
    output_dir: Path,
    template: str = DEFAULT_TEMPLATE,
    references: dict[Path, tuple[tuple[str, Path], ...]] | None = None,
    stems: dict[Path, str] | None = None,
) -> list[Job]:
    """Jobs for one pose. `references`: each photo's reference photos as (hash, path), recorded in
    its params by hash; `stems`: a name for `{stem}` other than the photo's (a --person folder)."""
    from avatargen.weights import name_tag

    jobs: list[Job] = []
    root = os.path.realpath(output_dir)
    tag = name_tag(params.weights)
    template = with_weights_field(template, tag)
    for path in inputs:
        digest = hashes[path]
        refs = (references or {}).get(path, ())
        job_params = replace(params, references=tuple(h for h, _ in refs)) if refs else params
        for variant in range(num):
            job_seed = derive_seed(digest, variant, seed)
            name = template.format(
                stem=_safe((stems or {}).get(path, path.stem)),
                pose=_safe(pose_name),
                model=_safe(model_alias),
                seed=job_seed,
                variant=variant,
                hash=digest[:8],
                weights=tag,
            )
            key = job_key(digest, pose_identity, model_key, job_params, job_seed)
            out = output_dir / name
            check_inside(out, output_dir, template, root)
            check_name_length(out, template)
            job = Job(key, path, digest, pose_name, model_key, job_params, job_seed, out)
            job.reference_files = refs
            jobs.append(job)
    _disambiguate(jobs)
    return jobs


def with_weights_field(template: str, tag: str) -> str:
    """A template for jobs of other weights than the catalog's gets `-{weights}` before `.png`
    when it lacks {weights}: a --tiny trial never takes the real avatar's file name."""
    if not tag or "{weights" in template:
        return template
    return template[: -len(".png")] + "-{weights}" + template[-len(".png") :]


def rekeyed(job: Job, params: Params) -> Job:
    """The job with other params (another --steps, other weights, as `retry` may run it): a new
    job key, and an output name tagged with its weights instead of the old ones."""
    from avatargen.weights import name_tag

    spec = params.pose_spec
    pose_file = Path(spec)
    # As generate plans it: a pose file's content is part of its identity.
    if pose_file.is_file():
        from avatargen.images import file_hash

        identity = f"{spec}:{file_hash(pose_file)}"
    else:
        identity = spec
    key = job_key(job.input_hash, identity, job.model, params, job.seed)
    out = job.output_path
    stem = out.stem
    old, new = name_tag(job.params.weights), name_tag(params.weights)
    if old and stem.endswith(f"-{old}"):
        stem = stem[: -len(old) - 1]
    if new:
        stem = f"{stem}-{new}"
    moved = Job(key, job.input_path, job.input_hash, job.pose, job.model, params, job.seed,
                out.with_name(stem + out.suffix))  # fmt: skip
    moved.reference_files = job.reference_files
    return moved


def pose_specs(values: list[str]) -> list[str]:
    """`--pose` values as a list of specs: the option repeated, comma-separated names, `all`
    for every template; a URL or an existing file is kept whole (it may hold a comma)."""
    specs: list[str] = []
    for value in values:
        if value.lower().startswith(("http://", "https://")) or Path(value).is_file():
            parts = [value]
        else:
            parts = [part.strip() for part in value.split(",")]
        for part in parts:
            if part.lower() == "all":
                from avatargen.poses.templates import template_names

                specs += template_names()
            else:
                specs.append(part)  # an empty one is refused by resolve_pose, naming --pose
    return list(dict.fromkeys(specs))


@dataclass(frozen=True)
class PlannedPose:
    spec: str  # as given to --pose (the key of the batch's pose sources)
    name: str  # its short name, for {pose}
    identity: str  # what of it decides the image (a file's content hash included)


def plan_pose_set(poses: list[PlannedPose], *, params: Params, template: str, **common: Any) -> list[Job]:
    """One job per photo x pose x variant: an avatar set. With several poses the name template
    gets `-{pose}` before `.png` when it lacks {pose}, so the set's files cannot clash."""
    if len(poses) > 1 and "{pose" not in template:
        template = template[: -len(".png")] + "-{pose}" + template[-len(".png") :]
    jobs: list[Job] = []
    for pose in poses:
        jobs += plan_jobs(
            pose_name=pose.name,
            pose_identity=pose.identity,
            params=replace(params, pose_spec=pose.spec),
            template=template,
            **common,
        )
    # Photo-major: a photo's set runs together, so its face crop is made once and stays cached.
    order = {path: i for i, path in enumerate(common["inputs"])}
    jobs.sort(key=lambda job: order[job.input_path])
    _disambiguate(jobs)
    return jobs


def _disambiguate(jobs: list[Job]) -> None:
    """Two photos with the same name in different folders must not share an output file."""
    by_path: dict[Path, list[Job]] = {}
    for job in jobs:
        by_path.setdefault(job.output_path, []).append(job)
    for clashing in by_path.values():
        if len({j.job_key for j in clashing}) > 1:
            photos = {j.input_hash for j in clashing}
            for job in clashing:
                # Different photos: tell them apart by content; variants of one photo (a template
                # without {seed} or {variant}) by seed.
                tags = [job.input_hash[:8]] if len(photos) > 1 else []
                if sum(1 for j in clashing if j.input_hash == job.input_hash) > 1:
                    tags.append(str(job.seed))
                out = job.output_path
                job.output_path = out.with_name(f"{out.stem}-{'-'.join(tags)}{out.suffix}")
