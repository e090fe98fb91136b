"""`avatargen users ...`, `avatargen api --migrate-only`, `avatargen worker`: the commands
of the service (issue 21), each with --json, walked through the real entry point."""

from __future__ import annotations

import json

import pytest

from cli_helpers import run_main

pytest.importorskip("starlette")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATARGEN_HOME", str(tmp_path))
    return tmp_path


def cli(monkeypatch, capsys, *args):
    code, out, err = run_main(monkeypatch, capsys, *args)
    return code, out, err


def test_users_walk(home, monkeypatch, capsys):
    code, out, _ = cli(
        monkeypatch, capsys, "users", "add", "alice", "--tier", "basic", "--credits", "100", "--json"
    )
    assert code == 0
    made = json.loads(out)
    token = made["token"]
    assert made["credits"] == {"balance": 100, "reserved": 0} and token.startswith("avg_")
    code, out, err = cli(monkeypatch, capsys, "users", "add", "alice", "--json")
    assert code == 2 and "exists already" in err and not out
    code, out, _ = cli(monkeypatch, capsys, "users", "list", "--json")
    assert [u["name"] for u in json.loads(out)] == ["admin", "alice"]
    assert token not in out
    code, out, _ = cli(monkeypatch, capsys, "users", "set-tier", "alice", "pro", "--json")
    assert json.loads(out)["tier"] == "pro"
    code, out, _ = cli(monkeypatch, capsys, "users", "credits", "add", "alice", "50", "--json")
    assert json.loads(out)["credits"]["balance"] == 150
    code, out, _ = cli(monkeypatch, capsys, "users", "show", "alice", "--json")
    assert json.loads(out)["tier"] == "pro" and "token" not in json.loads(out)
    code, out, _ = cli(monkeypatch, capsys, "users", "revoke", "alice", "--json")
    assert json.loads(out)["revoked"] is True
    code, out, _ = cli(monkeypatch, capsys, "users", "rotate", "alice", "--json")
    rotated = json.loads(out)
    assert rotated["revoked"] is False and rotated["token"] != token
    # Plain output prints the token once, with the warning that it is shown only now.
    code, out, _ = cli(monkeypatch, capsys, "users", "rotate", "alice")
    assert "shown once" in out
    # Never the token in the database.
    from avatargen.service.accounts import Accounts
    from avatargen.service.db import Database

    db = Database(None, home / "data")
    assert Accounts(db).authenticate(rotated["token"]) is None  # rotated again since
    raw = b"".join(p.read_bytes() for p in (home / "data").glob("service.db*"))
    assert rotated["token"].encode() not in raw and token.encode() not in raw
    db.close()


def test_users_errors(home, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "users", "show", "nobody")
    assert code == 2 and "no user named 'nobody'" in err
    code, _, err = cli(monkeypatch, capsys, "users", "add", "bad name!")
    assert code == 2 and "not allowed" in err
    code, _, err = cli(monkeypatch, capsys, "users", "add", "x", "--tier", "gold")
    assert code == 2 and "unknown tier" in err
    code, _, err = cli(monkeypatch, capsys, "users", "credits", "add", "nobody", "0")
    assert code != 0


def test_migrate_only_and_a_newer_database(home, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "api", "--migrate-only", "--json")
    assert code == 0 and json.loads(out)["migrations"] == ["s001_accounts_queue_ledger"]
    from avatargen.service.db import Database

    db = Database(None, home / "data")
    with db.tx() as cur:
        cur.execute("INSERT INTO svc_migrations (name, applied_at) VALUES ('s002_newer', 0)")
    db.close()
    code, _, err = cli(monkeypatch, capsys, "api", "--migrate-only")
    assert code == 3 and "s002_newer" in err and "upgrade avatargen" in err


def test_bad_database_url(home, monkeypatch, capsys):
    code, _, err = cli(monkeypatch, capsys, "users", "list", "--database", "mysql://x")
    assert code == 3 and "--database" in err


def test_the_local_ledger_is_untouched(home, monkeypatch, capsys):
    cli(monkeypatch, capsys, "users", "add", "alice", "--credits", "100")
    code, out, _ = cli(monkeypatch, capsys, "credits", "--json")
    assert code == 0 and json.loads(out)["balance"] == 100  # the CLI's own starter balance, as before
