"""`avatargen credits [add|history]`: the balance and every movement of the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli.options import Json

app = typer.Typer(help="Credits: balance, top-ups and history.", invoke_without_command=True)


@app.callback()
def credits(ctx: typer.Context, json_: Json = False) -> None:
    """Balance, reserved, spent today and this month (by model), and today's requests."""
    if ctx.invoked_subcommand is not None:
        return
    from avatargen import settings
    from avatargen.ledger import open_ledger

    config = settings.load_config()
    with open_ledger() as ledger:
        totals = ledger.totals()
        requests_today = ledger.requests_today()
    limit = settings.get_value("limits.daily_requests", config)
    report = {
        "balance": totals.balance,
        "reserved": totals.reserved,
        "spent_today": totals.spent_today,
        "spent_month": totals.spent_month,
        "spent_today_by_model": totals.spent_today_by_model,
        "spent_month_by_model": totals.spent_month_by_model,
        "requests_today": requests_today,
        "daily_request_limit": limit,
    }
    if json_:
        from avatargen.output import emit_json

        emit_json(report)
        return
    from rich.table import Table

    from avatargen.output import result_console

    table = Table(title="credits", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("balance", str(totals.balance))
    table.add_row("reserved", str(totals.reserved))
    table.add_row("spent today", str(totals.spent_today))
    table.add_row("spent this month", str(totals.spent_month))
    for model, amount in sorted(totals.spent_month_by_model.items()):
        table.add_row(f"  {model}", f"{totals.spent_today_by_model.get(model, 0)} today / {amount} month")
    table.add_row("requests today", f"{requests_today}" + (f" of {limit}" if limit is not None else ""))
    result_console().print(table)


@app.command("add")
def add(
    amount: Annotated[int, typer.Argument(min=1, help="Credits to add.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the history).")] = None,
    json_: Json = False,
) -> None:
    """Add credits to the balance."""
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        balance = ledger.grant(amount, note)
    if json_:
        from avatargen.output import emit_json

        emit_json({"added": amount, "balance": balance})
    else:
        print(f"added {amount} credits; balance {balance}")


@app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many movements.")] = 20,
    json_: Json = False,
) -> None:
    """The latest credit movements: grant, reserve, settle, refund."""
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        rows = ledger.movements(limit)
    if json_:
        from avatargen.output import emit_json

        emit_json(rows)
        return
    from rich.table import Table

    from avatargen.output import result_console

    table = Table(title="credit movements", title_justify="left")
    for column in ("time", "kind", "amount", "model", "job", "note"):
        table.add_column(column, justify="right" if column == "amount" else "left", overflow="fold")
    for row in rows:
        table.add_row(
            row["created_at"][:19],
            row["kind"],
            str(row["amount"]),
            row["model"] or "",
            (row["job_key"] or "")[:12],
            row["note"] or "",
        )
    result_console().print(table)
