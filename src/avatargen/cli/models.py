"""`avatargen models list|show`: the catalog, as a table or as the seed's JSON records."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli import context
from avatargen.cli.options import Json, Quiet

app = typer.Typer(help="The model catalog.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context,
    tier: Annotated[str | None, typer.Option("--tier", help="Only models of this tier.")] = None,
    quality: Annotated[str | None, typer.Option("--quality", help="Only models of this quality.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Include disabled and coming-soon models.")
    ] = False,
    json_: Json = False,
    quiet: Quiet = False,
) -> None:
    """List the models you can run (--all adds disabled and coming-soon ones; --json always has every
    model, each with its status)."""
    from avatargen.catalog import QUALITIES
    from avatargen.errors import UsageError
    from avatargen.settings import TIERS

    if tier and tier not in TIERS:
        raise UsageError(f"unknown tier '{tier}' (--tier)", f"use one of {', '.join(TIERS)}")
    if quality and quality not in QUALITIES:
        raise UsageError(f"unknown quality '{quality}' (--quality)", f"use one of {', '.join(QUALITIES)}")
    models = [
        m
        for m in context.load_catalog(ctx)
        # --json lists every model with its `enabled`/`status`: scripts filter, nothing is hidden.
        if (all_ or json_ or m.enabled)
        and (not tier or m.tier == tier)
        and (not quality or m.quality == quality)
    ]
    if json_:
        from avatargen.output import emit_json

        emit_json([m.to_seed() for m in models])
        return
    if quiet:
        for m in models:
            print(m.key)
        return
    from avatargen.output import print_table

    columns = ["key", "name", "tier", "credits", "resolution", "quality", "pose", "typical time", "status"]
    rows = [
        [
            m.key,
            m.name,
            m.tier,
            str(m.credit_cost),
            m.resolution,
            m.quality,
            pose_column(m),
            m.processing_time,
            m.status,
        ]
        for m in models
    ]
    print_table("avatargen models", columns, rows, right=("credits",), detail=("name",))
    # Reasons are sentences: below the table they stay readable on a narrow terminal.
    for m in models:
        if not m.enabled and m.disabled_reason:
            print(f"{m.key}: {m.status}: {m.disabled_reason}")


def pose_column(model) -> str:
    """How the pose reaches the model: "image" (a skeleton it follows), "words" (described in the
    prompt, followed loosely) or "none"."""
    return model.pose_input if model.pose_control else "none"


@app.command("show")
def show_model(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Model key or alias.")],
    json_: Json = False,
) -> None:
    """Everything the catalog says about one model."""
    model = context.load_catalog(ctx).lookup(key, option="KEY")
    record = model.to_seed()
    if json_:
        from avatargen.output import emit_json

        emit_json(record)
        return
    from avatargen.output import human, print_table

    rows = []
    for name, value in record.items():
        if isinstance(value, dict):  # the generation defaults: one row each
            rows += [[f"{name}.{sub}", human(subvalue)] for sub, subvalue in value.items()]
        else:
            rows.append([name, human(value)])
    rows.append(["source", model.source])
    print_table(model.key, ["field", "value"], rows, detail=("value",), show_header=False)


@app.command("export")
def export_models(
    ctx: typer.Context,
    format_: Annotated[
        str, typer.Option("--format", "-f", help="json (the seed's records) or sql (upserts).")
    ] = "json",
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout.")
    ] = None,
    json_: Json = False,
) -> None:
    """The whole catalog (disabled models too) for the backend it came from: JSON records or SQL for psql."""
    from avatargen.export import DIALECT, export_catalog, write_text_atomic
    from avatargen.output import emit_json, info

    models = list(context.load_catalog(ctx))
    text = export_catalog(models, format_)
    if output and output != "-":
        path = write_text_atomic(output, text)
        summary = {"path": str(path), "format": format_, "models": len(models)}
        if format_ == "sql":
            summary["dialect"] = DIALECT
        if json_:
            emit_json(summary)
        else:
            info(f"wrote {len(models)} models as {format_} to {path}")
        return
    if json_ and format_ == "sql":
        # --json promises one JSON document on stdout, so the SQL travels inside one.
        emit_json({"format": "sql", "dialect": DIALECT, "models": len(models), "sql": text})
        return
    import sys

    sys.stdout.write(text)
    sys.stdout.flush()
