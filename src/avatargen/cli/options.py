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
