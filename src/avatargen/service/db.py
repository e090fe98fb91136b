"""The service's database: SQLite (WAL, the default, one file in the data folder) or
PostgreSQL (psycopg 3, `--database postgresql://...`), behind one small interface.

SQL is written once with `?` placeholders; PostgreSQL gets them as `%s`. Each thread has its
own connection (WAL lets readers run beside the one writer; PostgreSQL connections are not
shared between threads). Writes are short transactions: `BEGIN IMMEDIATE` on SQLite takes the
write lock first, so a read-then-write never races; PostgreSQL uses row locks
(`FOR UPDATE`, `SKIP LOCKED` for claims) inside READ COMMITTED.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from avatargen.errors import ConfigError, OutputError

BUSY_TIMEOUT_S = 30.0


def default_path(data_dir: Path | None = None) -> Path:
    from avatargen.settings import data_dir as default_data_dir

    return (data_dir or default_data_dir()) / "service.db"


def redact_dsn(url: str) -> str:
    from avatargen.redact import redact_url

    return redact_url(url)


class Cursor:
    """What a transaction hands out: execute with `?` placeholders, rows as dicts."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self._conn = conn
        self.postgres = postgres

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        if self.postgres:
            return self._conn.execute(sql.replace("?", "%s"), params)
        return self._conn.execute(sql, params)

    def one(self, sql: str, params: tuple | list = ()) -> dict[str, Any] | None:
        row = self.execute(sql, params).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.execute(sql, params).fetchall()]

    def scalar(self, sql: str, params: tuple | list = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        if row is None:
            return None
        return row[next(iter(row.keys()))] if self.postgres else row[0]

    @property
    def skip_locked(self) -> str:
        """The claim's row lock: on SQLite the IMMEDIATE transaction already holds the file."""
        return " FOR UPDATE SKIP LOCKED" if self.postgres else ""

    @property
    def for_update(self) -> str:
        return " FOR UPDATE" if self.postgres else ""


class Database:
    """One database, one connection per thread, transactions as context managers."""

    def __init__(self, url: str | None = None, data_dir: Path | None = None) -> None:
        self.postgres = bool(url) and url.split(":", 1)[0] in ("postgresql", "postgres")
        if url and not self.postgres and not url.startswith("sqlite:"):
            raise ConfigError(
                f"--database {redact_dsn(url)}: not a database URL",
                "give postgresql://HOST/DB (the user as in any libpq URL), sqlite:///PATH, or leave it out for the data folder's SQLite file",
            )
        self.url = url
        if self.postgres:
            self.path = None
            try:
                import psycopg  # noqa: F401
            except ImportError:
                from avatargen.errors import MissingExtra

                raise MissingExtra("PostgreSQL needs psycopg", "pip install 'avatargen[api]'") from None
        else:
            self.path = Path(url.removeprefix("sqlite:///")) if url else default_path(data_dir)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # SQLite: this process's writers queue here, not in SQLite's busy handler, which sleeps
        # in steps of up to 100 ms (the tail of 50 uploads at once); other processes still wait
        # in the busy handler.
        self._writer = threading.RLock()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    @property
    def where(self) -> str:
        return redact_dsn(self.url) if self.postgres else str(self.path)

    # ------------------------------------------------------------ connections
    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect_pg() if self.postgres else self._connect_sqlite()
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _connect_sqlite(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:  # several processes switching a new file to WAL at once get BUSY at once
                try:
                    db.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            return db
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def _connect_pg(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.url, row_factory=dict_row, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: BaseException) -> Exception:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        from avatargen.redact import redact_text

        return OutputError(
            f"{self.where}: the service database failed ({redact_text(cause)})",
            "check that it is reachable and writable, then start again; jobs and credits are kept",
        )

    def bound(self) -> Database:
        """This database on this thread's connection, for a thread that works while this one
        waits: BatchRunner runs each job on a thread of its own, and a connection per such
        short-lived thread would be a new PostgreSQL connection (and a leaked one) per job."""
        import copy
        import types

        clone = copy.copy(self)
        clone._local = types.SimpleNamespace(conn=self._connection())
        return clone

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(Exception):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ transactions
    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One write transaction; rolled back on any exception."""
        if self.postgres:
            with self._tx() as cur:
                yield cur
        else:
            with self._writer, self._tx() as cur:
                yield cur

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        conn = self._connection()
        errors = self._errors()
        try:
            conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
        except errors as exc:
            self._drop(conn)
            raise self._failure(exc) from None
        try:
            yield Cursor(conn, self.postgres)
            conn.execute("COMMIT")
        except BaseException as exc:
            with suppress(Exception):
                conn.execute("ROLLBACK")
            if isinstance(exc, errors):
                if self.postgres and conn.closed:
                    self._drop(conn)
                raise self._failure(exc) from None
            raise

    @contextmanager
    def read(self) -> Iterator[Cursor]:
        """Reads outside a transaction (autocommit): each statement sees committed data."""
        conn = self._connection()
        try:
            yield Cursor(conn, self.postgres)
        except self._errors() as exc:
            if self.postgres and conn.closed:
                self._drop(conn)
            raise self._failure(exc) from None

    def _errors(self) -> tuple[type[BaseException], ...]:
        if self.postgres:
            import psycopg

            return (psycopg.Error,)
        return (sqlite3.Error,)

    def _drop(self, conn: Any) -> None:
        """A broken connection (server restarted) is replaced on the next call."""
        with suppress(Exception):
            conn.close()
        self._local.conn = None
        with self._all_lock, suppress(ValueError):
            self._all.remove(conn)
