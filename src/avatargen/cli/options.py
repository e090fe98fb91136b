"""Option types shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only the essential value, one per line.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help="Model key, or its alias without 'avatar-generator:'.")
]
QualityOpt = Annotated[str | None, typer.Option("--quality", help="sd, hd, ultra or premium.")]
TierOpt = Annotated[
    str | None, typer.Option("--tier", help="free, basic, pro or enterprise: the best model at or below it.")
]

# The run options `generate` and `retry` share.
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", "-c", min=1, max=64, help="Parallel requests (default 4).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before a large batch.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace output files that some other job or program made. A job already done (its "
        "image in place) is still skipped: --regenerate makes it again.",
    ),
]
RegenerateOpt = Annotated[
    bool,
    typer.Option(
        "--regenerate",
        help="Make images again even when history has them done, charged again, replacing their "
        "own files (the same seed gives the same image on the same weights: add --seed N for another).",
    ),
]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="Inference Endpoint URL for this run.")]
ProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--provider", help="hf-endpoint, hf-inference, local or hf-providers (default: by endpoint)."
    ),
]
TokenOpt = Annotated[str | None, typer.Option("--token", help="Hugging Face token (prefer HF_TOKEN).")]
WaitTimeoutOpt = Annotated[
    float | None,
    typer.Option("--wait-timeout", min=1.0, help="Seconds to wait for a cold model (default 600)."),
]
NoFallbackOpt = Annotated[bool, typer.Option("--no-fallback", help="Never switch to a fallback model.")]
AllowUpgradeOpt = Annotated[bool, typer.Option("--allow-upgrade", help="Let a fallback cost more.")]
