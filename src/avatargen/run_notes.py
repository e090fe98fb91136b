"""What a run decides without being asked, said in a word on stderr (the --json lines carry the
same as fields): photos merged because their bytes are identical, and why jobs are skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def merged_photos(inputs: list[Path], hashes: dict[Path, str]) -> list[str]:
    """One line per group of byte-identical photos: they make one job, not one each."""
    groups: dict[str, list[Path]] = {}
    for path in inputs:
        groups.setdefault(hashes[path], []).append(path)
    lines = []
    for paths in groups.values():
        if len(paths) > 1:
            names = ", ".join(str(p) for p in paths[1:])
            lines.append(
                f"{names} {'is' if len(paths) == 2 else 'are'} byte-identical to {paths[0]}: "
                "one avatar (and one charge) for them all, named after the first"
            )
    return lines


def skip_notes(groups: Any, settings: Any) -> list[str]:
    """Why jobs of a batch are not run, one line per reason (generate.Classified)."""
    lines = []
    done = groups.already_done
    if done:
        lines.append(
            f"skipped {len(done)} job(s) already done (same photo, pose, model, weights, settings and "
            f"seed), e.g. {done[0].output_path}; --regenerate makes them again (charged)"
        )
        if settings.overwrite:
            lines.append(
                "--overwrite replaces only output files some other job or program made; it never redoes "
                "a finished job: that is --regenerate"
            )
    if groups.exists:
        lines.append(
            f"skipped {len(groups.exists)} job(s): the output file exists and is not this job's image, "
            f"e.g. {groups.exists[0].output_path}; pass --overwrite to replace it, or choose another -o"
        )
    if groups.busy:
        lines.append(f"skipped {len(groups.busy)} job(s) running in another avatargen process right now")
    if groups.copies:
        lines.append(
            f"{len(groups.copies)} job(s) were made before into another folder: copied here at no charge"
        )
    return lines


def failed_advice(summary: Any, resume: str) -> str:
    """The closing line of a batch with failures: `retry` for those a retry can help, the fix
    itself (the error's hint) for those that would fail again as they are (no face, not an image)."""
    items = summary.failed_items
    hopeless = [item for item in items if item.get("permanent")]
    hints = "; ".join(dict.fromkeys(item["hint"] for item in hopeless if item.get("hint")))
    if not hopeless:
        return f"{summary.failed} job(s) failed; re-run them with: {resume}"
    fix = f": {hints}" if hints else " (see each error above)"
    if len(hopeless) == len(items):
        return f"{summary.failed} job(s) failed and would fail again as they are{fix}"
    return (
        f"{summary.failed} job(s) failed; re-run them with: {resume} ({len(hopeless)} of them would fail "
        f"again as they are, and retry leaves them out{fix})"
    )
