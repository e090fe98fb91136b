"""Plan a retry: the failed and unfinished jobs of a stored batch, run the way it ran
(endpoint, provider, --hf-provider, --endpoint-after, model folder, concurrency, wait timeout),
with the options given now winning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from avatargen.app.planning import Plan, require_token, run_settings
from avatargen.app.request import RetryRequest, RunOptions
from avatargen.catalog import Catalog
from avatargen.config import Config
from avatargen.ledger import Ledger

# 'running' too: a killed run's jobs; the run reconciles them first, and skips any that another
# live process is still running.
UNFINISHED = ("failed", "queued", "running")


def plan_retry(request: RetryRequest, config: Config, catalog: Catalog, ledger: Ledger) -> Plan:
    from avatargen.app.weight_options import check_local_options, retry_jobs
    from avatargen.errors import UsageError
    from avatargen.plan import Job
    from avatargen.poses.sources import resolve_pose

    given = request.options
    check_local_options(given.tiny, given.model_dir, given.endpoint, given.provider)
    found = ledger.batch(request.batch)
    if found is None:
        raise UsageError(
            f"no batch {request.batch!r} in history" if request.batch else "no batch in history yet",
            "see `avatargen history`",
        )
    rows = [r for r in ledger.jobs(batch_id=found["id"], limit=None) if r["status"] in UNFINISHED]
    hopeless = (
        []
        if request.include_hopeless
        else [r for r in rows if r["status"] == "failed" and r.get("permanent")]
    )
    jobs = [Job.from_row(row) for row in rows if row not in hopeless]
    # A model since removed from the catalog fails here, clearly.
    models = [catalog.lookup(key) for key in sorted({job.model for job in jobs})]
    poses = {spec: resolve_pose(spec) for spec in {job.params.pose_spec for job in jobs}}
    options = remembered_options(request.options, found)
    settings = run_settings(options, config)
    # Other weights, steps or identity scale than a job was planned with: new jobs beside it.
    jobs = retry_jobs(jobs, catalog, settings, request.steps, request.identity_scale, config)
    for model in models:
        require_token(model, options, config)
    return Plan(
        # A batch has one model (a fallback runs under its own): its endpoint is the one handled.
        model=models[0] if models else None,  # type: ignore[arg-type]  # no jobs: nothing runs
        jobs=jobs,
        poses=poses,
        output_dir=Path(found["output_dir"] or "."),
        settings=settings,
        options=options,
        concurrency=options.concurrency,
        batch_id=found["id"],
        hopeless=hopeless,
    )


def remembered_options(given: RunOptions, batch: dict[str, Any]) -> RunOptions:
    """The options a retry runs with: those given now, else how the batch ran."""
    ran = _remembered(batch)
    concurrency = given.concurrency  # parsed by the front door: N, 'auto' or None
    if concurrency is None:  # as it ran: following the replicas, or a fixed number
        concurrency = "auto" if ran.get("concurrency_auto") else ran.get("concurrency")
    return dataclasses.replace(
        given,
        concurrency=concurrency,
        fallback=given.fallback and ran.get("fallback") is not False,
        allow_upgrade=given.allow_upgrade or bool(ran.get("allow_upgrade")),
        endpoint=given.endpoint or _remembered_endpoint(batch, ran),
        provider=given.provider or ran.get("provider"),
        wait_timeout=given.wait_timeout or ran.get("wait_timeout"),
        model_dir=given.model_dir or ran.get("model_dir"),
        tiny=given.tiny or bool(ran.get("tiny")),
        hf_provider=given.hf_provider or ran.get("hf_provider"),  # the provider it ran on, not the catalog's
        endpoint_after=given.endpoint_after or ran.get("endpoint_after"),
    )


def _remembered(batch: dict[str, Any]) -> dict[str, Any]:
    try:
        stored = json.loads(batch.get("settings") or "{}")
    except ValueError:
        return {}
    return stored if isinstance(stored, dict) else {}


def _remembered_endpoint(batch: dict[str, Any], ran: dict[str, Any]) -> str | None:
    from avatargen.errors import UsageError
    from avatargen.redact import MASK

    url = ran.get("endpoint")
    if url and MASK in url:
        raise UsageError(
            f"batch {batch['id']} ran against an endpoint whose URL holds credentials, which are never stored",
            "pass it again: avatargen retry --endpoint URL",
        )
    return url
