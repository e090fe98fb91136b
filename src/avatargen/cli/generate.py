"""`avatargen generate` and `avatargen retry`: options in, batch out (the work is in generate.py)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from avatargen.cli import state
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

DEFAULT_POSE = "portrait"
DEFAULT_OUTPUT = "avatars"


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


def _run_settings(
    config: dict,
    *,
    concurrency,
    overwrite,
    no_fallback,
    allow_upgrade,
    json_,
    endpoint,
    provider,
    token,
    wait_timeout,
    model_dir=None,
    tiny=False,
    hf_provider=None,
    endpoint_after=None,
    regenerate=False,
):
    from avatargen.batch import RunSettings
    from avatargen.redact import remember_secret

    remember_secret(token)  # from here on, masked wherever it could appear
    limits = config.get("limits", {}) if isinstance(config.get("limits"), dict) else {}
    if tiny or model_dir:
        provider = provider or "local"
    return RunSettings(
        concurrency=concurrency or int(config.get("concurrency") or 4),
        overwrite=overwrite,
        fallback=not no_fallback,
        allow_upgrade=allow_upgrade,
        live_progress=sys.stderr.isatty() and not json_,
        endpoint=endpoint,
        provider=provider or config.get("provider"),
        token=token,
        wait_timeout=wait_timeout or config.get("wait_timeout"),
        daily_limit=limits.get("daily_requests"),
        model_limits=dict(limits.get("models", {})),
        model_dir=str(model_dir) if model_dir else None,
        tiny=tiny,
        hf_provider=hf_provider,
        endpoint_after=endpoint_after,
        regenerate=regenerate,
    )


def _finish(summary, json_: bool) -> None:
    from avatargen.generate import raise_for_outcome, resume_command
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
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the avatars.")] = Path(
        DEFAULT_OUTPUT
    ),
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt (default: the model's).")] = None,
    negative_prompt: Annotated[str | None, typer.Option("--negative-prompt", help="Negative prompt.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, max=200, help="Inference steps.")] = None,
    guidance: Annotated[
        float | None, typer.Option("--guidance", min=0.0, max=50.0, help="Guidance scale.")
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
            envvar="AVATARGEN_IDENTITY_SCALE",
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
    from avatargen.cli.signals import install_stop_signals

    install_stop_signals()
    if not dry_run:
        from avatargen.providers import warmup

        warmup.start()  # HTTP gets ready while the photos are read and hashed
    from avatargen import settings as settings_mod
    from avatargen.catalog import resolve_model
    from avatargen.cli.run_options import check_local_options
    from avatargen.deploy.batch_hooks import parse_concurrency
    from avatargen.errors import InputError
    from avatargen.faces import require_detector
    from avatargen.generate import DEFAULT_CONFIRM_ABOVE, execute
    from avatargen.identity import check_references, hash_photo, hash_photos, people, resolve_scale
    from avatargen.images import file_hash
    from avatargen.inputs import collect_inputs
    from avatargen.ledger import open_ledger
    from avatargen.output import emit_json, info, warn
    from avatargen.plan import (
        DEFAULT_TEMPLATE,
        Params,
        PlannedPose,
        check_template,
        plan_pose_set,
        pose_specs,
    )
    from avatargen.poses.sources import resolve_pose

    check_local_options(tiny, model_dir, endpoint, provider)  # before a token is asked for
    config = settings_mod.load_config()
    catalog = state.load_catalog()
    chosen = resolve_model(
        catalog, model, quality, tier, plan=config.get("plan"), default=config.get("model")
    )
    chosen = _token_default(
        catalog, chosen, config, model or quality or tier, endpoint, provider, token, tiny, model_dir
    )
    _require_token(chosen, endpoint, provider, token, tiny, model_dir)
    from avatargen.weights import weights_for

    weights = weights_for(chosen, endpoint=endpoint, provider=provider, tiny=tiny, model_dir=model_dir)
    template = name or config.get("output_template") or DEFAULT_TEMPLATE
    check_template(template)
    specs = pose_specs(pose or [DEFAULT_POSE])
    pose_sources = {spec: resolve_pose(spec) for spec in specs}
    scale, adapter = resolve_scale(chosen, identity_scale)
    if scale:
        require_detector()  # the pose extra, said before any photo is read
    inputs = collect_inputs(paths, recursive) if paths else []
    references = {}
    stems = {}
    for who in people(person) if person else []:
        inputs.append(who.subject)
        references[who.subject] = who.references
        stems[who.subject] = who.name
    if not inputs:
        raise InputError(
            f"no photos found in {' '.join(paths or [])}".rstrip(),
            "name image files or folders holding images, or --person DIR",
        )
    hashes = hash_photos(inputs)
    from avatargen.run_notes import merged_photos

    for line in merged_photos(inputs, hashes):
        info(line)
    common_refs = ()
    uses_references = bool(scale) or chosen.edits_photo  # an editing model takes whole photos
    if uses_references:
        common_refs = check_references(ref or [], crop_faces=bool(scale))
        references = {
            path: tuple((hash_photo(p), p) for p in references.get(path, ())) + common_refs for path in inputs
        }
    elif ref or person:
        warn("--ref and --person references have no effect with --identity-scale 0")
    width, height = chosen.size
    params = Params(
        pose_spec=specs[0],
        prompt=prompt or chosen.prompt,
        negative_prompt=negative_prompt if negative_prompt is not None else chosen.negative_prompt,
        steps=steps or chosen.steps,
        guidance_scale=guidance if guidance is not None else chosen.guidance_scale,
        controlnet_conditioning_scale=control_scale
        if control_scale is not None
        else chosen.controlnet_conditioning_scale,
        width=width,
        height=height,
        strength=strength or None,
        identity_scale=scale,
        identity_adapter=adapter,
        weights=weights,
    )
    planned = []
    for spec in specs:
        pose_file = Path(spec)
        # A pose file's content is part of the job key: editing it makes new images, not "already done".
        identity = f"{spec}:{file_hash(pose_file)}" if pose_file.is_file() else spec
        planned.append(PlannedPose(spec, pose_sources[spec].name, identity))
    jobs = plan_pose_set(
        planned,
        inputs=inputs,
        hashes=hashes,
        model_key=chosen.key,
        model_alias=chosen.alias,
        params=params,
        num=num,
        seed=seed,
        output_dir=output,
        template=template,
        references=references if uses_references else None,
        stems=stems,
    )
    concurrency = parse_concurrency(concurrency)
    run_settings = _run_settings(
        config,
        concurrency=concurrency if isinstance(concurrency, int) else None,
        overwrite=overwrite,
        no_fallback=no_fallback,
        allow_upgrade=allow_upgrade,
        json_=json_,
        endpoint=endpoint,
        provider=provider,
        token=token,
        wait_timeout=wait_timeout,
        model_dir=model_dir,
        tiny=tiny,
        hf_provider=hf_provider,
        endpoint_after=endpoint_after,
        regenerate=regenerate,
    )
    session = _endpoint_session(chosen, config, endpoint, endpoint_after, resume_endpoint, token, dry_run)
    with (
        open_ledger() as ledger,
        _deployed_run(session, chosen, config, run_settings, concurrency) as factory,
    ):
        result = execute(
            ledger=ledger,
            catalog=catalog,
            jobs=jobs,
            poses=pose_sources,
            settings=run_settings,
            output_dir=output,
            argv=sys.argv[1:],
            yes=yes,
            dry_run=dry_run,
            max_credits=max_credits,
            confirm_above=int(config.get("confirm_above") or DEFAULT_CONFIRM_ABOVE),
            emit=emit_json if json_ else None,
            say=info,
            notify_url=notify_url,
            on_complete=on_complete,
            provider_factory=factory or _with_hf_provider(hf_provider),
        )
    if dry_run:
        _print_plan(result, chosen, json_)
        return
    _finish(result, json_)


def _token_default(catalog, chosen, config, asked, endpoint, provider, token, tiny, model_dir):
    """With only a Hugging Face token (no endpoint, no serve extra, no model asked for), the
    Inference Providers model runs instead of exit 6; said once, with its cost."""
    from avatargen.providers.select import token_default_model

    switched = token_default_model(
        catalog,
        chosen,
        explicit=bool(asked or config.get("model")),
        endpoint=endpoint,
        provider=provider or ("local" if tiny or model_dir else None),
        token=token,
    )
    if switched is None:
        return chosen
    from avatargen.output import info

    info(
        f"no endpoint and no serve extra: running {switched.alias} on Hugging Face Inference Providers "
        f"({switched.hf_provider}), {switched.credit_cost} credits per image here, billed by the provider "
        "to your Hugging Face account (README: 'No GPU, no endpoint: just a token')"
    )
    return switched


def _require_token(model, endpoint, provider, token, tiny=False, model_dir=None) -> None:
    """No token for a backend that needs one: exit 7 now, before a plan, a batch or a credit."""
    from avatargen.providers.select import require_token

    local = "local" if tiny or model_dir else None
    require_token(model, endpoint=endpoint, provider=provider or local, token=token)


def _with_hf_provider(hf_provider: str | None):
    """The provider factory with --hf-provider bound (None: the batch's default factory)."""
    if not hf_provider:
        return None
    import functools

    from avatargen.providers.select import make_provider

    return functools.partial(make_provider, hf_provider=hf_provider)


def _endpoint_session(model, config, endpoint, after, resume, token, dry_run):
    """The deployed endpoint's before/after steps (deploy/batch_hooks.py); nothing for a dry run."""
    from avatargen.deploy.batch_hooks import check_after, running, session_for
    from avatargen.output import info

    chosen = check_after(after, "--endpoint-after") if after else None
    chosen = chosen or check_after(str(config.get("endpoint_after") or "keep"), "config endpoint_after")
    if dry_run:
        return contextlib.nullcontext()
    return running(session_for(model, endpoint, after=chosen, resume=resume, token=token, say=info))


@contextlib.contextmanager
def _deployed_run(session, model, config, run_settings, concurrency):
    """generate's and retry's endpoint steps around a batch: the session of an endpoint avatargen
    deployed (resume, follow replicas, pause or scale to zero after), and the provider factory
    that follows its replicas and spreads the jobs over config endpoints.<key>'s URLs (None: the
    plain provider)."""
    from avatargen.deploy.batch_hooks import scaling
    from avatargen.output import info

    with session as deployed:
        yield scaling(deployed, model, run_settings, concurrency, "concurrency" in config, info)


def _print_plan(plan: dict, model, json_: bool) -> None:
    from avatargen.output import emit_json, result_console

    quote = plan["quote"]
    if json_:
        emit_json({"dry_run": True, "model": model.key, **quote, "jobs": plan["jobs"]})
        return
    console = result_console()
    for job in plan["jobs"]:
        console.print(
            f"{job['input_path']} -> {job['output_path']} (seed {job['seed']})", markup=False, highlight=False
        )
    console.print(
        f"dry run: {quote['images']} image(s) with {model.key} for {quote['credits']} credits "
        f"(balance {quote['balance']}); {quote['already_done']} already done",
        markup=False,
        highlight=False,
    )


def retry(
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
    from avatargen import settings as settings_mod
    from avatargen.cli.run_options import check_local_options, retry_jobs
    from avatargen.cli.signals import install_stop_signals
    from avatargen.deploy.batch_hooks import parse_concurrency
    from avatargen.errors import UsageError
    from avatargen.generate import DEFAULT_CONFIRM_ABOVE, execute
    from avatargen.ledger import open_ledger
    from avatargen.output import emit_json, info
    from avatargen.plan import Job
    from avatargen.poses.sources import resolve_pose

    install_stop_signals()
    check_local_options(tiny, model_dir, endpoint, provider)
    config = settings_mod.load_config()
    catalog = state.load_catalog()
    concurrency = parse_concurrency(concurrency)
    with open_ledger() as ledger:
        found = ledger.batch(batch)
        if found is None:
            raise UsageError(
                f"no batch {batch!r} in history" if batch else "no batch in history yet",
                "see `avatargen history`",
            )
        # 'running' too: a killed run's jobs; execute() reconciles them first, and skips any
        # that another live process is still running.
        unfinished = ("failed", "queued", "running")
        rows = [r for r in ledger.jobs(batch_id=found["id"], limit=None) if r["status"] in unfinished]
        hopeless = [] if all_ else [r for r in rows if r["status"] == "failed" and r.get("permanent")]
        rows = [r for r in rows if r not in hopeless]
        _report_hopeless(hopeless, json_)
        if not rows:
            info(f"batch {found['id']}: nothing to retry")
            if json_:
                emit_json({"batch_id": found["id"], "retried": 0, "never_succeed": len(hopeless)})
            return
        jobs = [Job.from_row(row) for row in rows]
        for job in jobs:
            catalog.lookup(job.model)  # a model since removed from the catalog fails here, clearly
        poses = {spec: resolve_pose(spec) for spec in {job.params.pose_spec for job in jobs}}
        ran = _remembered(found)
        if concurrency is None:  # as it ran: following the replicas, or a fixed number
            concurrency = "auto" if ran.get("concurrency_auto") else ran.get("concurrency")
        hf_provider = hf_provider or ran.get("hf_provider")  # the provider it ran on, not the catalog's
        endpoint_after = endpoint_after or ran.get("endpoint_after")
        run_settings = _run_settings(
            config,
            concurrency=concurrency if isinstance(concurrency, int) else None,
            overwrite=overwrite,
            no_fallback=no_fallback or ran.get("fallback") is False,
            allow_upgrade=allow_upgrade or bool(ran.get("allow_upgrade")),
            json_=json_,
            endpoint=endpoint or _remembered_endpoint(found, ran),
            provider=provider or ran.get("provider"),
            token=token,
            wait_timeout=wait_timeout or ran.get("wait_timeout"),
            model_dir=model_dir or ran.get("model_dir"),
            tiny=tiny or bool(ran.get("tiny")),
            hf_provider=hf_provider,
            endpoint_after=endpoint_after,
            regenerate=regenerate,
        )
        jobs = retry_jobs(jobs, catalog, run_settings, steps, identity_scale)
        models = [catalog.lookup(key) for key in sorted({job.model for job in jobs})]
        for model in models:
            _require_token(model, run_settings.endpoint, run_settings.provider, token)
        # A batch has one model (a fallback runs under its own): its endpoint is the one handled.
        session = _endpoint_session(
            models[0], config, run_settings.endpoint, endpoint_after, resume_endpoint, token, False
        )
        info(_retry_line(ledger, jobs, run_settings, found["id"]))
        with _deployed_run(session, models[0], config, run_settings, concurrency) as factory:
            summary = execute(
                ledger=ledger,
                catalog=catalog,
                jobs=jobs,
                poses=poses,
                settings=run_settings,
                output_dir=Path(found["output_dir"] or "."),
                argv=sys.argv[1:],
                yes=yes,
                confirm_above=int(config.get("confirm_above") or DEFAULT_CONFIRM_ABOVE),
                emit=emit_json if json_ else None,
                say=info,
                batch_id=found["id"],
                provider_factory=factory or _with_hf_provider(hf_provider),
            )
    summary.skipped += len(hopeless)
    summary.total += len(hopeless)
    _finish(summary, json_)


def _retry_line(ledger, jobs, run_settings, batch_id: str) -> str:
    """What the retry is about to do, counted as execute() will (done ones are skipped, not sent)."""
    from avatargen.generate import classify

    groups = classify(ledger, jobs, run_settings.overwrite, run_settings.regenerate)
    sent = len(groups.to_run)
    rest = len(jobs) - sent
    if not sent:
        return f"batch {batch_id}: none of its {len(jobs)} unfinished job(s) needs sending (see below why)"
    return f"retrying {sent} job(s) of batch {batch_id}" + (f"; {rest} skipped (see below)" if rest else "")


def _remembered(batch: dict) -> dict:
    import json

    try:
        stored = json.loads(batch.get("settings") or "{}")
    except ValueError:
        return {}
    return stored if isinstance(stored, dict) else {}


def _remembered_endpoint(batch: dict, ran: dict) -> str | None:
    from avatargen.errors import UsageError
    from avatargen.redact import MASK

    url = ran.get("endpoint")
    if url and MASK in url:
        raise UsageError(
            f"batch {batch['id']} ran against an endpoint whose URL holds credentials, which are never stored",
            "pass it again: avatargen retry --endpoint URL",
        )
    return url


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
