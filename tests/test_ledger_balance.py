"""The ledger's running balance (migration m003): kept in the transaction of each movement, equal
to the sum of the history (checked by `credits --verify`), built from the history when an older
ledger migrates, intact after a kill -9; and the queries a batch makes read no whole table."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from avatargen.errors import CreditsError
from avatargen.ledger import JobBusy, Ledger, default_path, open_ledger
from avatargen.ledger.migrations import m001_initial, m002_retry_and_copies


def record(key: str) -> dict:
    return {
        "job_key": key,
        "input_path": "photos/in.jpg",
        "input_hash": "h" * 64,
        "pose": "wave",
        "model": "model-a",
        "params": {"steps": 20},
        "seed": 7,
        "output_path": f"out/{key}.png",
    }


def summed_balance(path: Path) -> int:
    """The balance as the README defines it, from the movements alone."""
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT COALESCE(SUM(CASE kind WHEN 'grant' THEN amount WHEN 'reserve' THEN -amount "
            "WHEN 'refund' THEN amount ELSE 0 END), 0) FROM movements"
        ).fetchone()[0]


def test_running_balance_equals_the_sum_through_every_kind_of_movement(tmp_path):
    path = tmp_path / "ledger.db"
    rng = random.Random(15)
    with Ledger(path, starter_credits=60) as ledger:
        ledger.start_batch("b", ["x"], "/", "/out")
        open_keys: list[str] = []
        expected = 60
        for step in range(300):
            action = rng.choice(
                ["grant", "reserve", "reserve", "adjust", "settle", "refund", "done", "failed"]
            )
            if action == "grant":
                amount = rng.randint(1, 20)
                assert ledger.grant(amount) == expected + amount
                expected += amount
            elif action == "reserve":
                key = f"k{step}"
                ledger.enqueue(record(key), "b")
                amount = rng.randint(1, 12)
                try:
                    ledger.reserve(key, "model-a", amount, "b")
                except CreditsError:
                    assert expected < amount
                    continue
                expected -= amount
                open_keys.append(key)
            elif open_keys:
                key = open_keys.pop(rng.randrange(len(open_keys)))
                held = ledger._db.execute(
                    "SELECT amount FROM reservations WHERE job_key = ?", (key,)
                ).fetchone()[0]
                if action == "adjust":
                    new = rng.randint(1, 12)
                    try:
                        ledger.adjust_reservation(key, "model-b", new)
                        expected -= new - held
                    except CreditsError:
                        assert new - held > expected
                    open_keys.append(key)
                elif action in ("settle", "done"):
                    closed = (
                        ledger.settle(key) if action == "settle" else ledger.mark_done(key, "model-a", 1, 0.1)
                    )
                    assert closed == held
                else:
                    closed = ledger.refund(key) if action == "refund" else ledger.mark_failed(key, "boom")
                    assert closed == held
                    expected += held
            assert ledger.balance() == expected
            check = ledger.verify()
            assert check.ok, check.mismatches()
        assert ledger.totals().reserved == sum(
            ledger._db.execute("SELECT amount FROM reservations WHERE job_key = ?", (k,)).fetchone()[0]
            for k in open_keys
        )
    assert summed_balance(path) == expected


@pytest.mark.slow
def test_a_ledger_from_before_m003_migrates_with_totals_from_its_history(tmp_path):
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        m001_initial(db)
        m002_retry_and_copies(db)
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO _migrations VALUES (?, 'then')", [("m001_initial",), ("m002_retry_and_copies",)]
        )
        moves = [
            ("grant", 100, None),
            ("reserve", 5, "k1"),  # still open
            ("reserve", 3, "k2"),
            ("settle", 3, "k2"),
            ("reserve", 4, "k3"),
            ("refund", 4, "k3"),
            ("grant", 7, None),
        ]
        db.executemany(
            "INSERT INTO movements (kind, amount, job_key, model, created_at) VALUES (?, ?, ?, 'm', 'then')",
            moves,
        )
        db.execute(
            "INSERT INTO reservations (job_key, model, amount, pid, state, created_at) "
            "VALUES ('k1', 'm', 5, 1, 'open', 'then')"
        )
    with Ledger(path, starter_credits=100) as ledger:
        assert "m003_running_totals" in ledger.applied_migrations()
        assert ledger.balance() == 100 - 5 - 3 - 4 + 4 + 7 == 99
        assert ledger.totals().reserved == 5
        assert ledger.verify().ok
        ledger.reserve("k4", "m", 9)  # and it keeps running from there
        assert ledger.balance() == 90
        assert ledger.verify().ok
        assert ledger._db.execute("SELECT COUNT(*) FROM movements WHERE kind = 'grant'").fetchone()[0] == 2


def test_a_movement_written_by_another_program_updates_the_running_balance(ledger_path):
    # An older avatargen (which knows nothing of m003) writes movements straight to the file:
    # the trigger keeps the running balance right in that same transaction.
    with sqlite3.connect(ledger_path) as db:
        db.execute(
            "INSERT INTO movements (kind, amount, note, created_at) VALUES ('grant', 40, 'old version', 'then')"
        )
        db.execute(
            "INSERT INTO movements (kind, amount, job_key, created_at) VALUES ('reserve', 15, 'x', 'then')"
        )
    with Ledger(ledger_path) as ledger:
        assert ledger.balance() == 100 + 40 - 15
        check = ledger.verify()
        assert check.balance == check.summed_balance == 125
        # ... a reservation row that no reservation movement paid for is reported
        assert check.reserved == 15 and check.open_reservations == 0 and not check.ok


@pytest.fixture
def ledger_path(tmp_path) -> Path:
    path = tmp_path / "ledger.db"
    Ledger(path, starter_credits=100).close()
    return path


@pytest.mark.slow
def test_credits_verify_says_ok_and_exits_3_on_a_mismatch(run_cli):
    with open_ledger() as ledger:
        ledger.reserve("k", "model-a", 3)
        ledger.settle("k")
        ledger.reserve("k2", "model-a", 5)
    good = run_cli("credits", "--verify")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("OK: balance 92 and reserved 5")
    assert json.loads(run_cli("credits", "--verify", "--json").stdout) == {
        "ok": True,
        "movements": 4,
        "balance": 92,
        "reserved": 5,
    }

    with sqlite3.connect(default_path()) as db:  # changed behind the ledger's back
        db.execute("UPDATE running_totals SET balance = balance + 1000")
    bad = run_cli("credits", "--verify")
    assert bad.returncode == 3
    assert bad.stdout == ""
    assert str(default_path()) in bad.stderr
    assert "running balance 1092 but the movements sum to 92" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    as_json = run_cli("credits", "--verify", "--json")
    assert as_json.returncode == 3
    assert json.loads(as_json.stderr)["error"]["exit_code"] == 3


@pytest.mark.slow
def test_a_missing_running_total_is_a_damaged_ledger_not_a_crash(run_cli):
    open_ledger().close()
    with sqlite3.connect(default_path()) as db:
        db.execute("DELETE FROM running_totals")
    done = run_cli("credits")
    assert done.returncode == 3, done.stderr
    assert "damaged" in done.stderr and "Traceback" not in done.stderr


KILLED_MID_TRANSACTION = """
import sys, time
from avatargen.ledger import Ledger
ledger = Ledger(sys.argv[1])
ledger.reserve("held", "model-a", 7)  # committed: an open reservation of a process about to die
with ledger._tx() as db:
    ledger._move(db, "reserve", 11, "half", "model-a", None, "never committed")
    print("inside", flush=True)
    time.sleep(60)
"""


def test_a_kill_9_mid_transaction_leaves_the_running_balance_whole(ledger_path):
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_TRANSACTION, str(ledger_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "inside"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with Ledger(ledger_path) as ledger:
        assert ledger.balance() == 93  # the uncommitted 11 is gone with its movement
        assert ledger.verify().ok
        assert ledger.reconcile(lambda path, key: False) == (0, 1)
        assert ledger.balance() == 100
        assert ledger.verify().ok
    assert summed_balance(ledger_path) == 100


# ------------------------------------------------------------------ query plans
def plans(ledger: Ledger, calls) -> dict[str, list[str]]:
    """Every statement the calls ran (values inlined by SQLite), with its query plan."""
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)
    try:
        calls()
    finally:
        ledger._db.set_trace_callback(None)
    found = {}
    for sql in statements:
        if sql.startswith("--") or sql.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue
        found[sql] = [row[3] for row in ledger._db.execute("EXPLAIN QUERY PLAN " + sql)]
    return found


@pytest.fixture
def busy_ledger(tmp_path):
    with Ledger(tmp_path / "ledger.db", starter_credits=1000) as ledger:
        ledger.start_batch("b1", ["x"], "/", "/out")
        for i in range(20):
            ledger.enqueue(record(f"ab{i:02d}"), "b1")
            ledger.reserve(f"ab{i:02d}", "model-a", 3, "b1")
            ledger.mark_done(f"ab{i:02d}", "model-a", 1, 0.5)
        ledger._db.execute("ANALYZE")  # the planner at its most tempted to scan small tables
        yield ledger


def test_what_a_batch_runs_per_job_reads_no_whole_table(busy_ledger):
    ledger = busy_ledger

    def one_batch_of_jobs() -> None:
        ledger.reconcile(lambda path, key: False)
        ledger.balance()
        ledger.requests_today()
        for key in ("n1", "n2", "n3"):
            ledger.enqueue(record(key), "b1")
            ledger.job(key)
            ledger.output_paths(key)
            ledger.reserve(key, "model-a", 3, "b1")
            ledger.mark_running(key)
            ledger.count_request("model-a", limit_total=1000, limit_model=1000)
        ledger.adjust_reservation("n1", "model-b", 5)
        ledger.mark_done("n1", "model-b", 1, 0.5)
        ledger.mark_failed("n2", "boom", 1, status="queued")
        ledger.settle("n3")
        ledger.refund("n3")
        with pytest.raises(JobBusy):
            ledger.reserve("n1", "model-a", 3, "b1")
        ledger.totals()

    found = plans(ledger, one_batch_of_jobs)
    # The one scan allowed: the partial index of open reservations (what running jobs hold); a
    # SELECT without a table (the request count's checked insert) is one constant row, no table.
    allowed = ("INDEX reservations_open", "SCAN CONSTANT ROW")
    scans = {
        sql: plan
        for sql, plan in found.items()
        if any(step.startswith("SCAN") and not any(a in step for a in allowed) for step in plan)
    }
    assert scans == {}
    assert any("running_totals" in sql for sql in found)


def test_history_listings_read_only_the_rows_they_show(busy_ledger):
    ledger = busy_ledger

    def listings() -> None:
        ledger.jobs()
        ledger.jobs(status="done")
        ledger.model_stats("model-a")
        ledger.movements(20, job_key="ab05")
        ledger.find_job("ab07")
        ledger.batch()

    found = plans(ledger, listings)
    assert len(found) == 6
    for sql, plan in found.items():
        # A scan is allowed only along an index (or the rowid: jobs.id is the table's own key),
        # in the order asked for, stopping at the LIMIT.
        along_rowid = "ORDER BY id DESC" in sql and "LIMIT" in sql
        assert all("USING" in step or along_rowid for step in plan if step.startswith("SCAN")), (sql, plan)
        if "LIMIT" in sql and "job_key >=" not in sql:
            assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (sql, plan)
    assert ledger.find_job("ab07")["job_key"] == "ab07"
    assert ledger.find_job("AB1")["job_key"] == "ab19"  # the latest, in any case, as LIKE did
    assert ledger.find_job("ab0%") is None  # a prefix, not a pattern
