"""A real PostgreSQL server for the service's tests, and the `service_db` fixture that gives
each test a fresh database on SQLite or on PostgreSQL.

The server is Debian's (initdb + pg_ctl from AVATARGEN_PG_BIN or /usr/lib/postgresql/15/bin),
started once per session in a temporary folder on a free port, as the `postgres` user when the
tests run as root (PostgreSQL refuses root), and stopped at the end. Without the programs the
PostgreSQL cases skip, except in CI (CI=true), where they fail: CI installs them
(.ci/setup-postgres.sh)."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("AVATARGEN_PG_BIN") or "/usr/lib/postgresql/15/bin")
_counter = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture():
    """The base URL (postgresql://postgres@127.0.0.1:PORT) of a throwaway server."""
    if not (PG_BIN / "pg_ctl").exists():
        message = f"PostgreSQL server programs not found in {PG_BIN} (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="avatargen-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def fresh_postgres(base: str) -> str:
    import psycopg

    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"], name="database_url")
def database_url_fixture(request, tmp_path):
    """A new, empty service database: None (SQLite in tmp_path/data) or a PostgreSQL URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return fresh_postgres(request.getfixturevalue("postgres_server"))


@pytest.fixture(name="service_db")
def service_db_fixture(database_url, tmp_path):
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate

    db = Database(database_url, tmp_path)
    migrate(db)
    yield db
    db.close()
