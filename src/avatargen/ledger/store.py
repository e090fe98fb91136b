"""The ledger's SQLite file: connection (WAL, busy timeout), transactions, migrations."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from avatargen.errors import ConfigError
from avatargen.ledger.migrations import MIGRATIONS

DEFAULT_STARTER_CREDITS = 100
BUSY_TIMEOUT_S = 30.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def default_path() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "ledger.db"


class Store:
    """Thread-safe: one connection per ledger, guarded by a lock (calls are short)."""

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

    def __enter__(self) -> Store:
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
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, now()))
            if fresh:
                amount = DEFAULT_STARTER_CREDITS if starter_credits is None else starter_credits
                if amount:
                    self._grant_starter(db, amount)

    def applied_migrations(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM _migrations ORDER BY name")]


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
