"""Plan: a request becomes jobs. For `generate`, the model, the poses, the photos (and their
references for identity) and the parameters make one Job per photo x pose x variant; for `retry`,
the stored batch's unfinished jobs come back, with the settings it ran with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avatargen.app.hooks import Hooks
from avatargen.app.request import GenerateRequest, RunOptions
from avatargen.batch import RunSettings
from avatargen.catalog import Catalog, Model
from avatargen.config import DEFAULT_CONCURRENCY, Config
from avatargen.plan import Job


@dataclass
class Plan:
    model: Model  # the model asked for (a batch's endpoint steps follow it)
    jobs: list[Job]
    poses: dict[str, Any]  # pose spec -> PoseSource
    output_dir: Path
    settings: RunSettings
    options: RunOptions
    concurrency: int | str | None  # as asked: N, 'auto' or None (config, or the replicas)
    dry_run: bool = False
    batch_id: str | None = None  # a retried batch keeps its id
    hopeless: list[dict[str, Any]] = field(default_factory=list)  # retry: rows left out (never succeed)


def plan_generate(request: GenerateRequest, config: Config, catalog: Catalog, hooks: Hooks) -> Plan:
    from avatargen.app.weight_options import check_local_options
    from avatargen.plan import DEFAULT_TEMPLATE, check_template, pose_specs
    from avatargen.poses.sources import resolve_pose
    from avatargen.weights import weights_for

    options = request.options
    # 1. The model, and the token its backend needs (refused now, before any photo is read).
    check_local_options(options.tiny, options.model_dir, options.endpoint, options.provider)
    model = choose_model(request, config, catalog, hooks)
    require_token(model, options, config)
    weights = weights_for(
        model,
        config=config,
        endpoint=options.endpoint,
        provider=options.provider,
        tiny=options.tiny,
        model_dir=options.model_dir,
    )
    # 2. Names and poses.
    template = request.name or config.output_template or DEFAULT_TEMPLATE
    check_template(template)
    specs = pose_specs(list(request.poses))
    poses = {spec: resolve_pose(spec) for spec in specs}
    # 3. Identity: the face of each photo, found here or by the server.
    from avatargen.identity import resolve_scale

    scale, adapter = resolve_scale(model, request.identity_scale)
    if scale:  # who finds the faces (here, or the endpoint's handler), said before any photo is read
        from avatargen.identity import require_face_finder

        require_face_finder(
            model, options.endpoint, options.provider, local=bool(options.local), config=config
        )
    # 4. The photos and their references.
    photos = _photos(request, model, bool(scale), hooks)
    # 5. One job per photo x pose x variant.
    jobs = _jobs(request, model, specs, poses, photos, (scale, adapter, weights), template)
    return Plan(
        model=model,
        jobs=jobs,
        poses=poses,
        output_dir=request.output,
        settings=run_settings(options, config),
        options=options,
        concurrency=options.concurrency,
        dry_run=request.dry_run,
    )


def choose_model(request: GenerateRequest, config: Config, catalog: Catalog, hooks: Hooks) -> Model:
    """--model / --quality / --tier (capped by config plan), else config model, else the default;
    a user with only a Hugging Face token gets the Inference Providers model instead of exit 6."""
    from avatargen.catalog import resolve_model
    from avatargen.providers.select import token_default_model

    options = request.options
    chosen = resolve_model(
        catalog, request.model, request.quality, request.tier, plan=config.plan, default=config.model
    )
    switched = token_default_model(
        catalog,
        chosen,
        explicit=request.model_asked or bool(config.model),
        endpoint=options.endpoint,
        provider=options.provider or options.local,
        token=options.token,
        config=config,
    )
    if switched is None:
        return chosen
    hooks.say(
        f"no endpoint and no serve extra: running {switched.alias} on Hugging Face Inference Providers "
        f"({switched.hf_provider}), {switched.credit_cost} credits per image here, billed by the provider "
        "to your Hugging Face account (docs/backends.md: 'No GPU, no endpoint: just a token')"
    )
    return switched


def require_token(model: Model, options: RunOptions, config: Config) -> None:
    """No backend at all (exit 6), then no token for a backend that needs one (exit 7): said now,
    before the face detector, a plan, a batch or a credit."""
    from avatargen.deploy.records import authenticated_where
    from avatargen.providers.select import require_backend
    from avatargen.providers.select import require_token as refuse_without_token

    provider = options.provider or options.local
    require_backend(model, endpoint=options.endpoint, provider=provider, config=config)
    refuse_without_token(
        model,
        endpoint=options.endpoint,
        provider=provider,
        token=options.token,
        config=config,
        deployed_with_token=authenticated_where,  # an endpoint avatargen deployed to need one
    )


@dataclass
class _Photos:
    inputs: list[Path]
    hashes: dict[Path, str]
    references: dict[Path, tuple[tuple[str, Path], ...]] | None  # None: no references are sent
    stems: dict[Path, str]


def _photos(request: GenerateRequest, model: Model, crop_faces: bool, hooks: Hooks) -> _Photos:
    from avatargen.identity import check_references, hash_photo, hash_photos, people
    from avatargen.inputs import collect_inputs, no_photos_error

    inputs = collect_inputs(list(request.paths), request.recursive) if request.paths else []
    references: dict[Path, tuple[tuple[str, Path], ...]] = {}
    stems: dict[Path, str] = {}
    for who in people(request.person) if request.person else []:
        inputs.append(who.subject)
        references[who.subject] = who.references
        stems[who.subject] = who.name
    if not inputs:
        raise no_photos_error(list(request.paths), request.recursive)
    hashes = hash_photos(inputs)
    from avatargen.run_notes import merged_photos

    for line in merged_photos(inputs, hashes):
        hooks.say(line)
    if not (crop_faces or model.edits_photo):  # only identity and editing models take references
        if request.refs or request.person:
            hooks.warn("--ref and --person references have no effect with --identity-scale 0")
        return _Photos(inputs, hashes, None, stems)
    common = check_references(list(request.refs), crop_faces=crop_faces)
    every = {path: tuple((hash_photo(p), p) for p in references.get(path, ())) + common for path in inputs}
    return _Photos(inputs, hashes, every, stems)


def _jobs(request, model, specs, poses, photos: _Photos, identity_and_weights, template) -> list[Job]:
    from avatargen.images import file_hash
    from avatargen.plan import PlannedPose, plan_pose_set

    scale, adapter, weights = identity_and_weights
    params = replace(job_params(request, model, specs[0], scale, adapter), weights=weights)
    planned = []
    for spec in specs:
        pose_file = Path(spec)
        # A pose file's content is part of the job key: editing it makes new images, not "already done".
        identity = f"{spec}:{file_hash(pose_file)}" if pose_file.is_file() else spec
        planned.append(PlannedPose(spec, poses[spec].name, identity))
    return plan_pose_set(
        planned,
        inputs=photos.inputs,
        hashes=photos.hashes,
        model_key=model.key,
        model_alias=model.alias,
        params=params,
        num=request.num,
        seed=request.seed,
        output_dir=request.output,
        template=template,
        references=photos.references,
        stems=photos.stems,
    )


def job_params(request: GenerateRequest, model: Model, pose_spec: str, scale: float = 0.0, adapter: str = ""):
    """What a job of `model` sends besides the photo and the pose image: the request's values,
    the model's where the request gives none. The one place both front doors get them from."""
    from avatargen.plan import Params

    width, height = model.size
    return Params(
        pose_spec=pose_spec,
        prompt=request.prompt or model.prompt,
        negative_prompt=_given(request.negative_prompt, model.negative_prompt),
        steps=request.steps or model.steps,
        guidance_scale=_given(request.guidance, model.guidance_scale),
        controlnet_conditioning_scale=_given(request.control_scale, model.controlnet_conditioning_scale),
        width=width,
        height=height,
        strength=request.strength or None,
        identity_scale=scale,
        identity_adapter=adapter,
    )


def _given(value, default):
    return value if value is not None else default


def run_settings(options: RunOptions, config: Config) -> RunSettings:
    """The runner's settings: the options, with config filling what they leave unset."""
    from avatargen.redact import remember_secret

    remember_secret(options.token)  # from here on, masked wherever it could appear
    concurrency = options.concurrency if isinstance(options.concurrency, int) else None
    return RunSettings(
        concurrency=concurrency or config.concurrency or DEFAULT_CONCURRENCY,
        overwrite=options.overwrite,
        regenerate=options.regenerate,
        fallback=options.fallback,
        allow_upgrade=options.allow_upgrade,
        live_progress=options.live_progress,
        endpoint=options.endpoint,
        provider=options.provider or options.local or config.provider,
        token=options.token,
        wait_timeout=options.wait_timeout or config.wait_timeout,
        daily_limit=config.daily_requests,
        model_limits=dict(config.model_limits),
        model_dir=options.model_dir,
        tiny=options.tiny,
        hf_provider=options.hf_provider,
        endpoint_after=options.endpoint_after,
    )
