"""Run a plan, end to end: reconcile a killed run, quote, confirm, record the batch, run its
jobs around the endpoint steps of a deployed endpoint, record the outcome, notify.

The one path of `avatargen generate` (fresh plans), `avatargen retry` (jobs read back from
history) and, through the same BatchRunner, the service's workers."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from avatargen.app.backends import Backends
from avatargen.app.hooks import Hooks
from avatargen.app.planning import Plan
from avatargen.app.quote import Classified, DryRun, check_budget, classify, quote
from avatargen.batch import BatchRunner, Summary
from avatargen.catalog import Catalog
from avatargen.config import Config
from avatargen.errors import LimitError, OutputError
from avatargen.ledger import Ledger
from avatargen.plan import Job
from avatargen.run_notes import skip_notes


def run(
    plan: Plan,
    config: Config,
    catalog: Catalog,
    hooks: Hooks,
    ledger: Ledger | None = None,
    provider_factory=None,
):
    """The plan's Summary, or for a dry run its DryRun (quote and jobs). The ledger is opened
    here unless one is given (retry planned from it). `provider_factory`: builds each model's
    provider instead of the backend chosen for it (e.g. providers.fake.FakeBackend.factory)."""
    from avatargen.ledger import open_ledger

    session = _endpoint_session(plan, config, hooks)
    with contextlib.ExitStack() as stack:
        ledger = ledger or stack.enter_context(open_ledger())
        deployed = stack.enter_context(session)
        factory = provider_factory or _provider_factory(plan, config, deployed, hooks)
        return execute(plan, config, catalog, hooks, ledger, factory)


def execute(plan: Plan, config: Config, catalog: Catalog, hooks: Hooks, ledger: Ledger, factory=None):
    from avatargen.images import output_has_key

    # 1. A killed run's reservations settled or refunded, its temp files removed.
    settled, refunded = ledger.reconcile(output_has_key)
    if settled or refunded:
        hooks.say(f"reconciled a killed run: {settled} reservation(s) settled, {refunded} refunded")
    for folder in {j.output_path.parent for j in plan.jobs}:
        remove_stale_temps(folder)
    # 2. The quote: what is done already, what runs, what it costs.
    groups = classify(ledger, plan.jobs, plan.settings.overwrite, plan.settings.regenerate)
    for line in skip_notes(groups, plan.settings):
        hooks.say(line)
    priced = quote(catalog, groups, ledger.balance())
    if plan.dry_run:
        return DryRun(priced, [j.record() for j in groups.to_run])
    # 3. Refused before anything is recorded: budget and daily limit; then -o naming a file,
    #    nothing listening at the server (exit 8), unwritable folders, a no to the question.
    _check_can_run(plan, catalog, ledger, groups, priced.credits)
    backends = Backends(plan.settings, config, factory)
    runner = BatchRunner(ledger, catalog, plan.poses, plan.settings, emit=hooks.emit, backends=backends)
    try:
        _preflight(plan, catalog, hooks, groups, runner)
        if hooks.confirm and len(groups.to_run) > config.confirm_above and not plan.options.yes:
            hooks.confirm(len(groups.to_run), priced.credits)
        # 4. The batch, recorded and run.
        summary = _record_and_run(plan, hooks, ledger, groups, runner)
    finally:
        backends.close()  # the local backend stops its generation thread here
        runner.close()
    # 5. The outcome recorded, and told.
    ledger.finish_batch(
        summary.batch_id, summary.stopped or ("partial" if summary.failed else "done"), summary.to_dict()
    )
    _notify(summary, plan.options.notify_url, plan.options.on_complete)
    return summary


def _check_can_run(plan: Plan, catalog: Catalog, ledger: Ledger, groups: Classified, cost: int) -> None:
    check_budget(catalog, groups.to_run, cost, ledger.balance(), plan.options.max_credits)
    limit = plan.settings.daily_limit
    if limit is not None and groups.to_run and ledger.requests_today() >= limit:
        raise LimitError(
            f"daily request limit reached: {ledger.requests_today()} of {limit} (limits.daily_requests)",
            "resume tomorrow with the same command, or raise it: avatargen config set limits.daily_requests N",
        )


def _preflight(plan: Plan, catalog: Catalog, hooks: Hooks, groups: Classified, runner: BatchRunner) -> None:
    for folder in sorted({j.output_path.parent for j in groups.to_run}):
        refuse_file_as_folder(folder)  # -o file.txt: said first, whatever the server
    for model_key in sorted({j.model for j in groups.to_run}):
        runner.preflight(catalog.by_key[model_key], hooks.say)
    if groups.to_run or groups.copies:
        check_writable([j.output_path for j in groups.to_run] + [j.output_path for j, _ in groups.copies])


def _record_and_run(plan: Plan, hooks: Hooks, ledger: Ledger, groups: Classified, runner: BatchRunner):
    batch_id = plan.batch_id or new_batch_id()
    argv = stored_argv(list(plan.options.argv))
    ledger.start_batch(batch_id, argv, os.getcwd(), str(plan.output_dir), plan.settings.remembered())
    try:
        _record_plan(ledger, groups, batch_id)
        copied = _report_skips_and_copies(ledger, groups, batch_id, hooks)
        if groups.to_run:
            summary = runner.run(batch_id, groups.to_run, plan.output_dir)
        else:
            summary = Summary(batch_id, 0, output_dir=str(plan.output_dir))
    except BaseException:
        # Stopped before the runner could say how (a signal, an unwritable ledger): the batch is
        # not left 'running'.
        with contextlib.suppress(Exception):
            ledger.finish_batch(batch_id, "interrupted", {})
        raise
    skipped = len(groups.already_done) + len(groups.exists) + len(groups.busy)
    summary.skipped += skipped
    summary.done += len(copied)
    summary.copied = len(copied)
    summary.total += skipped + len(copied)
    return summary


EXISTS = "output exists (pass --overwrite to replace it)"


def _record_plan(ledger: Ledger, groups: Classified, batch_id: str) -> None:
    planned = groups.to_run + groups.already_done + groups.exists + [j for j, _ in groups.copies]
    ledger.enqueue_many([job.record() for job in planned], batch_id)  # one commit for the plan
    for key in groups.regenerate:
        ledger.requeue_done(key)
    for job in groups.exists:
        ledger.mark_skipped(job.job_key, EXISTS)


def _report_skips_and_copies(ledger: Ledger, groups: Classified, batch_id: str, hooks: Hooks) -> list[Job]:
    def report(job: Job, status: str, **fields: Any) -> None:
        if hooks.emit:
            hooks.emit(job.result_line(status=status, credits=0, **fields))

    for job in groups.already_done:
        report(job, "skipped", reason="already done")
    for job in groups.exists:
        report(job, "skipped", reason=EXISTS)
    for job in groups.busy:
        report(job, "skipped", reason="running in another avatargen process")
    copied = copy_outputs(ledger, groups.copies, batch_id)
    for job, source in groups.copies:
        report(job, "done", copied_from=str(source), attempts=0)
    return copied


# ------------------------------------------------------------ a deployed endpoint's steps
def _endpoint_session(plan: Plan, config: Config, hooks: Hooks):
    """The deployed endpoint's before/after steps (deploy/batch_hooks.py); nothing for a dry run
    or a plan with nothing to run."""
    from avatargen.deploy.batch_hooks import check_after, running, session_for

    options = plan.options
    after = check_after(options.endpoint_after, "--endpoint-after") if options.endpoint_after else None
    after = after or check_after(config.endpoint_after, "config endpoint_after")
    if plan.dry_run or plan.model is None:
        return contextlib.nullcontext()
    session = session_for(
        plan.model,
        plan.settings.endpoint,
        config=config,
        after=after,
        resume=options.resume_endpoint,
        token=options.token,
        say=hooks.say,
    )
    return running(session)


def _provider_factory(plan: Plan, config: Config, deployed, hooks: Hooks):
    """The factory that follows a deployed endpoint's replicas and spreads the jobs over config
    endpoints.<key>'s URLs; None: the plain provider (Backends passes --hf-provider to either)."""
    from avatargen.deploy.batch_hooks import scaling

    factory = None
    if deployed is not None and plan.model is not None:
        factory = scaling(
            deployed,
            plan.model,
            plan.settings,
            plan.concurrency,
            config.concurrency is not None,
            hooks.say,
            config,
        )
    return factory


# ------------------------------------------------------------ files and records
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


def refuse_file_as_folder(folder: Path) -> None:
    """-o naming a file (or a folder under one): say that, not "cannot be written (File exists)"."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                raise OutputError(  # exit 74 as any output folder that cannot be written
                    f"-o {folder}: the output folder cannot be written: {place} is a file, not a folder",
                    "give a folder with -o (it is created if missing); nothing was spent",
                )
            return


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
