"""The service's schema as named migrations, applied once each and recorded in
`svc_migrations`, on SQLite and on PostgreSQL alike. Never edit one that shipped: add the next.

A database that records a migration this avatargen does not know was migrated by a newer
version: it is refused rather than written with an older idea of the schema.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from avatargen.errors import ConfigError
from avatargen.service.db import Cursor, Database


def _script(cur: Cursor, script: str) -> None:
    ident = "BIGSERIAL PRIMARY KEY" if cur.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    for statement in script.replace("{ID}", ident).split(";"):
        if statement.strip():
            cur.execute(statement)


# The first schema: users with a tier and a running balance; credit movements keyed by
# generation; the durable queue (generations) with its lease and its reservation; uploads;
# daily counters; workers; settings.
_S001_SCHEMA = """
        CREATE TABLE svc_users (
            id {ID},
            name TEXT NOT NULL UNIQUE,
            tier TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            is_admin INTEGER NOT NULL DEFAULT 0,
            balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
            reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            running INTEGER NOT NULL DEFAULT 0,
            pending_hi INTEGER NOT NULL DEFAULT 0,
            pending_lo INTEGER NOT NULL DEFAULT 0,
            last_served DOUBLE PRECISION NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        );
        CREATE TABLE svc_movements (
            id {ID},
            user_id BIGINT NOT NULL REFERENCES svc_users (id),
            kind TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'settle', 'refund')),
            amount BIGINT NOT NULL CHECK (amount >= 0),
            generation_id TEXT,
            model TEXT,
            note TEXT,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX svc_movements_user ON svc_movements (user_id, id);
        CREATE INDEX svc_movements_gen ON svc_movements (generation_id);
        CREATE TABLE svc_photos (
            id TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES svc_users (id),
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            content_type TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX svc_photos_user ON svc_photos (user_id);
        CREATE TABLE svc_generations (
            id TEXT PRIMARY KEY,
            seq {ID_SEQ},
            user_id BIGINT NOT NULL REFERENCES svc_users (id),
            status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
            priority INTEGER NOT NULL DEFAULT 0,
            model_key TEXT NOT NULL,
            model_used TEXT,
            pose TEXT NOT NULL,
            quality TEXT NOT NULL,
            params TEXT NOT NULL,
            seed BIGINT NOT NULL,
            photo_id TEXT NOT NULL REFERENCES svc_photos (id),
            credit_cost BIGINT NOT NULL,
            reserved BIGINT NOT NULL,
            reservation TEXT NOT NULL CHECK (reservation IN ('open', 'settled', 'refunded')),
            lease_owner TEXT,
            lease_expires DOUBLE PRECISION,
            attempts INTEGER NOT NULL DEFAULT 0,
            claims INTEGER NOT NULL DEFAULT 0,
            error_code TEXT,
            error_message TEXT,
            output_path TEXT,
            webhook_url TEXT,
            waiting_for TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            completed_at DOUBLE PRECISION
        );
        CREATE INDEX svc_gen_pending ON svc_generations (user_id, priority, seq) WHERE status = 'pending';
        CREATE INDEX svc_gen_user_recent ON svc_generations (user_id, created_at, seq);
        CREATE INDEX svc_gen_status ON svc_generations (status, lease_expires);
        CREATE TABLE svc_daily (
            day TEXT NOT NULL,
            user_id BIGINT NOT NULL,
            model TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, user_id, model)
        );
        CREATE TABLE svc_workers (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            jobs_done INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE svc_settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
        """


def s001_accounts_queue_ledger(cur: Cursor) -> None:
    """Users with a tier and a running balance; credit movements keyed by generation; the
    durable queue (generations) with its lease and its reservation; uploads; daily counters."""
    # SQLite numbers seq as MAX(seq) + 1 under its write lock: that needs an index on seq.
    # PostgreSQL numbers it itself, and an index on seq alone would tempt its planner to walk
    # every user's jobs in seq order to find one user's next (see queue.claim).
    _script(cur, _S001_SCHEMA.replace("{ID_SEQ}", "BIGSERIAL" if cur.postgres else "INTEGER UNIQUE"))


MIGRATIONS: list[Callable[[Cursor], None]] = [s001_accounts_queue_ledger]


def applied(db: Database) -> list[str]:
    with db.read() as cur:
        if not _has_table(cur):
            return []
        return [r["name"] for r in cur.all("SELECT name FROM svc_migrations ORDER BY name")]


def _has_table(cur: Cursor) -> bool:
    if cur.postgres:
        return bool(cur.scalar("SELECT to_regclass('svc_migrations') IS NOT NULL AS present"))
    return (
        cur.one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'svc_migrations'") is not None
    )


def migrate(db: Database) -> list[str]:
    """Apply the missing migrations in one transaction; the names applied now."""
    known = [m.__name__ for m in MIGRATIONS]
    with db.tx() as cur:
        if cur.postgres:
            # Two services starting at once on a new database: one migrates, the other waits.
            cur.execute("SELECT pg_advisory_xact_lock(2126021)")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS svc_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        done = {r["name"] for r in cur.all("SELECT name FROM svc_migrations")}
        newer = sorted(done - set(known))
        if newer:
            raise ConfigError(
                f"{db.where}: the service database has migrations this avatargen does not know "
                f"({', '.join(newer)}): a newer avatargen migrated it",
                "upgrade avatargen on this machine (pip install -U 'avatargen[api]') before starting it",
            )
        ran = []
        for migration in MIGRATIONS:
            if migration.__name__ not in done:
                migration(cur)
                cur.execute(
                    "INSERT INTO svc_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.__name__, time.time()),
                )
                ran.append(migration.__name__)
        return ran
