"""Options of `generate` and `retry` that decide which weights run, checked and applied.

`--tiny` and `--model-dir` choose the local backend's weights; with `--endpoint` (a server) or
another `--provider` they contradict the run: exit 2, not one of them silently ignored. `retry`
with other weights, another `--steps` or `--identity-scale` than a job was planned with makes
new jobs (new keys, names tagged with their weights): a trial never stands in for the real job.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from avatargen.errors import UsageError


def check_local_options(tiny: bool, model_dir: Path | str | None, endpoint: str | None, provider: str | None):
    if tiny and model_dir:
        raise UsageError(
            "--tiny and --model-dir both choose the local weights",
            "pass one: --tiny for the random-weight trial model, --model-dir DIR for a saved pipeline",
        )
    option = "--tiny" if tiny else "--model-dir" if model_dir else None
    if option is None:
        return
    if endpoint:
        raise UsageError(
            f"{option} runs the model in this process, --endpoint sends the jobs to a server: pass one",
            "drop --endpoint to run here, or drop "
            f"{option} to use the endpoint (`avatargen serve --tiny` is a server with the tiny model)",
        )
    if provider and provider != "local":
        raise UsageError(
            f"{option} is for the local backend, not --provider {provider}",
            f"drop --provider, or drop {option}",
        )


def retry_jobs(
    jobs: list, catalog, settings, steps: int | None, identity_scale: float | None, config
) -> list:
    """The retried jobs as this retry runs them: the same jobs when nothing changed, else new
    ones (plan.rekeyed) for the weights, steps and identity scale asked for now."""
    from avatargen.plan import rekeyed
    from avatargen.weights import weights_for

    out = []
    for job in jobs:
        model = catalog.by_key[job.model]
        weights = weights_for(
            model,
            config=config,
            endpoint=settings.endpoint,
            provider=settings.provider,
            tiny=settings.tiny,
            model_dir=settings.model_dir,
        )
        params = replace(job.params, weights=weights)
        if steps is not None:
            params = replace(params, steps=steps)
        if identity_scale is not None and identity_scale != params.identity_scale:
            if identity_scale and not params.identity_adapter:
                raise UsageError(
                    f"--identity-scale {identity_scale:g}: the jobs of this batch were planned without "
                    "identity, so their face crops are not known to a retry",
                    "run the generate command again with --identity-scale",
                )
            params = replace(params, identity_scale=identity_scale)
            if not identity_scale:
                params = replace(params, identity_adapter="", references=())
        out.append(job if params == job.params else rekeyed(job, params))
    return out
