"""A finished batch's outcome as an exit code (or the error that has its own code), and the
command that resumes it."""

from __future__ import annotations

import copy
import shlex

from avatargen.batch import Summary
from avatargen.errors import CreditsError, LimitError, interrupted_by


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
