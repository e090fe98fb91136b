"""`avatargen users add|list|show|set-tier|credits add|revoke|rotate`: the service's accounts.

A token is printed once, by `add` and `rotate`, and stored only hashed."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen.cli.api import DatabaseOpt, DataDirOpt
from avatargen.cli.options import Json

app = typer.Typer(
    help="Accounts of the avatar service (avatargen api): tiers, credits, tokens.", no_args_is_help=True
)
credits_app = typer.Typer(help="A user's credits.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")

Name = Annotated[str, typer.Argument(help="The user's name.")]


def _accounts(database, data_dir):
    from avatargen.cli.api import _setup
    from avatargen.service.accounts import Accounts

    _config, _cfg, db = _setup(database, data_dir)
    accounts = Accounts(db)
    accounts.ensure_admin()  # so `users rotate admin` gives an admin token before the first start
    return accounts


def _show(user, json_: bool, token: str | None = None) -> None:
    from avatargen.output import emit_json, print_table

    data = user.public()
    if json_:
        emit_json({**data, **({"token": token} if token else {})})
        return
    rows = [["name", user.name], ["tier", user.tier], ["balance", str(user.balance)], ["reserved", str(user.reserved)],
            ["admin", "yes" if user.is_admin else "no"], ["revoked", "yes" if user.revoked else "no"]]  # fmt: skip
    print_table(f"user {user.name}", ["what", "value"], rows, show_header=False)
    if token:
        # The one time the token exists in the clear: on stdout only, never in a log or the database.
        print(f"token (shown once, keep it secret): {token}", flush=True)


@app.command("add")
def add(
    name: Name,
    tier: Annotated[str, typer.Option("--tier", help="free, basic, pro or enterprise.")] = "free",
    credits: Annotated[int, typer.Option("--credits", min=0, help="Starting credits.")] = 0,
    admin: Annotated[bool, typer.Option("--admin", help="May use the admin routes.")] = False,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    json_: Json = False,
) -> None:
    """Create a user; prints their token once."""
    user, token = _accounts(database, data_dir).add(name, tier, credits, admin)
    _show(user, json_, token)


@app.command("list")
def list_(database: DatabaseOpt = None, data_dir: DataDirOpt = None, json_: Json = False) -> None:
    """Every user with tier and credits."""
    from avatargen.output import emit_json, print_table

    users = _accounts(database, data_dir).list()
    if json_:
        emit_json([u.public() for u in users])
        return
    rows = [
        [
            u.name,
            u.tier,
            str(u.balance),
            str(u.reserved),
            "yes" if u.is_admin else "",
            "yes" if u.revoked else "",
        ]
        for u in users
    ]
    print_table("users", ["name", "tier", "balance", "reserved", "admin", "revoked"], rows)


@app.command("show")
def show(name: Name, database: DatabaseOpt = None, data_dir: DataDirOpt = None, json_: Json = False) -> None:
    """One user."""
    _show(_accounts(database, data_dir).require(name), json_)


@app.command("set-tier")
def set_tier(
    name: Name,
    tier: Annotated[str, typer.Argument(help="free, basic, pro or enterprise.")],
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    json_: Json = False,
) -> None:
    """Change a user's tier."""
    _show(_accounts(database, data_dir).set_tier(name, tier), json_)


@credits_app.command("add")
def credits_add(
    name: Name,
    amount: Annotated[int, typer.Argument(help="Credits to add.")],
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    json_: Json = False,
) -> None:
    """Add credits to a user's balance."""
    _show(_accounts(database, data_dir).add_credits(name, amount), json_)


@app.command("revoke")
def revoke(
    name: Name, database: DatabaseOpt = None, data_dir: DataDirOpt = None, json_: Json = False
) -> None:
    """Stop a user's token working (their queued jobs still run; `rotate` gives a new token)."""
    _show(_accounts(database, data_dir).revoke(name), json_)


@app.command("rotate")
def rotate(
    name: Name, database: DatabaseOpt = None, data_dir: DataDirOpt = None, json_: Json = False
) -> None:
    """A new token for a user (printed once); the old one stops working."""
    user, token = _accounts(database, data_dir).rotate(name)
    _show(user, json_, token)
