"""`avatargen credits [--verify] [add|history]`: the balance and every movement of the ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli.options import Json

app = typer.Typer(
    help="Credits: balance, top-ups and history. 'requests today' counts every generation request "
    "sent today (UTC), each retry again, as limits.daily_requests does.",
    invoke_without_command=True,
)


Verify = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Check that the running balance equals the sum of every movement (exit 3 if not).",
    ),
]


# What the number counts, said where it is shown: one failed job retried 4 times is 4 requests.
REQUESTS_LABEL = "requests today (HTTP attempts, retries included)"


@app.callback()
def credits(ctx: typer.Context, json_: Json = False, verify: Verify = False) -> None:
    """Balance, reserved, spent today and this month (by model), and today's requests: every
    generation request sent today (UTC), each retry of a job counted again, as
    limits.daily_requests counts them (status probes and image downloads are not counted)."""
    if ctx.invoked_subcommand is not None:
        return
    if verify:
        verify_ledger(json_)
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
    from avatargen.output import print_table

    rows = [
        ["balance", str(totals.balance)],
        ["reserved", str(totals.reserved)],
        ["spent today", str(totals.spent_today)],
        ["spent this month", str(totals.spent_month)],
    ]
    rows += [
        [
            f"spent on {model.removeprefix('avatar-generator:')}",
            f"{totals.spent_today_by_model.get(model, 0)} today / {amount} this month",
        ]
        for model, amount in sorted(totals.spent_month_by_model.items())
    ]
    rows.append(
        [
            REQUESTS_LABEL,
            f"{requests_today}" + (f" of {limit} (limits.daily_requests)" if limit is not None else ""),
        ]
    )
    print_table("credits", ["what", "value"], rows, right=("value",), show_header=False)


def verify_ledger(json_: bool) -> None:
    """A running total that differs from its history means the file was changed outside
    avatargen or damaged: the same exit code (3) as a ledger that cannot be opened."""
    from avatargen.errors import ConfigError
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        found = ledger.verify()
        path = ledger.path
    if not found.ok:
        raise ConfigError(
            f"{path}: the credit ledger does not add up: {'; '.join(found.mismatches())}",
            "the file was changed outside avatargen or is damaged: restore it from a backup",
        )
    if json_:
        from avatargen.output import emit_json

        emit_json(
            {"ok": True, "movements": found.movements, "balance": found.balance, "reserved": found.reserved}
        )
        return
    print(
        f"OK: balance {found.balance} and reserved {found.reserved} equal the sums of "
        f"{found.movements} movement{'' if found.movements == 1 else 's'} and the open reservations"
    )


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
    from avatargen.output import print_table

    columns = ["time", "kind", "amount", "model", "job", "note"]
    table = [
        [
            row["created_at"][:19],
            row["kind"],
            str(row["amount"]),
            (row["model"] or "").removeprefix("avatar-generator:"),
            (row["job_key"] or "")[:12],  # a prefix `avatargen history show` accepts
            row["note"] or "",
        ]
        for row in rows
    ]
    print_table("credit movements", columns, table, right=("amount",), detail=("note",))
