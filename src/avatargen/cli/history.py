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
    from rich.table import Table

    from avatargen.output import result_console

    table = Table(title="jobs", title_justify="left")
    for column in ("id", "status", "input", "pose", "model", "seed", "seconds", "credits", "output / error"):
        # Paths and errors wrap instead of being cut with '…' (a pipe gets 80 columns).
        short = column in ("id", "status", "seed", "seconds", "credits")
        table.add_column(column, no_wrap=short, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["status"],
            row["input_path"],
            row["pose"],
            (row["model_used"] or row["model"]).removeprefix("avatar-generator:"),
            str(row["seed"]),
            f"{row['seconds']:.1f}" if row["seconds"] else "",
            str(row["credits"] or 0),
            row["error"]
            if row["status"] in ("failed", "queued", "skipped") and row["error"]
            else row["output_path"],
        )
    result_console().print(table)


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
    record = _public(row)
    record["movements"] = list(reversed(moves))
    if json_:
        from avatargen.output import emit_json

        emit_json(record)
        return
    from avatargen.output import result_console

    console = result_console()
    for key, value in record.items():
        if key == "movements":
            for move in value:
                console.print(
                    f"  {move['created_at'][:19]} {move['kind']} {move['amount']} {move['note'] or ''}",
                    markup=False,
                    highlight=False,
                )
        else:
            console.print(f"{key}: {value}", markup=False, highlight=False)
