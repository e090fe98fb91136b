"""`avatargen history [show ID]`: the jobs the ledger remembers."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli.options import Json

app = typer.Typer(help="Job history.", invoke_without_command=True)

STATUSES = ("queued", "running", "done", "failed", "skipped")


@app.callback()
def history(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="done, failed, queued, running or skipped.")
    ] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many jobs.")] = 20,
    json_: Json = False,
) -> None:
    """The latest jobs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from avatargen.errors import UsageError
    from avatargen.ledger import open_ledger

    if status and status not in STATUSES:
        raise UsageError(f"unknown status '{status}' (--status)", f"use one of {', '.join(STATUSES)}")
    with open_ledger() as ledger:
        rows = ledger.jobs(status=status, batch_id=batch, limit=limit)
    if json_:
        from avatargen.output import emit_json

        for row in rows:
            emit_json(_public(row))
        return
    from avatargen.output import print_table

    columns = ["id", "status", "input", "pose", "model", "seed", "seconds", "credits", "output / error"]
    table = [
        [
            str(row["id"]),
            row["status"],
            row["input_path"],
            row["pose"],
            (row["model_used"] or row["model"]).removeprefix("avatar-generator:") + _weights_tag(row),
            str(row["seed"]),
            f"{row['seconds']:.1f}" if row["seconds"] else "",
            str(row["credits"] or 0),
            _output_or_error(row),
        ]
        for row in rows
    ]
    # Paths and errors are the long, free-text cells: they wrap (or go below the row), ids never do.
    print_table(
        "jobs", columns, table, right=("id", "seconds", "credits"), detail=("input", "output / error")
    )


def _output_or_error(row: dict) -> str:
    """The error of a job that has one; the image of a done job; else what will be made, said as
    such (a queued job's path names no PNG that exists yet)."""
    if row["status"] in ("failed", "queued", "skipped") and row["error"]:
        return row["error"]
    if row["status"] == "done":
        return row["output_path"]
    return "(not made yet)"


def _weights_tag(row: dict) -> str:
    """' (tiny)' or ' (dir-...)' after the model when other weights than the catalog's made it."""
    import json

    from avatargen.weights import name_tag

    try:
        tag = name_tag(json.loads(row["params"]).get("weights") or "")
    except (ValueError, AttributeError, TypeError):
        return ""
    return f" ({tag})" if tag else ""


def _public(row: dict) -> dict:
    import json

    out = dict(row)
    out["params"] = json.loads(out["params"])
    return out


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Job id, or the start of its job key.")], json_: Json = False
) -> None:
    """Everything recorded about one job, with its credit movements."""
    from avatargen.errors import UsageError
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        row = ledger.find_job(ref)
        if row is None:
            raise UsageError(f"no job '{ref}' in history", "see `avatargen history`")
        moves = ledger.movements(1000, job_key=row["job_key"])
        places = ledger.output_paths(row["job_key"])
    record = _public(row)
    # Every place the image was written: where it was generated, then each free copy (another -o).
    record["outputs"] = places if row["status"] == "done" else []
    record["movements"] = list(reversed(moves))
    if json_:
        from avatargen.output import emit_json

        emit_json(record)
        return
    _print_record(record)


def _print_record(record: dict) -> None:
    """`key: value` lines; params one per line below `params:`, credit movements likewise."""
    from avatargen.output import human

    lines = []
    for key, value in record.items():
        if key == "movements":
            lines.append("movements:")
            lines.extend(
                f"  {move['created_at'][:19]}  {move['kind']}  {move['amount']}"
                + (f"  {move['note']}" if move["note"] else "")
                for move in value
            )
        elif key == "outputs":
            if len(value) > 1:  # one place is output_path, already printed
                lines.append("outputs:")
                lines.extend(f"  {path}" for path in value)
        elif key == "params" and isinstance(value, dict):
            lines.append("params:")
            lines.extend(f"  {name}: {human(item)}" for name, item in value.items())
        elif key == "seconds" and isinstance(value, float):
            lines.append(f"seconds: {value:.2f}")
        else:
            lines.append(f"{key}: {human(value)}")
    print("\n".join(lines))
