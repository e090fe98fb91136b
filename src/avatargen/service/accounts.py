"""Accounts: users with a tier and a credit balance, reached by a bearer token.

A token is 32 random bytes (secrets.token_urlsafe), shown once and stored only as its SHA-256:
the database never holds anything that opens an account. A request's token is hashed and
looked up by that hash (an indexed equality, so its time does not depend on how much of a
stored token matches), then compared again with hmac.compare_digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from avatargen.catalog import TIERS
from avatargen.errors import CreditsError, UsageError
from avatargen.service.db import Cursor, Database

TOKEN_PREFIX = "avg_"
MAX_GRANT = 10**12
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    tier: str
    is_admin: bool
    balance: int
    reserved: int
    revoked: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            int(row["id"]),
            row["name"],
            row["tier"],
            bool(row["is_admin"]),
            int(row["balance"]),
            int(row["reserved"]),
            row["revoked_at"] is not None,
        )

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "admin": self.is_admin,
            "credits": {"balance": self.balance, "reserved": self.reserved},
            "revoked": self.revoked,
        }


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(
            f"user name {name!r} is not allowed",
            "use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit",
        )
    return name


def check_tier(tier: str) -> str:
    if tier not in TIERS:
        raise UsageError(f"unknown tier '{tier}'", f"use one of {', '.join(TIERS)}")
    return tier


def check_amount(amount: int) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0 or amount > MAX_GRANT:
        raise CreditsError(f"cannot add {amount} credits", f"give a whole number from 1 to {MAX_GRANT}")
    return amount


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------ lookups
    def authenticate(self, token: str | None) -> User | None:
        """The live user a bearer token belongs to, or None."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        with self.db.read() as cur:
            row = cur.one("SELECT * FROM svc_users WHERE token_hash = ?", (digest,))
        if row is None or not hmac.compare_digest(row["token_hash"], digest) or row["revoked_at"] is not None:
            return None
        return User.from_row(row)

    def get(self, name: str) -> User | None:
        with self.db.read() as cur:
            row = cur.one("SELECT * FROM svc_users WHERE name = ?", (name,))
        return User.from_row(row) if row else None

    def by_id(self, user_id: int) -> User | None:
        with self.db.read() as cur:
            row = cur.one("SELECT * FROM svc_users WHERE id = ?", (user_id,))
        return User.from_row(row) if row else None

    def require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UsageError(f"no user named '{name}'", "see `avatargen users list`")
        return user

    def list(self) -> list[User]:
        with self.db.read() as cur:
            return [User.from_row(r) for r in cur.all("SELECT * FROM svc_users ORDER BY name")]

    # ------------------------------------------------------------ changes
    def add(self, name: str, tier: str = "free", credits: int = 0, admin: bool = False) -> tuple[User, str]:
        """A new user and their token (the only time it exists in the clear)."""
        check_name(name)
        check_tier(tier)
        if credits:
            check_amount(credits)
        token = new_token()
        with self.db.tx() as cur:
            if cur.one("SELECT id FROM svc_users WHERE name = ?", (name,)):
                raise UsageError(
                    f"a user named '{name}' exists already", "pick another name, or `users rotate` its token"
                )
            row = cur.one(
                "INSERT INTO svc_users (name, tier, token_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?) "
                "RETURNING id",
                (name, tier, token_hash(token), int(admin), time.time()),
            )
            if credits:
                self._grant(cur, int(row["id"]), credits, "starter credits")
        return self.require(name), token

    def set_tier(self, name: str, tier: str) -> User:
        check_tier(tier)
        with self.db.tx() as cur:
            if cur.execute("UPDATE svc_users SET tier = ? WHERE name = ?", (tier, name)).rowcount == 0:
                raise UsageError(f"no user named '{name}'", "see `avatargen users list`")
        return self.require(name)

    def add_credits(self, name: str, amount: int, note: str = "added") -> User:
        check_amount(amount)
        with self.db.tx() as cur:
            row = cur.one("SELECT id FROM svc_users WHERE name = ?" + cur.for_update, (name,))
            if row is None:
                raise UsageError(f"no user named '{name}'", "see `avatargen users list`")
            self._grant(cur, int(row["id"]), amount, note)
        return self.require(name)

    @staticmethod
    def _grant(cur: Cursor, user_id: int, amount: int, note: str) -> None:
        cur.execute(
            "INSERT INTO svc_movements (user_id, kind, amount, note, created_at) VALUES (?, 'grant', ?, ?, ?)",
            (user_id, amount, note, time.time()),
        )
        cur.execute("UPDATE svc_users SET balance = balance + ? WHERE id = ?", (amount, user_id))

    def revoke(self, name: str) -> User:
        with self.db.tx() as cur:
            if (
                cur.execute(
                    "UPDATE svc_users SET revoked_at = ? WHERE name = ?", (time.time(), name)
                ).rowcount
                == 0
            ):
                raise UsageError(f"no user named '{name}'", "see `avatargen users list`")
        return self.require(name)

    def rotate(self, name: str) -> tuple[User, str]:
        """A new token for a user (the old one stops working at once); un-revokes them."""
        token = new_token()
        with self.db.tx() as cur:
            changed = cur.execute(
                "UPDATE svc_users SET token_hash = ?, revoked_at = NULL WHERE name = ?",
                (token_hash(token), name),
            ).rowcount
            if changed == 0:
                raise UsageError(f"no user named '{name}'", "see `avatargen users list`")
        return self.require(name), token

    def ensure_admin(self) -> str | None:
        """The admin account, created on first start: its token (once), or None if it exists."""
        if self.get("admin") is not None:
            return None
        try:
            return self.add("admin", tier="enterprise", admin=True)[1]
        except UsageError:  # another process created it a moment ago
            return None
