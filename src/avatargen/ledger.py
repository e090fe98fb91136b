"""The credit ledger and job history: one SQLite file (WAL) in the data folder.

Credits move in four kinds of rows: grant (+), reserve (-), refund (+ back), settle (marks a
reservation spent). So:
    balance  = grants - reserves + refunds         (what can still be reserved)
    reserved = reserves - settles - refunds         (held by running jobs)
    spent    = settles
A reservation is one BEGIN IMMEDIATE transaction that checks the balance first, so several
processes sharing the file can never take the balance below zero.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatargen.errors import ConfigError, CreditsError, LimitError

DEFAULT_STARTER_CREDITS = 100
BUSY_TIMEOUT_S = 30.0
MAX_GRANT = 10**12


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


# ---------------------------------------------------------------- migrations
# Named functions, applied once each and recorded in _migrations (never edit one that shipped).
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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [m001_initial]


def default_path() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "ledger.db"


@dataclass(frozen=True)
class Totals:
    balance: int
    reserved: int
    spent_today: int
    spent_month: int
    spent_today_by_model: dict[str, int]
    spent_month_by_model: dict[str, int]


class Ledger:
    """Thread-safe: one connection per Ledger, guarded by a lock (calls are short)."""

    def __init__(self, path: Path | None = None, starter_credits: int | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _enable_wal(self._db)
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate(starter_credits)
        except sqlite3.DatabaseError as exc:
            # A damaged or unreadable file: one line naming it, not a traceback.
            raise ConfigError(
                f"{self.path}: the credit ledger cannot be opened ({exc})",
                "restore it from a backup, or move it away to start a new ledger (its history is lost)",
            ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken before anything is read."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _migrate(self, starter_credits: int | None) -> None:
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            fresh = not done
            for migration in MIGRATIONS:
                if migration.__name__ not in done:
                    migration(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, _now()))
            if fresh:
                amount = DEFAULT_STARTER_CREDITS if starter_credits is None else starter_credits
                if amount:
                    self._move(db, "grant", amount, note="starter balance")

    def applied_migrations(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM _migrations ORDER BY name")]

    # ------------------------------------------------------------ credits
    @staticmethod
    def _move(db, kind: str, amount: int, job_key=None, model=None, batch_id=None, note=None) -> None:
        db.execute(
            "INSERT INTO movements (kind, amount, job_key, model, batch_id, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, amount, job_key, model, batch_id, note, _now()),
        )

    @staticmethod
    def _balance(db) -> int:
        row = db.execute(
            "SELECT COALESCE(SUM(CASE kind WHEN 'grant' THEN amount WHEN 'reserve' THEN -amount "
            "WHEN 'refund' THEN amount ELSE 0 END), 0) FROM movements"
        ).fetchone()
        return int(row[0])

    def balance(self) -> int:
        with self._lock:
            return self._balance(self._db)

    def grant(self, amount: int, note: str | None = None) -> int:
        if amount <= 0 or amount > MAX_GRANT:
            # The upper bound keeps sums inside SQLite's 64-bit integers.
            raise CreditsError(f"cannot add {amount} credits", f"give a whole number from 1 to {MAX_GRANT}")
        with self._tx() as db:
            self._move(db, "grant", amount, note=note or "added")
            return self._balance(db)

    def reserve(self, job_key: str, model: str, amount: int, batch_id: str | None = None) -> None:
        """Hold `amount` credits for one job, or raise CreditsError; never goes below zero."""
        with self._tx() as db:
            existing = db.execute("SELECT state FROM reservations WHERE job_key = ?", (job_key,)).fetchone()
            if existing and existing["state"] == "open":
                raise CreditsError(
                    f"job {job_key[:12]} already holds a reservation (another run is doing it)"
                )
            available = self._balance(db)
            if available < amount:
                raise CreditsError(
                    f"not enough credits: {amount} needed, {available} available",
                    "add some with `avatargen credits add N`",
                )
            self._move(db, "reserve", amount, job_key, model, batch_id, "reserved")
            db.execute(
                "INSERT OR REPLACE INTO reservations (job_key, model, amount, batch_id, pid, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'open', ?)",
                (job_key, model, amount, batch_id, os.getpid(), _now()),
            )

    def adjust_reservation(self, job_key: str, model: str, amount: int) -> None:
        """Move an open reservation to another model/cost (a fallback): refund or take the difference."""
        with self._tx() as db:
            row = db.execute(
                "SELECT amount, batch_id FROM reservations WHERE job_key = ? AND state = 'open'", (job_key,)
            ).fetchone()
            if row is None:
                raise CreditsError(f"job {job_key[:12]} has no open reservation")
            diff = amount - row["amount"]
            if diff > 0:
                available = self._balance(db)
                if available < diff:
                    raise CreditsError(
                        f"not enough credits for the fallback: {diff} more needed, {available} left"
                    )
                self._move(db, "reserve", diff, job_key, model, row["batch_id"], "fallback costs more")
            elif diff < 0:
                self._move(db, "refund", -diff, job_key, model, row["batch_id"], "fallback costs less")
            db.execute(
                "UPDATE reservations SET model = ?, amount = ? WHERE job_key = ?", (model, amount, job_key)
            )

    def _close_reservation(self, db, job_key: str, state: str, note: str) -> int:
        row = db.execute(
            "SELECT model, amount, batch_id FROM reservations WHERE job_key = ? AND state = 'open'",
            (job_key,),
        ).fetchone()
        if row is None:
            return 0
        kind = "settle" if state == "settled" else "refund"
        self._move(db, kind, row["amount"], job_key, row["model"], row["batch_id"], note)
        db.execute(
            "UPDATE reservations SET state = ?, closed_at = ? WHERE job_key = ?", (state, _now(), job_key)
        )
        return int(row["amount"])

    def settle(self, job_key: str, note: str = "generated") -> int:
        with self._tx() as db:
            return self._close_reservation(db, job_key, "settled", note)

    def refund(self, job_key: str, note: str = "failed") -> int:
        with self._tx() as db:
            return self._close_reservation(db, job_key, "refunded", note)

    def reconcile(self, output_has_key: Callable[[str, str], bool]) -> tuple[int, int]:
        """Close reservations left open by processes that died: settled when the job's output
        exists and carries its job key, refunded otherwise. Returns (settled, refunded)."""
        settled = refunded = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT r.job_key, r.pid, j.output_path FROM reservations r "
                "LEFT JOIN jobs j ON j.job_key = r.job_key WHERE r.state = 'open'"
            ).fetchall()
        for row in rows:
            if pid_alive(row["pid"]):
                continue
            with self._tx() as db:
                still_open = db.execute(
                    "SELECT 1 FROM reservations WHERE job_key = ? AND state = 'open'", (row["job_key"],)
                ).fetchone()
                if not still_open:
                    continue
                if row["output_path"] and output_has_key(row["output_path"], row["job_key"]):
                    credits = self._close_reservation(
                        db, row["job_key"], "settled", "reconciled: output exists"
                    )
                    db.execute(
                        "UPDATE jobs SET status = 'done', credits = ?, finished_at = COALESCE(finished_at, ?) "
                        "WHERE job_key = ?",
                        (credits, _now(), row["job_key"]),
                    )
                    settled += 1
                else:
                    self._close_reservation(db, row["job_key"], "refunded", "reconciled: run was killed")
                    db.execute(
                        "UPDATE jobs SET status = 'queued', error = 'interrupted' WHERE job_key = ? "
                        "AND status = 'running'",
                        (row["job_key"],),
                    )
                    refunded += 1
        return settled, refunded

    def held_elsewhere(self, job_key: str) -> bool:
        """True while another live process holds an open reservation for this job."""
        with self._lock:
            row = self._db.execute(
                "SELECT pid FROM reservations WHERE job_key = ? AND state = 'open'", (job_key,)
            ).fetchone()
        return bool(row) and row["pid"] != os.getpid() and pid_alive(row["pid"])

    def totals(self) -> Totals:
        now = datetime.now(UTC)
        day = now.date().isoformat()
        month = now.strftime("%Y-%m")
        with self._lock:
            db = self._db
            balance = self._balance(db)
            reserved = int(
                db.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE state = 'open'"
                ).fetchone()[0]
            )
            by_day = dict(
                db.execute(
                    "SELECT model, SUM(amount) FROM movements WHERE kind = 'settle' AND created_at >= ? GROUP BY model",
                    (day,),
                ).fetchall()
            )
            by_month = dict(
                db.execute(
                    "SELECT model, SUM(amount) FROM movements WHERE kind = 'settle' AND created_at >= ? GROUP BY model",
                    (month,),
                ).fetchall()
            )
        return Totals(balance, reserved, sum(by_day.values()), sum(by_month.values()), by_day, by_month)

    def movements(self, limit: int = 50, job_key: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if job_key:
                rows = self._db.execute(
                    "SELECT * FROM movements WHERE job_key = ? ORDER BY id DESC LIMIT ?", (job_key, limit)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM movements ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ requests (usage limits)
    def count_request(
        self, model: str, limit_total: int | None = None, limit_model: int | None = None
    ) -> None:
        """Count one HTTP attempt for today, refusing it (LimitError) when it would cross a limit."""
        day = _today()
        with self._tx() as db:
            if limit_total is not None:
                used = db.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM requests WHERE day = ?", (day,)
                ).fetchone()[0]
                if used >= limit_total:
                    raise LimitError(
                        f"daily request limit reached: {used} of {limit_total} (limits.daily_requests)",
                        "resume tomorrow with the same command, or raise it: "
                        "avatargen config set limits.daily_requests N",
                    )
            if limit_model is not None:
                row = db.execute(
                    "SELECT count FROM requests WHERE day = ? AND model = ?", (day, model)
                ).fetchone()
                used = row[0] if row else 0
                if used >= limit_model:
                    raise LimitError(
                        f"daily request limit for {model} reached: {used} of {limit_model} "
                        f"(limits.models.{model})",
                        "resume tomorrow with the same command, or raise it in config",
                    )
            db.execute(
                "INSERT INTO requests (day, model, count) VALUES (?, ?, 1) "
                "ON CONFLICT (day, model) DO UPDATE SET count = count + 1",
                (day, model),
            )

    def requests_today(self, model: str | None = None) -> int:
        with self._lock:
            if model:
                row = self._db.execute(
                    "SELECT count FROM requests WHERE day = ? AND model = ?", (_today(), model)
                ).fetchone()
                return int(row[0]) if row else 0
            return int(
                self._db.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM requests WHERE day = ?", (_today(),)
                ).fetchone()[0]
            )

    # ------------------------------------------------------------ batches and jobs
    def start_batch(self, batch_id: str, argv: list[str], cwd: str, output_dir: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO batches (id, created_at, argv, cwd, output_dir) VALUES (?, ?, ?, ?, ?)",
                (batch_id, _now(), json.dumps(argv), cwd, output_dir),
            )

    def finish_batch(self, batch_id: str, status: str, summary: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, _now(), json.dumps(summary), batch_id),
            )

    def batch(self, batch_id: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            if batch_id:
                row = self._db.execute(
                    "SELECT * FROM batches WHERE id = ? OR id LIKE ? ORDER BY created_at DESC LIMIT 1",
                    (batch_id, batch_id + "%"),
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT * FROM batches ORDER BY created_at DESC, rowid DESC LIMIT 1"
                ).fetchone()
        return dict(row) if row else None

    def job(self, job_key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_key = ?", (job_key,)).fetchone()
        return dict(row) if row else None

    def find_job(self, ref: str) -> dict[str, Any] | None:
        """A job by numeric id or by a prefix of its key (a hex key may start with digits only)."""
        with self._lock:
            row = None
            if ref.isdigit():
                row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (int(ref),)).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE job_key LIKE ? ORDER BY id DESC LIMIT 1", (ref + "%",)
                ).fetchone()
        return dict(row) if row else None

    def enqueue(self, job: dict[str, Any], batch_id: str) -> str:
        """Record a planned job (or adopt an earlier one into this batch); returns its status."""
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE job_key = ?", (job["job_key"],)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO jobs (job_key, batch_id, input_path, input_hash, pose, model, params, seed, "
                    "status, output_path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (
                        job["job_key"],
                        batch_id,
                        job["input_path"],
                        job["input_hash"],
                        job["pose"],
                        job["model"],
                        json.dumps(job["params"]),
                        job["seed"],
                        job["output_path"],
                        _now(),
                    ),
                )
                return "queued"
            db.execute(
                "UPDATE jobs SET batch_id = ?, input_path = ?, output_path = ? WHERE job_key = ?",
                (batch_id, job["input_path"], job["output_path"], job["job_key"]),
            )
            return row["status"]

    def mark_running(self, job_key: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, error = NULL WHERE job_key = ?",
                (_now(), job_key),
            )

    def mark_done(
        self, job_key: str, model_used: str, attempts: int, seconds: float, note: str = "generated"
    ) -> int:
        """Settle the reservation and record the job as done, in one transaction."""
        with self._tx() as db:
            credits = self._close_reservation(db, job_key, "settled", note)
            db.execute(
                "UPDATE jobs SET status = 'done', model_used = ?, attempts = attempts + ?, seconds = ?, "
                "credits = ?, finished_at = ?, error = NULL WHERE job_key = ?",
                (model_used, attempts, seconds, credits, _now(), job_key),
            )
            return credits

    def mark_failed(
        self,
        job_key: str,
        error: str,
        attempts: int = 0,
        status: str = "failed",
        model_used: str | None = None,
    ) -> int:
        """Refund the reservation and record why, in one transaction. status 'queued' = try again later."""
        with self._tx() as db:
            refunded = self._close_reservation(db, job_key, "refunded", error[:200])
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, attempts = attempts + ?, model_used = COALESCE(?, model_used), "
                "finished_at = ? WHERE job_key = ?",
                (status, error, attempts, model_used, _now(), job_key),
            )
            return refunded

    def mark_skipped(self, job_key: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'skipped', error = ?, finished_at = ? WHERE job_key = ?",
                (reason, _now(), job_key),
            )

    def jobs(
        self, status: str | None = None, batch_id: str | None = None, limit: int | None = 50
    ) -> list[dict]:
        query = "SELECT * FROM jobs WHERE 1 = 1"
        args: list[Any] = []
        if status:
            query += " AND status = ?"
            args.append(status)
        if batch_id:
            query += " AND batch_id = ?"
            args.append(batch_id)
        query += " ORDER BY COALESCE(finished_at, created_at) DESC, id DESC"
        if limit:
            query += " LIMIT ?"
            args.append(limit)
        with self._lock:
            return [dict(r) for r in self._db.execute(query, args).fetchall()]

    def model_stats(self, model: str, last: int = 100) -> dict[str, Any] | None:
        """Recent success rate and median latency of one model (for `avatargen status`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, seconds FROM jobs WHERE COALESCE(model_used, model) = ? "
                "AND status IN ('done', 'failed') ORDER BY finished_at DESC LIMIT ?",
                (model, last),
            ).fetchall()
        if not rows:
            return None
        done = [r["seconds"] for r in rows if r["status"] == "done" and r["seconds"] is not None]
        median = statistics.median(done) if done else None  # even count: mean of the middle two
        return {
            "jobs": len(rows),
            "success_rate": round(sum(1 for r in rows if r["status"] == "done") / len(rows), 3),
            "median_seconds": round(median, 2) if median is not None else None,
        }


def _enable_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL. Processes racing to create a new ledger can get SQLITE_BUSY here
    at once, without the busy timeout being applied: retry for up to that long."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """Whether a process still runs (POSIX). Our own pid counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_ledger(starter_credits: int | None = None) -> Ledger:
    """The user's ledger, with the configured starter balance for a new one."""
    if starter_credits is None:
        from avatargen.settings import get_value

        configured = get_value("credits.starter")
        starter_credits = int(configured) if configured is not None else None
    return Ledger(default_path(), starter_credits)
