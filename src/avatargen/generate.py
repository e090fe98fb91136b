"""The main job, end to end: classify planned jobs against the ledger (resume), quote,
confirm, run, record the batch, notify, and turn the outcome into an exit code.

Used by `avatargen generate` (fresh plans) and `avatargen retry` (jobs read back from history).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avatargen.batch import BatchRunner, RunSettings, Summary
from avatargen.catalog import Catalog
from avatargen.errors import CreditsError, Interrupted, LimitError, UsageError
from avatargen.ledger import Ledger
from avatargen.plan import Job

DEFAULT_CONFIRM_ABOVE = 100


@dataclass
class Classified:
    to_run: list[Job]
    already_done: list[Job]
    exists: list[Job]  # output file there, not ours, and no --overwrite
    busy: list[Job]  # another live process holds the job right now


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


def classify(ledger: Ledger, jobs: list[Job], overwrite: bool) -> Classified:
    from avatargen.images import output_has_key

    out = Classified([], [], [], [])
    seen: set[str] = set()
    for job in jobs:
        if job.job_key in seen:
            continue  # the same photo content twice: one job
        seen.add(job.job_key)
        row = ledger.job(job.job_key)
        exists = job.output_path.exists()
        if row and row["status"] == "done" and (exists or Path(row["output_path"]).exists()):
            out.already_done.append(job)
        elif row and row["status"] == "running" and ledger.held_elsewhere(job.job_key):
            out.busy.append(job)
        elif exists and output_has_key(str(job.output_path), job.job_key):
            out.already_done.append(job)
        elif exists and not overwrite:
            out.exists.append(job)
        else:
            out.to_run.append(job)
    return out


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
) -> Summary | dict[str, Any]:
    """Run the jobs; returns the Summary, or for --dry-run the plan and quote."""
    from avatargen.images import output_has_key

    settled, refunded = ledger.reconcile(output_has_key)
    if settled or refunded:
        say(f"reconciled a killed run: {settled} reservation(s) settled, {refunded} refunded")
    for folder in {j.output_path.parent for j in jobs}:
        remove_stale_temps(folder)
    groups = classify(ledger, jobs, settings.overwrite)
    cost = sum(catalog.by_key[j.model].credit_cost for j in groups.to_run)
    balance = ledger.balance()
    quote = {
        "images": len(groups.to_run),
        "credits": cost,
        "balance": balance,
        "already_done": len(groups.already_done),
        "exists": len(groups.exists),
        "busy": len(groups.busy),
    }
    if dry_run:
        return {"quote": quote, "jobs": [j.record() for j in groups.to_run]}
    if max_credits is not None and cost > max_credits:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(groups.to_run)} images, over --max-credits {max_credits}",
            "raise --max-credits, or run fewer photos or a cheaper model (--quality sd)",
        )
    if cost > balance:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(groups.to_run)} images, you have {balance}",
            "add credits with `avatargen credits add N`, or run fewer photos or a cheaper model",
        )
    if settings.daily_limit is not None and groups.to_run and ledger.requests_today() >= settings.daily_limit:
        raise LimitError(
            f"daily request limit reached: {ledger.requests_today()} of {settings.daily_limit} "
            "(limits.daily_requests)",
            "resume tomorrow with the same command, or raise it: avatargen config set limits.daily_requests N",
        )
    confirm(len(groups.to_run), cost, yes, confirm_above)

    batch_id = new_batch_id()
    ledger.start_batch(batch_id, argv, os.getcwd(), str(output_dir))
    for job in groups.to_run + groups.already_done + groups.exists:
        ledger.enqueue(job.record(), batch_id)
    for job in groups.exists:
        ledger.mark_skipped(job.job_key, "output exists (pass --overwrite to replace it)")

    def report_skip(job: Job, why: str) -> None:
        if emit:
            emit(job.result_line(status="skipped", reason=why, credits=0))

    for job in groups.already_done:
        report_skip(job, "already done")
    for job in groups.exists:
        report_skip(job, "output exists (pass --overwrite to replace it)")
    for job in groups.busy:
        report_skip(job, "running in another avatargen process")

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
    summary.skipped = len(groups.already_done) + len(groups.exists) + len(groups.busy)
    summary.total += summary.skipped
    status = summary.stopped or ("partial" if summary.failed else "done")
    ledger.finish_batch(batch_id, status, summary.to_dict())
    _notify(summary, notify_url, on_complete)
    return summary


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
    """The exit code of a finished batch, raising for the stops that have their own code."""
    if summary.stopped == "interrupted":
        raise Interrupted(
            f"interrupted: {summary.done} done, {summary.left_queued} left; in-flight credits were refunded",
            f"resume with: {resume_hint}",
        )
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
    return 1 if summary.failed else 0


def resume_command(batch_id: str) -> str:
    return shlex.join(["avatargen", "retry", batch_id])
