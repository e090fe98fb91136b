"""The main job, end to end: classify planned jobs against the ledger (resume), quote,
confirm, run, record the batch, notify, and turn the outcome into an exit code.

Used by `avatargen generate` (fresh plans) and `avatargen retry` (jobs read back from history).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatargen.batch import BatchRunner, RunSettings, Summary
from avatargen.catalog import Catalog
from avatargen.errors import CreditsError, LimitError, OutputError, UsageError, interrupted_by
from avatargen.ledger import Ledger
from avatargen.plan import Job

DEFAULT_CONFIRM_ABOVE = 100


@dataclass
class Classified:
    to_run: list[Job]
    already_done: list[Job]
    exists: list[Job]  # output file there, not ours, and no --overwrite
    busy: list[Job]  # another live process holds the job right now
    # done before, into another folder: the image is copied here at no charge (job, from path)
    copies: list[tuple[Job, Path]] = field(default_factory=list)
    # done before, but its image is gone from everywhere: made again (and charged again)
    regenerate: set[str] = field(default_factory=set)


def new_batch_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def remove_stale_temps(folder: Path) -> int:
    """Temporary outputs left by a killed run (avatargen's own temp names, of a dead PID) are
    removed; any other file, whatever its name, is the user's and stays."""
    from avatargen.images import TEMP_PREFIX, temp_output_pid
    from avatargen.ledger import pid_alive

    removed = 0
    if not folder.is_dir():
        return 0
    for tmp in folder.glob(f"{TEMP_PREFIX}*"):
        pid = temp_output_pid(tmp.name)
        if pid is not None and not pid_alive(pid) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def classify(ledger: Ledger, jobs: list[Job], overwrite: bool, regenerate: bool = False) -> Classified:
    """`regenerate`: a job the ledger has done is made again (charged), its own file replaced."""
    from avatargen.images import output_has_key

    out = Classified([], [], [], [])
    seen: set[str] = set()
    for job in jobs:
        if job.job_key in seen:
            continue  # the same photo content twice: one job
        seen.add(job.job_key)
        row = ledger.job(job.job_key)
        if regenerate and row and row["status"] == "done":
            row = {**row, "status": "regenerate"}  # neither done here nor copied: made again
        exists = job.output_path.exists()
        earlier = _earlier_output(ledger, job) if row and row["status"] == "done" and not exists else None
        if row and row["status"] == "done" and exists and output_has_key(str(job.output_path), job.job_key):
            out.already_done.append(job)
        elif earlier is not None:
            out.copies.append((job, earlier))
        elif row and row["status"] == "running" and ledger.held_elsewhere(job.job_key):
            out.busy.append(job)
        elif exists and output_has_key(str(job.output_path), job.job_key) and not regenerate:
            out.already_done.append(job)
        elif (
            exists
            and not overwrite
            and not (regenerate and output_has_key(str(job.output_path), job.job_key))
        ):
            out.exists.append(job)
        else:
            out.to_run.append(job)
            if row and row["status"] in ("done", "regenerate"):
                out.regenerate.add(job.job_key)
    return out


def _earlier_output(ledger: Ledger, job: Job) -> Path | None:
    """Where a finished job's image still is (with its job key), when it is not at the new path."""
    from avatargen.images import output_has_key

    for place in ledger.output_paths(job.job_key):
        if place != str(job.output_path) and output_has_key(place, job.job_key):
            return Path(place)
    return None


def copy_outputs(ledger: Ledger, copies: list[tuple[Job, Path]], batch_id: str) -> list[Job]:
    """A finished image re-run into another -o is copied there, atomically, at no charge."""
    import shutil

    from avatargen.images import temp_output_path

    copied = []
    for job, source in copies:
        tmp = temp_output_path(job.output_path)
        try:
            job.output_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tmp)
            os.replace(tmp, job.output_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(
                f"{job.output_path.parent}: cannot copy {source.name} there ({exc.strerror or exc})",
                "free disk space or choose a writable folder with -o",
            ) from None
        ledger.record_copy(job.job_key, str(job.output_path), str(source), batch_id)
        copied.append(job)
    return copied


def check_writable(outputs: list[Path]) -> None:
    """Create each output folder and write and remove a probe file in it, before anything is
    sent: a read-only folder, a full disk or a name too long is found now, not after N calls.
    The probe has the temporary name of the folder's longest output, so it fails exactly as
    that write would."""
    from avatargen.images import temp_output_path

    longest: dict[Path, Path] = {}
    for path in outputs:
        if len(path.name) > len(longest.get(path.parent, Path()).name):
            longest[path.parent] = path
    for folder, path in sorted(longest.items()):
        probe = temp_output_path(path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as fh:
                fh.write(b"avatargen write check")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(
                f"{folder}: the output folder cannot be written ({exc.strerror or exc}), e.g. {path.name}",
                "choose a writable folder with -o (or a shorter --name), or free disk space; nothing was spent",
            ) from None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)


def confirm(count: int, credits: int, yes: bool, confirm_above: int) -> None:
    if yes or count <= confirm_above:
        return
    question = f"Generate {count} images for {credits} credits?"
    if not sys.stdin.isatty():
        raise UsageError(
            f"{question} No terminal to ask on", "pass --yes to confirm a large batch in a script"
        )
    import typer

    if not typer.confirm(question, default=False, err=True):
        raise UsageError("cancelled: nothing was generated")


def execute(
    *,
    ledger: Ledger,
    catalog: Catalog,
    jobs: list[Job],
    poses: dict[str, Any],
    settings: RunSettings,
    output_dir: Path,
    argv: list[str],
    yes: bool = False,
    dry_run: bool = False,
    max_credits: int | None = None,
    confirm_above: int = DEFAULT_CONFIRM_ABOVE,
    emit: Callable[[dict[str, Any]], None] | None = None,
    say: Callable[[str], None] = lambda _m: None,
    notify_url: str | None = None,
    on_complete: str | None = None,
    provider_factory: Callable[..., Any] | None = None,
    batch_id: str | None = None,
) -> Summary | dict[str, Any]:
    """Run the jobs; returns the Summary, or for --dry-run the plan and quote. `batch_id`: the
    batch being retried (its id is kept), else a new one is minted."""
    from avatargen.images import output_has_key

    settled, refunded = ledger.reconcile(output_has_key)
    if settled or refunded:
        say(f"reconciled a killed run: {settled} reservation(s) settled, {refunded} refunded")
    for folder in {j.output_path.parent for j in jobs}:
        remove_stale_temps(folder)
    groups = classify(ledger, jobs, settings.overwrite, settings.regenerate)
    from avatargen.run_notes import skip_notes

    for line in skip_notes(groups, settings):
        say(line)
    cost = sum(catalog.by_key[j.model].credit_cost for j in groups.to_run)
    balance = ledger.balance()
    quote = {
        "images": len(groups.to_run),
        "credits": cost,
        "balance": balance,
        "already_done": len(groups.already_done),
        "copies": len(groups.copies),
        "exists": len(groups.exists),
        "busy": len(groups.busy),
    }
    if dry_run:
        return {"quote": quote, "jobs": [j.record() for j in groups.to_run]}
    _check_budget(catalog, groups.to_run, cost, balance, max_credits)
    if settings.daily_limit is not None and groups.to_run and ledger.requests_today() >= settings.daily_limit:
        raise LimitError(
            f"daily request limit reached: {ledger.requests_today()} of {settings.daily_limit} "
            "(limits.daily_requests)",
            "resume tomorrow with the same command, or raise it: avatargen config set limits.daily_requests N",
        )
    if groups.to_run or groups.copies:
        check_writable([j.output_path for j in groups.to_run] + [j.output_path for j, _ in groups.copies])
    confirm(len(groups.to_run), cost, yes, confirm_above)

    batch_id = batch_id or new_batch_id()
    ledger.start_batch(batch_id, stored_argv(argv), os.getcwd(), str(output_dir), settings.remembered())
    try:
        summary = _run(
            ledger, catalog, poses, settings, groups, batch_id, output_dir, emit, say, provider_factory
        )
    except BaseException:
        # Stopped before the runner could say how (a signal during pre-flight, an unwritable
        # ledger): the batch is not left 'running'.
        with contextlib.suppress(Exception):
            ledger.finish_batch(batch_id, "interrupted", {})
        raise
    status = summary.stopped or ("partial" if summary.failed else "done")
    ledger.finish_batch(batch_id, status, summary.to_dict())
    _notify(summary, notify_url, on_complete)
    return summary


def _run(
    ledger, catalog, poses, settings, groups: Classified, batch_id, output_dir, emit, say, provider_factory
):
    planned = groups.to_run + groups.already_done + groups.exists + [j for j, _ in groups.copies]
    ledger.enqueue_many([job.record() for job in planned], batch_id)  # one commit for the plan
    for key in groups.regenerate:
        ledger.requeue_done(key)
    for job in groups.exists:
        ledger.mark_skipped(job.job_key, "output exists (pass --overwrite to replace it)")

    def report(job: Job, status: str, **fields: Any) -> None:
        if emit:
            emit(job.result_line(status=status, credits=0, **fields))

    for job in groups.already_done:
        report(job, "skipped", reason="already done")
    for job in groups.exists:
        report(job, "skipped", reason="output exists (pass --overwrite to replace it)")
    for job in groups.busy:
        report(job, "skipped", reason="running in another avatargen process")
    copied = copy_outputs(ledger, groups.copies, batch_id)
    for job, source in groups.copies:
        report(job, "done", copied_from=str(source), attempts=0)

    runner = BatchRunner(ledger, catalog, poses, settings, emit=emit, provider_factory=provider_factory)
    try:
        if groups.to_run:
            for model_key in sorted({j.model for j in groups.to_run}):
                runner.preflight(catalog.by_key[model_key], say)
            summary = runner.run(batch_id, groups.to_run, output_dir)
        else:
            summary = Summary(batch_id, 0, output_dir=str(output_dir))
    finally:
        runner.close()
    skipped = len(groups.already_done) + len(groups.exists) + len(groups.busy)
    summary.skipped += skipped
    summary.done += len(copied)
    summary.copied = len(copied)
    summary.total += skipped + len(copied)
    return summary


def _check_budget(
    catalog: Catalog, jobs: list[Job], cost: int, balance: int, max_credits: int | None
) -> None:
    cheaper = _cheaper_hint(catalog, jobs)
    if max_credits is not None and cost > max_credits:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(jobs)} images, over --max-credits {max_credits}",
            f"raise --max-credits, or run fewer photos{cheaper}",
        )
    if cost > balance:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(jobs)} images, you have {balance}",
            f"add credits with `avatargen credits add N`, or run fewer photos{cheaper}",
        )


def _cheaper_hint(catalog: Catalog, jobs: list[Job]) -> str:
    """', or a cheaper model (--model X)' only when an enabled model costs less than every model
    the batch uses; nothing when it already runs the cheapest."""
    if not jobs:
        return ""
    dearest = max(catalog.by_key[j.model].credit_cost for j in jobs)
    cheaper = sorted(
        (m for m in catalog.by_key.values() if m.enabled and m.credit_cost < dearest),
        key=lambda m: m.credit_cost,
    )
    return (
        f", or a cheaper model (--model {cheaper[0].alias}, {cheaper[0].credit_cost} credits)"
        if cheaper
        else ""
    )


def stored_argv(argv: list[str]) -> list[str]:
    """The command line as history keeps it: the value of --token dropped, credentials in URLs
    and every known secret masked."""
    from avatargen.redact import MASK, redact_text

    kept: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            kept.append(MASK)
            hide_next = False
        elif arg == "--token":
            kept.append(arg)
            hide_next = True
        elif arg.startswith("--token="):
            kept.append(f"--token={MASK}")
        else:
            kept.append(redact_text(arg))
    return kept


def _notify(summary: Summary, url: str | None, command: str | None) -> None:
    if not url and not command:
        return
    from avatargen import notify

    payload = {
        "batch_id": summary.batch_id,
        "total": summary.total,
        "done": summary.done,
        "failed": summary.failed,
        "skipped": summary.skipped,
        "left_queued": summary.left_queued,
        "credits_spent": summary.credits_spent,
        "failed_items": summary.failed_items,
        "duration_s": summary.duration_s,
        "output_dir": summary.output_dir,
        "stopped": summary.stopped,
    }
    if url:
        notify.post_summary(url, payload)
    if command:
        notify.run_on_complete(command, payload)


def raise_for_outcome(summary: Summary, resume_hint: str) -> int:
    """The exit code of a finished batch, raising for the stops that have their own code.

    Failed jobs: when nothing was done and every failure has the same exit code (one photo
    refused with 401, a whole batch unreachable), that code; otherwise 1 (partial)."""
    if summary.stopped == "interrupted":
        raise interrupted_by(
            summary.signal,
            f"interrupted: {summary.done} done, {summary.left_queued} left; in-flight credits were refunded",
            f"resume with: {resume_hint}",
        )
    if summary.stopped == "error" and summary.stop_error is not None:
        import copy

        error = copy.copy(summary.stop_error)
        error.message += f" — batch stopped: {summary.done} done, {summary.left_queued} left queued"
        error.hint = f"{error.hint}; then: {resume_hint}" if error.hint else f"then: {resume_hint}"
        raise error
    if summary.stopped == "limit":
        raise LimitError(
            f"stopped at the daily request limit (limits.daily_requests): {summary.done} done, "
            f"{summary.left_queued} left queued",
            f"resume tomorrow with: {resume_hint}",
        )
    if summary.stopped == "credits":
        raise CreditsError(
            f"stopped: {summary.stop_message}; {summary.done} done, {summary.left_queued} left queued",
            f"add credits with `avatargen credits add N`, then: {resume_hint}",
        )
    return failure_exit_code(summary)


def failure_exit_code(summary: Summary) -> int:
    if not summary.failed:
        return 0
    codes = set(summary.failure_codes)
    if summary.done == 0 and len(codes) == 1:
        return codes.pop()
    return 1


def resume_command(batch_id: str) -> str:
    return shlex.join(["avatargen", "retry", batch_id])
