"""`avatargen generate` and `avatargen retry`: options in, batch out (the work is in generate.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from avatargen import environment
from avatargen.app.request import DEFAULT_OUTPUT, DEFAULT_POSE
from avatargen.cli import context
from avatargen.cli.options import (
    AllowUpgradeOpt,
    EndpointOpt,
    Json,
    ModelOpt,
    NoFallbackOpt,
    OverwriteOpt,
    ProviderOpt,
    QualityOpt,
    RegenerateOpt,
    TierOpt,
    TokenOpt,
    WaitTimeoutOpt,
    YesOpt,
)

NOTIFY_FIX = "give the webhook's full URL, e.g. https://hooks.example.com/avatargen; nothing was spent"

ConcurrencyAutoOpt = Annotated[
    str | None,
    typer.Option(
        "--concurrency",
        "-c",
        metavar="N|auto",
        help="Parallel requests (default 4), or auto: follow the running replicas of an endpoint "
        "avatargen deployed (the default for one).",
    ),
]
EndpointAfterOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-after",
        help="When the batch ends (Ctrl-C too), an endpoint avatargen deployed is: keep, pause or "
        "scale-to-zero (default: config endpoint_after, else keep).",
    ),
]
ResumeEndpointOpt = Annotated[
    bool, typer.Option("--resume-endpoint", help="Resume the model's endpoint if it is paused.")
]
ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Local backend: load a saved diffusers pipeline from this folder."),
]
HfProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--hf-provider",
        help="hf-providers backend: the Inference Provider to use (e.g. fal-ai, replicate; default: the catalog's).",
    ),
]
TinyOpt = Annotated[
    bool,
    typer.Option(
        "--tiny",
        help="Local backend: a tiny random-weight model of the real architecture (images are noise).",
    ),
]


def _finish(summary, json_: bool) -> None:
    from avatargen.app.outcome import raise_for_outcome, resume_command
    from avatargen.output import info

    code = raise_for_outcome(summary, resume_command(summary.batch_id))
    if json_:
        info(
            f"batch {summary.batch_id}: {summary.done} done, {summary.failed} failed, {summary.skipped} skipped, "
            f"{summary.credits_spent} credits"
        )
    else:
        from avatargen.output import print_table

        rows = [
            [
                "done",
                str(summary.done) + (f" ({summary.copied} copied, no charge)" if summary.copied else ""),
            ],
            ["failed", str(summary.failed)],
            ["skipped", str(summary.skipped)],
            ["credits spent", str(summary.credits_spent)],
            ["seconds", str(summary.duration_s)],
            ["output folder", summary.output_dir],
        ]
        several = len({item.get("pose") for item in summary.failed_items}) > 1  # a pose set
        for item in summary.failed_items[:20]:
            rows.append(
                ["failed", _named_error(item["input"], item["error"], item.get("pose") if several else None)]
            )
        if len(summary.failed_items) > 20:
            rows.append(
                [
                    "failed",
                    f"... and {len(summary.failed_items) - 20} more (avatargen history --status failed)",
                ]
            )
        print_table(
            f"batch {summary.batch_id}", ["what", "value"], rows, detail=("value",), show_header=False
        )
    if code:
        from avatargen.output import warn
        from avatargen.run_notes import failed_advice

        warn(failed_advice(summary, resume_command(summary.batch_id)))
        raise typer.Exit(code)


def generate(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Photos, folders, globs, or - to read paths from stdin.")
    ] = None,
    pose: Annotated[
        list[str] | None,
        typer.Option(
            "--pose",
            "-p",
            help="Template name, pose .json/.png, URL, or 'auto'; several make a set: "
            "wave,sitting (or the option repeated), or 'all' templates. Default: portrait.",
        ),
    ] = None,
    model: ModelOpt = None,
    quality: QualityOpt = None,
    tier: TierOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the avatars.")] = DEFAULT_OUTPUT,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt (default: the model's).")] = None,
    negative_prompt: Annotated[str | None, typer.Option("--negative-prompt", help="Negative prompt.")] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            max=200,
            help="Inference steps (default: the model's: 30 for SD 1.5, 50 for SDXL; "
            "`avatargen models show MODEL` lists it).",
        ),
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            "--guidance",
            min=0.0,
            max=50.0,
            help="Guidance scale (default: the model's: 7.5 for the ControlNet models; "
            "`avatargen models show MODEL` lists it).",
        ),
    ] = None,
    control_scale: Annotated[
        float | None, typer.Option("--control-scale", min=0.0, max=2.0, help="ControlNet conditioning scale.")
    ] = None,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            min=0.0,
            max=1.0,
            help="img2img, off by default: also send the photo as init image; how far the avatar "
            "may move from it (0-1, e.g. 0.75). Identity keeps the face without it.",
        ),
    ] = None,
    identity_scale: Annotated[
        float | None,
        typer.Option(
            "--identity-scale",
            min=0.0,
            max=2.0,
            envvar=environment.IDENTITY_SCALE,
            help="How strongly the avatar takes the face of the photo (IP-Adapter on a face crop; "
            "default: the model's, 0.6; 0 = off, no face needed).",
        ),
    ] = None,
    ref: Annotated[
        list[Path] | None,
        typer.Option(
            "--ref", metavar="PHOTO", help="Another photo of the same person, for every job (repeatable)."
        ),
    ] = None,
    person: Annotated[
        Path | None,
        typer.Option(
            "--person",
            metavar="DIR",
            help="One sub-folder per person: its first photo (by name) is the subject, all are references.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="First seed (default: derived from each photo).")
    ] = None,
    num: Annotated[int, typer.Option("--num", "-n", min=1, max=100, help="Variants per photo.")] = 1,
    concurrency: ConcurrencyAutoOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan and quote only; nothing runs.")] = False,
    yes: YesOpt = False,
    max_credits: Annotated[
        int | None, typer.Option("--max-credits", min=0, help="Refuse a batch quoting more.")
    ] = None,
    overwrite: OverwriteOpt = False,
    regenerate: RegenerateOpt = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders.")] = False,
    endpoint: EndpointOpt = None,
    provider: ProviderOpt = None,
    token: TokenOpt = None,
    wait_timeout: WaitTimeoutOpt = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Output name template, e.g. {stem}-{seed}.png.")
    ] = None,
    no_fallback: NoFallbackOpt = False,
    allow_upgrade: AllowUpgradeOpt = False,
    notify_url: Annotated[
        str | None, typer.Option("--notify-url", help="POST a JSON summary here at the end.")
    ] = None,
    on_complete: Annotated[
        str | None, typer.Option("--on-complete", help="Run this command with the summary file.")
    ] = None,
    model_dir: ModelDirOpt = None,
    tiny: TinyOpt = False,
    hf_provider: HfProviderOpt = None,
    endpoint_after: EndpointAfterOpt = None,
    resume_endpoint: ResumeEndpointOpt = False,
    json_: Json = False,
) -> None:
    """Turn photos into pose-guided avatars. Re-running the same command resumes: finished images
    are skipped, failed ones are redone."""
    from avatargen.app.planning import plan_generate
    from avatargen.app.request import GenerateRequest
    from avatargen.app.run import run
    from avatargen.cli.signals import install_stop_signals
    from avatargen.urls import check_environment, checked_url

    install_stop_signals()
    check_environment()  # a malformed AVATARGEN_ROUTER_URL / HF_ENDPOINT: exit 3 before planning
    if notify_url is not None:
        notify_url = checked_url(notify_url, "--notify-url", "notify URL", NOTIFY_FIX)
    if not dry_run:
        from avatargen.providers import warmup

        warmup.start()  # HTTP gets ready while the photos are read and hashed
    request = GenerateRequest(
        paths=tuple(paths or ()),
        poses=tuple(pose or [DEFAULT_POSE]),
        model=model,
        quality=quality,
        tier=tier,
        output=output,
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=steps,
        guidance=guidance,
        control_scale=control_scale,
        strength=strength,
        identity_scale=identity_scale,
        refs=tuple(ref or ()),
        person=person,
        seed=seed,
        num=num,
        recursive=recursive,
        name=name,
        dry_run=dry_run,
        options=_options(json_, locals()),
    )
    config, catalog, hooks = _context(ctx, json_)
    plan = plan_generate(request, config, catalog, hooks)
    result = run(plan, config, catalog, hooks)
    if dry_run:
        _print_plan(result, plan.model, json_)
        return
    _finish(result, json_)


# The options of generate and retry that say how the jobs run (RunOptions' fields, by name).
_RUN_OPTIONS = (
    "overwrite",
    "regenerate",
    "allow_upgrade",
    "endpoint",
    "provider",
    "token",
    "wait_timeout",
    "tiny",
    "hf_provider",
    "endpoint_after",
    "resume_endpoint",
    "yes",
    "max_credits",
    "notify_url",
    "on_complete",
)


def _options(json_: bool, given: dict):
    """RunOptions from a command's options as typed (its locals): --concurrency parsed,
    --no-fallback turned round, the command line kept for history."""
    from avatargen.app.request import RunOptions
    from avatargen.deploy.batch_hooks import parse_concurrency

    model_dir = given.get("model_dir")
    return RunOptions(
        concurrency=parse_concurrency(given.get("concurrency")),
        fallback=not given.get("no_fallback"),
        model_dir=str(model_dir) if model_dir else None,
        live_progress=sys.stderr.isatty() and not json_,
        argv=tuple(sys.argv[1:]),
        **{name: given[name] for name in _RUN_OPTIONS if name in given},
    )


def _context(ctx: typer.Context, json_: bool):
    """What every run reads once: the config, the catalog, and how the engine talks back."""
    from avatargen import config as app_config
    from avatargen.app.hooks import Hooks
    from avatargen.output import emit_json, info, warn

    hooks = Hooks(say=info, warn=warn, emit=emit_json if json_ else None, confirm=confirm_large_batch)
    return app_config.load(), context.load_catalog(ctx), hooks


def confirm_large_batch(count: int, credits: int) -> None:
    """Asked on the terminal before a batch over config confirm_above; a script must pass --yes."""
    from avatargen.errors import UsageError

    question = f"Generate {count} images for {credits} credits?"
    if not sys.stdin.isatty():
        raise UsageError(
            f"{question} No terminal to ask on", "pass --yes to confirm a large batch in a script"
        )
    if not typer.confirm(question, default=False, err=True):
        raise UsageError("cancelled: nothing was generated")


def _print_plan(dry, model, json_: bool) -> None:
    from avatargen.output import emit_json, result_console

    quote = dry.quote
    if json_:
        emit_json({"dry_run": True, "model": model.key, **quote.to_dict(), "jobs": dry.jobs})
        return
    console = result_console()
    for job in dry.jobs:
        console.print(
            f"{job['input_path']} -> {job['output_path']} (seed {job['seed']})", markup=False, highlight=False
        )
    console.print(
        f"dry run: {quote.images} image(s) with {model.key} for {quote.credits} credits "
        f"(balance {quote.balance}); {quote.already_done} already done",
        markup=False,
        highlight=False,
    )


def retry(
    ctx: typer.Context,
    batch: Annotated[str | None, typer.Argument(help="Batch id (default: the last batch).")] = None,
    concurrency: ConcurrencyAutoOpt = None,
    yes: YesOpt = False,
    endpoint: EndpointOpt = None,
    provider: ProviderOpt = None,
    token: TokenOpt = None,
    wait_timeout: WaitTimeoutOpt = None,
    overwrite: OverwriteOpt = False,
    regenerate: RegenerateOpt = False,
    no_fallback: NoFallbackOpt = False,
    allow_upgrade: AllowUpgradeOpt = False,
    model_dir: ModelDirOpt = None,
    tiny: TinyOpt = False,
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, max=200, help="Inference steps (default: as each job was planned)."),
    ] = None,
    identity_scale: Annotated[
        float | None,
        typer.Option(
            "--identity-scale",
            min=0.0,
            max=2.0,
            help="Identity strength (default: as planned); 0 retries jobs that found no face without it.",
        ),
    ] = None,
    hf_provider: HfProviderOpt = None,
    endpoint_after: EndpointAfterOpt = None,
    resume_endpoint: ResumeEndpointOpt = False,
    all_: Annotated[
        bool,
        typer.Option(
            "--all", help="Also re-send jobs that can never succeed (not an image, refused as invalid)."
        ),
    ] = False,
    json_: Json = False,
) -> None:
    """Re-run the failed and unfinished jobs of the last (or a named) batch, the way it ran
    (endpoint, provider, --hf-provider, --endpoint-after, model folder, concurrency, wait
    timeout); options given here win."""
    from avatargen.app.request import RetryRequest
    from avatargen.app.retry import plan_retry
    from avatargen.app.run import run
    from avatargen.cli.signals import install_stop_signals
    from avatargen.ledger import open_ledger
    from avatargen.output import emit_json, info
    from avatargen.urls import check_environment

    install_stop_signals()
    check_environment()
    options = _options(json_, locals())
    config, catalog, hooks = _context(ctx, json_)
    with open_ledger() as ledger:
        plan = plan_retry(
            RetryRequest(
                batch, include_hopeless=all_, steps=steps, identity_scale=identity_scale, options=options
            ),
            config,
            catalog,
            ledger,
        )
        _report_hopeless(plan.hopeless, json_)
        if not plan.jobs:
            info(f"batch {plan.batch_id}: nothing to retry")
            if json_:
                emit_json({"batch_id": plan.batch_id, "retried": 0, "never_succeed": len(plan.hopeless)})
            return
        info(_retry_line(ledger, plan))
        summary = run(plan, config, catalog, hooks, ledger)
    summary.skipped += len(plan.hopeless)
    summary.total += len(plan.hopeless)
    _finish(summary, json_)


def _retry_line(ledger, plan) -> str:
    """What the retry is about to do, counted as the run will (done ones are skipped, not sent)."""
    from avatargen.app.quote import classify

    groups = classify(ledger, plan.jobs, plan.settings.overwrite, plan.settings.regenerate)
    sent = len(groups.to_run)
    rest = len(plan.jobs) - sent
    if not sent:
        return f"batch {plan.batch_id}: none of its {len(plan.jobs)} unfinished job(s) needs sending (see below why)"
    return f"retrying {sent} job(s) of batch {plan.batch_id}" + (
        f"; {rest} skipped (see below)" if rest else ""
    )


def _named_error(path: str, error: str, pose: str | None = None) -> str:
    """A job's error with its photo named once (a photo's own error starts with its name already),
    and its pose when a pose set failed in more than one pose (else the lines would repeat)."""
    where = f"{path} (pose {pose})" if pose else path
    if error.startswith(path):
        return where + error[len(path) :] if pose else error
    return f"{where}: {error}"


def _report_hopeless(rows: list[dict], json_: bool) -> None:
    """Jobs a retry would only fail again: listed, counted, and left out unless --all."""
    if not rows:
        return
    from avatargen.output import emit_json, info
    from avatargen.plan import Job

    info(
        f"{len(rows)} job(s) can never succeed as they are and are not re-sent (pass --all to send them anyway):"
    )
    several = len({row["pose"] for row in rows}) > 1
    for row in rows:
        info(f"  {_named_error(row['input_path'], row['error'], row['pose'] if several else None)}")
        if json_:
            job = Job.from_row(row)
            emit_json(
                job.result_line(status="skipped", reason=f"can never succeed: {row['error']}", credits=0)
            )
