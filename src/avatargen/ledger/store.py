"""The ledger's SQLite file: connection (WAL, busy timeout), transactions, migrations."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from avatargen.errors import ConfigError, OutputError
from avatargen.ledger.migrations import MIGRATIONS

DEFAULT_STARTER_CREDITS = 100
BUSY_TIMEOUT_S = 30.0


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def default_path() -> Path:
    from avatargen.settings import ledger_path

    return ledger_path()


class Store:
    """Thread-safe: one connection per ledger, guarded by a lock (calls are short).

    Every SQLite failure leaves as one avatargen error naming the file: a file that cannot be
    written (read-only, disk full, I/O error) is an OutputError (exit 74), a damaged one a
    ConfigError (exit 3). A transaction that fails is rolled back first, so nothing is half
    written; reservations a stopped run could not refund are reconciled by the next run."""

    def __init__(self, path: Path | None = None, starter_credits: int | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._create(starter_credits)
            elif self.path.stat().st_size == 0:
                # New ledgers are built aside and linked in whole, so an empty file is damage
                # (a full disk, a truncation): recreating it would hand out starter credits again.
                raise ConfigError(
                    f"{self.path}: the credit ledger is empty (0 bytes): its credits and history are gone",
                    f"restore it from a backup, or remove it to start a new ledger: rm '{self.path}'",
                )
            self._db = _connect(self.path)
            self._migrate(starter_credits)
        except sqlite3.Error as exc:
            raise self._failure(exc) from None
        except OSError as exc:
            raise self._failure(exc) from None

    def _create(self, starter_credits: int | None) -> None:
        """Build a new ledger in a temporary file and link it into place: other processes see
        either no ledger or a whole one, never an empty file."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.new")
        try:
            self._db = _connect(tmp)
            try:
                self._migrate(starter_credits)
            finally:
                self._db.close()  # checkpoints the WAL into the file
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created it first: use theirs
            except OSError:
                # No hard links on this file system (exFAT, some network shares): rename, unless
                # another process got there first.
                if not self.path.exists():
                    os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)

    def _failure(self, exc: BaseException) -> Exception:
        code = getattr(exc, "sqlite_errorcode", None)
        cause = getattr(exc, "strerror", None) or str(exc)
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return ConfigError(
                f"{self.path}: the credit ledger cannot be opened ({cause})",
                "restore it from a backup, or move it away to start a new ledger (its history is lost)",
            )
        return OutputError(
            f"{self.path}: the credit ledger cannot be written ({cause})",
            "free disk space or make the file and its folder writable, then run the same command again; "
            "credits a stopped run still held are settled or refunded then",
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads, under the lock, with failures reported as ours."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise self._failure(exc) from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken before anything is read."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failure(exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    with suppress(sqlite3.Error):  # a failed COMMIT may already have rolled back
                        self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._failure(exc) from None
                raise

    def _migrate(self, starter_credits: int | None) -> None:
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            unknown = sorted(done - {m.__name__ for m in MIGRATIONS})
            if unknown:
                # A newer avatargen changed this ledger in ways this one does not know: using it
                # could miscount credits. Nothing is written (the transaction rolls back).
                from avatargen import __version__

                raise ConfigError(
                    f"{self.path}: the credit ledger was written by a newer avatargen (migration "
                    f"{unknown[-1]}; this is avatargen {__version__})",
                    "upgrade avatargen (pip install -U avatargen), or point AVATARGEN_HOME at another folder",
                )
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
        with self._read():
            return [r[0] for r in self._db.execute("SELECT name FROM _migrations ORDER BY name")]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _enable_wal(db)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


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
