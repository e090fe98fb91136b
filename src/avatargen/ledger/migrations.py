"""The ledger's schema, as named migrations: each applied once and recorded in _migrations.
Never edit one that shipped: add the next."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the surrounding transaction: run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE movements (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'settle', 'refund')),
            amount INTEGER NOT NULL CHECK (amount >= 0),
            job_key TEXT,
            model TEXT,
            batch_id TEXT,
            note TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX movements_job ON movements (job_key);
        CREATE INDEX movements_kind_time ON movements (kind, created_at);
        CREATE TABLE reservations (
            job_key TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            amount INTEGER NOT NULL,
            batch_id TEXT,
            pid INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'refunded')),
            created_at TEXT NOT NULL,
            closed_at TEXT
        );
        CREATE INDEX reservations_open ON reservations (state);
        CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            argv TEXT NOT NULL,
            cwd TEXT NOT NULL,
            output_dir TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            summary TEXT
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            job_key TEXT NOT NULL UNIQUE,
            batch_id TEXT NOT NULL,
            input_path TEXT NOT NULL,
            input_hash TEXT NOT NULL,
            pose TEXT NOT NULL,
            model TEXT NOT NULL,
            model_used TEXT,
            params TEXT NOT NULL,
            seed INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'skipped')),
            output_path TEXT NOT NULL,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            credits INTEGER,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            seconds REAL
        );
        CREATE INDEX jobs_batch ON jobs (batch_id, status);
        CREATE INDEX jobs_model_time ON jobs (model_used, finished_at);
        CREATE TABLE requests (
            day TEXT NOT NULL,
            model TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, model)
        );
        """,
    )


def m002_retry_and_copies(db: sqlite3.Connection) -> None:
    """How a batch ran (for `retry`), which failures can never succeed, and every place an
    output was written (a finished job re-run into another folder is copied there)."""
    _run_script(
        db,
        """
        ALTER TABLE batches ADD COLUMN settings TEXT;
        ALTER TABLE jobs ADD COLUMN permanent INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE job_outputs (
            job_key TEXT NOT NULL,
            path TEXT NOT NULL,
            batch_id TEXT,
            copied_from TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (job_key, path)
        );
        """,
    )


# What one movement adds to the balance (what can still be reserved) and to what running jobs
# hold: the trigger of m003 and the sums `credits --verify` compares it with. Part of a shipped
# migration once released: never change them, add a migration.
BALANCE_DELTA = "CASE {m}kind WHEN 'grant' THEN {m}amount WHEN 'reserve' THEN -{m}amount WHEN 'refund' THEN {m}amount ELSE 0 END"
RESERVED_DELTA = "CASE {m}kind WHEN 'reserve' THEN {m}amount WHEN 'grant' THEN 0 ELSE -{m}amount END"


def m003_running_totals(db: sqlite3.Connection) -> None:
    """The balance kept as a running total instead of summed over every movement on each
        reservation (that made a batch O(N^2) in the ledger's size). A trigger updates it in the
        transaction that inserts each movement, so every writer keeps it right, an older avatargen
        included; a ledger that existed before starts from the sum of its history. `credits --verify`
        checks it against the sum. Plus the indexes the history listings (`history`, `status`,
    `retry`) need to read only the rows they show; jobs_model_time served no query; open
    reservations get a partial index (a few rows, however long the history), which the planner
    keeps choosing after ANALYZE, unlike an index on a state that nearly every row shares."""
    _run_script(
        db,
        f"""
        CREATE TABLE running_totals (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            balance INTEGER NOT NULL,
            reserved INTEGER NOT NULL
        );
        INSERT INTO running_totals (id, balance, reserved)
            SELECT 1, COALESCE(SUM({BALANCE_DELTA.format(m="")}), 0),
                   COALESCE(SUM({RESERVED_DELTA.format(m="")}), 0)
            FROM movements;
        CREATE INDEX jobs_recent ON jobs (COALESCE(finished_at, created_at), id);
        CREATE INDEX jobs_status_recent ON jobs (status, COALESCE(finished_at, created_at), id);
        CREATE INDEX jobs_model_recent ON jobs (COALESCE(model_used, model), finished_at);
        DROP INDEX jobs_model_time;
        CREATE INDEX batches_recent ON batches (created_at);
        DROP INDEX reservations_open;
        CREATE INDEX reservations_open ON reservations (job_key) WHERE state = 'open';
        """,
    )
    # One statement: its body holds semicolons.
    db.execute(
        "CREATE TRIGGER movements_running_totals AFTER INSERT ON movements BEGIN "
        f"UPDATE running_totals SET balance = balance + {BALANCE_DELTA.format(m='NEW.')}, "
        f"reserved = reserved + {RESERVED_DELTA.format(m='NEW.')} WHERE id = 1; END"
    )


def m004_provider_requests(db: sqlite3.Connection) -> None:
    """The provider's own id of a job submitted to it (fal-ai's request_id, a replicate
    prediction id), kept with the job's reservation as soon as the submit answers: a run killed
    while the provider works, or a `retry`, polls that job again instead of paying for a second
    one. It outlives the reservation a killed run's reconciliation refunds (a JSON object)."""
    _run_script(db, "ALTER TABLE reservations ADD COLUMN provider_request TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_retry_and_copies,
    m003_running_totals,
    m004_provider_requests,
]
