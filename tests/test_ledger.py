"""The credit ledger: arithmetic, migrations, reconciliation after kills, limits, job history,
several real processes sharing one file, and the credits/history commands."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avatargen.errors import ConfigError, CreditsError, LimitError, UsageError
from avatargen.ledger import DEFAULT_STARTER_CREDITS, JobBusy, Ledger, default_path, open_ledger


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.db", starter_credits=100) as opened:
        yield opened


def record(key: str, output: str = "out.png", **overrides) -> dict:
    job = {
        "job_key": key,
        "input_path": "photos/in.jpg",
        "input_hash": "h" * 64,
        "pose": "wave",
        "model": "model-a",
        "params": {"steps": 20, "prompt": "an avatar"},
        "seed": 7,
        "output_path": output,
    }
    job.update(overrides)
    return job


def finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: os.kill(pid, 0) now fails
    return proc.pid


def set_pid(path: Path, job_key: str, pid: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE reservations SET pid = ? WHERE job_key = ?", (pid, job_key))


# ------------------------------------------------------------------ creation and migrations
def test_new_ledger_has_the_default_starter_balance(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        assert ledger.balance() == DEFAULT_STARTER_CREDITS == 100
        grants = ledger.movements()
        assert [(m["kind"], m["amount"], m["note"]) for m in grants] == [("grant", 100, "starter balance")]


def test_open_ledger_honours_credits_starter_config(avatargen_home):
    from avatargen.settings import set_value

    set_value("credits.starter", "7")
    with open_ledger() as ledger:
        assert ledger.path == default_path()
        assert ledger.path.parent == avatargen_home / "data"
        assert ledger.balance() == 7


def test_starter_of_zero_grants_nothing(avatargen_home):
    from avatargen.settings import set_value

    set_value("credits.starter", "0")
    with open_ledger() as ledger:
        assert ledger.balance() == 0
        assert ledger.movements() == []


def test_starter_is_granted_once_and_migrations_recorded_once(tmp_path):
    path = tmp_path / "l.db"
    with Ledger(path, starter_credits=50) as ledger:
        ledger.reserve("k1", "m", 20)
        first = ledger.applied_migrations()
    with Ledger(path, starter_credits=50) as ledger:
        assert (
            ledger.applied_migrations()
            == first
            == ["m001_initial", "m002_retry_and_copies", "m003_running_totals", "m004_provider_requests"]
        )
        assert ledger.balance() == 30  # no second starter grant on reopening
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == 4
        assert db.execute("SELECT COUNT(*) FROM movements WHERE kind = 'grant'").fetchone()[0] == 1


def test_opening_waits_for_another_process_creating_the_file(tmp_path):
    # Switching a file to WAL while another connection holds a write lock answers SQLITE_BUSY
    # at once (the busy timeout does not apply): a first run racing another one must wait.
    path = tmp_path / "ledger.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE early (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO early VALUES (1)")
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with Ledger(path, starter_credits=5) as ledger:
            assert ledger.balance() == 5
            assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        release.join()
        other.close()


def test_a_damaged_ledger_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(ConfigError) as refused:
        Ledger(path)
    assert str(path) in refused.value.message
    assert "new ledger" in refused.value.hint


def test_wal_mode_and_busy_timeout(ledger):
    db = ledger._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(ledger.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ------------------------------------------------------------------ arithmetic
def test_grant_reserve_settle_refund_arithmetic(ledger):
    assert ledger.grant(20, "top-up") == 120
    ledger.reserve("a1", "model-a", 3, batch_id="b1")
    ledger.reserve("a2", "model-a", 3, batch_id="b1")
    ledger.reserve("b1", "model-b", 5, batch_id="b1")
    totals = ledger.totals()
    assert (totals.balance, totals.reserved, totals.spent_today, totals.spent_month) == (109, 11, 0, 0)

    assert ledger.settle("a1") == 3
    assert ledger.settle("b1") == 5
    assert ledger.refund("a2") == 3
    totals = ledger.totals()
    assert totals.balance == 112  # 120 - 3 - 5: the refund came back
    assert totals.reserved == 0
    assert totals.spent_today == totals.spent_month == 8
    assert totals.spent_today_by_model == {"model-a": 3, "model-b": 5}
    assert totals.spent_month_by_model == {"model-a": 3, "model-b": 5}
    # A closed reservation cannot be closed twice (no double refund or double charge).
    assert ledger.refund("a1") == 0
    assert ledger.settle("a2") == 0
    assert ledger.balance() == 112


def test_spent_totals_count_only_this_day_and_month(ledger):
    ledger.reserve("now", "model-a", 4)
    ledger.settle("now")
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="milliseconds")
    with sqlite3.connect(ledger.path) as db:
        db.execute(
            "INSERT INTO movements (kind, amount, model, note, created_at) VALUES ('settle', 9, 'model-a', 'x', ?)",
            (old,),
        )
    totals = ledger.totals()
    assert totals.spent_today == totals.spent_month == 4
    assert totals.spent_month_by_model == {"model-a": 4}


def test_grant_refuses_non_positive(ledger):
    with pytest.raises(CreditsError):
        ledger.grant(0)
    with pytest.raises(CreditsError):
        ledger.grant(-5)
    with pytest.raises(CreditsError, match="cannot add"):
        ledger.grant(10**20)  # would not fit SQLite's integers
    assert ledger.balance() == 100


def test_reserve_refuses_when_short_and_never_goes_below_zero(tmp_path):
    with Ledger(tmp_path / "l.db", starter_credits=10) as ledger:
        ledger.reserve("k1", "m", 4)
        ledger.reserve("k2", "m", 4)
        with pytest.raises(CreditsError) as refused:
            ledger.reserve("k3", "m", 4)
        assert "4 needed, 2 available" in refused.value.message
        assert "credits add" in refused.value.hint
        assert ledger.balance() == 2
        assert ledger.totals().reserved == 8
        ledger.reserve("k4", "m", 2)  # exactly what is left is fine
        assert ledger.balance() == 0
        with pytest.raises(CreditsError):
            ledger.reserve("k5", "m", 1)
        assert ledger.balance() == 0
        assert ledger.movements(job_key="k5") == []  # nothing recorded for the refused one


def test_a_job_cannot_hold_two_open_reservations(ledger):
    ledger.reserve("k", "m", 3)
    with pytest.raises(JobBusy) as held:  # another run's job: busy, never "add credits"
        ledger.reserve("k", "m", 3)
    assert not isinstance(held.value, CreditsError) and not held.value.done
    assert ledger.balance() == 97
    ledger.refund("k")
    ledger.reserve("k", "m", 3)  # after it closed, the job may be reserved again (a retry)
    assert ledger.balance() == 97
    assert ledger.totals().reserved == 3


def test_adjust_reservation_refunds_or_takes_the_difference(ledger):
    ledger.reserve("k", "dear", 5)
    ledger.adjust_reservation("k", "cheap", 2)
    assert ledger.balance() == 98
    assert ledger.totals().reserved == 2
    ledger.adjust_reservation("k", "dearer", 10)
    assert ledger.balance() == 90
    assert ledger.totals().reserved == 10
    assert ledger.settle("k") == 10
    totals = ledger.totals()
    assert (totals.balance, totals.reserved) == (90, 0)
    assert totals.spent_today_by_model == {"dearer": 10}


def test_adjust_reservation_refuses_when_the_difference_is_not_there(tmp_path):
    with Ledger(tmp_path / "l.db", starter_credits=6) as ledger:
        ledger.reserve("k", "cheap", 4)
        with pytest.raises(CreditsError, match="fallback"):
            ledger.adjust_reservation("k", "dear", 9)
        assert ledger.balance() == 2
        assert ledger.totals().reserved == 4
        with pytest.raises(CreditsError, match="no open reservation"):
            ledger.adjust_reservation("other", "dear", 1)


# ------------------------------------------------------------------ several processes at once
def _reserve_worker(path: str, worker: int, barrier, results) -> None:
    """Try 10 reservations of 3 credits; report (successes, lowest balance seen, error)."""
    from avatargen.errors import CreditsError
    from avatargen.ledger import Ledger

    got, lowest, error = 0, None, None
    try:
        with Ledger(Path(path), starter_credits=30) as ledger:
            barrier.wait(timeout=60)
            for i in range(10):
                try:
                    ledger.reserve(f"w{worker}-j{i}", "model-a", 3)
                    got += 1
                except CreditsError:
                    pass
                balance = ledger.balance()
                lowest = balance if lowest is None else min(lowest, balance)
    except BaseException as exc:  # reported to the test instead of leaving it waiting
        error = repr(exc)
    results.put((got, lowest, error))


def _run_workers(path: Path, count: int) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    procs = [ctx.Process(target=_reserve_worker, args=(str(path), n, barrier, results)) for n in range(count)]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=90) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert [error for _, _, error in reports] == [None] * count
    assert min(lowest for _, lowest, _ in reports) >= 0
    return [got for got, _, _ in reports]


@pytest.mark.slow
def test_processes_sharing_one_balance_never_overdraw(tmp_path):
    path = tmp_path / "shared.db"
    Ledger(path, starter_credits=30).close()
    got = _run_workers(path, 4)
    assert sum(got) == 10  # 30 credits / 3 each, across all processes
    with Ledger(path) as ledger:
        totals = ledger.totals()
        assert (totals.balance, totals.reserved) == (0, 30)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 10
        assert db.execute("SELECT COUNT(*) FROM movements WHERE kind = 'reserve'").fetchone()[0] == 10


@pytest.mark.slow
def test_processes_creating_the_ledger_at_once_grant_the_starter_once(tmp_path):
    path = tmp_path / "fresh.db"  # does not exist yet: every worker races to create it
    got = _run_workers(path, 4)
    assert sum(got) == 10
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM movements WHERE kind = 'grant'").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == 4


# ------------------------------------------------------------------ reconcile after a kill
def test_reconcile_settles_when_the_output_carries_the_key(ledger):
    ledger.start_batch("b1", ["generate"], "/tmp", "/out")
    ledger.enqueue(record("done-key", "/out/a.png"), "b1")
    ledger.reserve("done-key", "model-a", 3, "b1")
    ledger.mark_running("done-key")
    set_pid(ledger.path, "done-key", finished_pid())

    seen = []

    def has_key(path, key):
        seen.append((path, key))
        return True

    assert ledger.reconcile(has_key) == (1, 0)
    assert seen == [("/out/a.png", "done-key")]
    totals = ledger.totals()
    assert (totals.balance, totals.reserved, totals.spent_today) == (97, 0, 3)
    job = ledger.job("done-key")
    assert job["status"] == "done" and job["credits"] == 3
    assert ledger.reconcile(has_key) == (0, 0)  # nothing left open


def test_reconcile_refunds_and_requeues_when_the_output_is_missing(ledger):
    ledger.start_batch("b1", ["generate"], "/tmp", "/out")
    ledger.enqueue(record("lost-key", "/out/b.png"), "b1")
    ledger.reserve("lost-key", "model-a", 3, "b1")
    ledger.mark_running("lost-key")
    set_pid(ledger.path, "lost-key", finished_pid())

    assert ledger.reconcile(lambda path, key: False) == (0, 1)
    totals = ledger.totals()
    assert (totals.balance, totals.reserved, totals.spent_today) == (100, 0, 0)
    job = ledger.job("lost-key")
    assert job["status"] == "queued"
    assert job["error"] == "interrupted"
    assert [m["kind"] for m in ledger.movements(job_key="lost-key")] == ["refund", "reserve"]


def test_reconcile_refunds_a_reservation_without_a_job_row(ledger):
    ledger.reserve("orphan", "model-a", 5)
    set_pid(ledger.path, "orphan", finished_pid())
    assert ledger.reconcile(lambda path, key: pytest.fail("no output path to look at")) == (0, 1)
    assert ledger.balance() == 100


def test_reconcile_leaves_live_processes_alone(ledger):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ledger.enqueue(record("busy", "/out/c.png"), "b1")
        ledger.reserve("busy", "model-a", 3)
        ledger.reserve("mine", "model-a", 3)  # held by this very process
        set_pid(ledger.path, "busy", live.pid)
        assert ledger.reconcile(lambda path, key: pytest.fail("must not look")) == (0, 0)
        assert ledger.totals().reserved == 6
        assert ledger.held_elsewhere("busy") is True
        assert ledger.held_elsewhere("mine") is False  # ours, not elsewhere
    finally:
        live.kill()
        live.wait()
    assert ledger.held_elsewhere("busy") is False
    assert ledger.reconcile(lambda path, key: False) == (0, 1)
    assert ledger.totals().reserved == 3


# ------------------------------------------------------------------ request limits
def test_count_request_counts_per_model_and_day(ledger):
    for _ in range(3):
        ledger.count_request("model-a")
    ledger.count_request("model-b")
    assert ledger.requests_today("model-a") == 3
    assert ledger.requests_today("model-b") == 1
    assert ledger.requests_today() == 4
    with sqlite3.connect(ledger.path) as db:
        days = db.execute("SELECT DISTINCT day FROM requests").fetchall()
    assert days == [(datetime.now(UTC).date().isoformat(),)]


def test_daily_limit_refuses_at_the_limit_without_counting(ledger):
    ledger.count_request("model-a", limit_total=3)
    ledger.count_request("model-b", limit_total=3)
    ledger.count_request("model-a", limit_total=3)
    with pytest.raises(LimitError) as refused:
        ledger.count_request("model-b", limit_total=3)
    assert "limits.daily_requests" in refused.value.message
    assert "3 of 3" in refused.value.message
    assert ledger.requests_today() == 3
    assert ledger.requests_today("model-b") == 1


def test_per_model_limit_names_the_model_key(ledger):
    ledger.count_request("model-a", limit_model=2)
    ledger.count_request("model-a", limit_model=2)
    with pytest.raises(LimitError) as refused:
        ledger.count_request("model-a", limit_total=100, limit_model=2)
    assert "limits.models.model-a" in refused.value.message
    assert ledger.requests_today("model-a") == 2
    ledger.count_request("model-b", limit_model=2)  # another model has its own count
    assert ledger.requests_today("model-b") == 1


# ------------------------------------------------------------------ jobs and history
def test_enqueue_adopts_an_existing_job_and_keeps_its_status(ledger):
    assert ledger.enqueue(record("k1", "/out/one.png"), "b1") == "queued"
    ledger.reserve("k1", "model-a", 3, "b1")
    ledger.mark_running("k1")
    assert ledger.mark_done("k1", "model-a", attempts=2, seconds=1.5) == 3
    status = ledger.enqueue(record("k1", "/elsewhere/one.png", input_path="moved/in.jpg"), "b2")
    assert status == "done"
    job = ledger.job("k1")
    # A done job's file is where it was written: history must not point at the new, empty place.
    assert (job["batch_id"], job["status"], job["output_path"]) == ("b2", "done", "/out/one.png")
    assert job["input_path"] == "moved/in.jpg"
    assert job["attempts"] == 2 and job["credits"] == 3 and job["seconds"] == 1.5
    assert json.loads(job["params"]) == {"steps": 20, "prompt": "an avatar"}


def test_mark_done_settles_and_mark_failed_refunds(ledger):
    for key in ("ok", "bad", "later"):
        ledger.enqueue(record(key, f"/out/{key}.png"), "b1")
        ledger.reserve(key, "model-a", 3, "b1")
        ledger.mark_running(key)
    assert ledger.mark_done("ok", "model-a-fallback", attempts=1, seconds=2.0) == 3
    assert ledger.mark_failed("bad", "the server said no", attempts=3) == 3
    assert ledger.mark_failed("later", "rate limited", status="queued") == 3
    totals = ledger.totals()
    assert (totals.balance, totals.reserved, totals.spent_today) == (97, 0, 3)
    assert totals.spent_today_by_model == {"model-a": 3}
    ok, bad, later = ledger.job("ok"), ledger.job("bad"), ledger.job("later")
    assert (ok["status"], ok["model_used"], ok["error"]) == ("done", "model-a-fallback", None)
    assert (bad["status"], bad["error"], bad["attempts"]) == ("failed", "the server said no", 3)
    assert later["status"] == "queued"
    # A retry of the failed job starts clean.
    ledger.reserve("bad", "model-a", 3, "b2")
    ledger.mark_running("bad")
    assert ledger.job("bad")["error"] is None


def test_mark_skipped(ledger):
    ledger.enqueue(record("k"), "b1")
    ledger.mark_skipped("k", "output exists")
    job = ledger.job("k")
    assert (job["status"], job["error"]) == ("skipped", "output exists")
    assert job["finished_at"] is not None
    assert ledger.balance() == 100


def test_jobs_filters_by_status_and_batch(ledger):
    ledger.enqueue(record("a"), "b1")
    ledger.enqueue(record("b"), "b1")
    ledger.enqueue(record("c"), "b2")
    ledger.mark_failed("b", "broken")
    ledger.mark_done("c", "model-a", 1, 1.0)
    assert {j["job_key"] for j in ledger.jobs()} == {"a", "b", "c"}
    assert [j["job_key"] for j in ledger.jobs(status="failed")] == ["b"]
    assert {j["job_key"] for j in ledger.jobs(batch_id="b1")} == {"a", "b"}
    assert [j["job_key"] for j in ledger.jobs(status="queued", batch_id="b1")] == ["a"]
    assert ledger.jobs(status="done", batch_id="b1") == []
    assert len(ledger.jobs(limit=2)) == 2
    assert len(ledger.jobs(limit=None)) == 3


def test_find_job_by_id_and_key_prefix(ledger):
    ledger.enqueue(record("abc123ff"), "b1")
    ledger.enqueue(record("abd99900"), "b1")
    first = ledger.find_job("abc")
    assert first["job_key"] == "abc123ff"
    assert ledger.find_job(str(first["id"]))["job_key"] == "abc123ff"
    assert ledger.find_job("abd")["job_key"] == "abd99900"
    assert ledger.find_job("zzz") is None
    assert ledger.find_job("999") is None


def test_find_job_by_a_key_prefix_made_of_digits(ledger):
    ledger.enqueue(record("31415abc"), "b1")
    assert ledger.find_job("3141")["job_key"] == "31415abc"


def test_batches_latest_and_by_prefix(ledger):
    ledger.start_batch("20240101-000000-aaaaaa", ["generate", "x"], "/w", "/out")
    ledger.start_batch("20240102-000000-bbbbbb", ["generate", "y"], "/w", "/out")
    assert ledger.batch()["id"] == "20240102-000000-bbbbbb"
    assert ledger.batch("20240101")["id"] == "20240101-000000-aaaaaa"
    ledger.finish_batch("20240101-000000-aaaaaa", "done", {"done": 2})
    found = ledger.batch("20240101-000000-aaaaaa")
    assert found["status"] == "done" and json.loads(found["summary"]) == {"done": 2}
    assert json.loads(found["argv"]) == ["generate", "x"]
    assert ledger.batch("nope") is None


def test_model_stats_success_rate_and_median(ledger):
    assert ledger.model_stats("model-a") is None
    for i, seconds in enumerate([1.0, 2.0, 3.0, 10.0]):
        ledger.enqueue(record(f"ok{i}"), "b1")
        ledger.mark_done(f"ok{i}", "model-a", 1, seconds)
    ledger.enqueue(record("bad"), "b1")
    ledger.mark_failed("bad", "boom", model_used="model-a")
    ledger.enqueue(record("other"), "b1")
    ledger.mark_done("other", "model-b", 1, 99.0)  # asked for model-a, ran on model-b
    ledger.enqueue(record("waiting"), "b1")  # queued jobs do not count
    stats = ledger.model_stats("model-a")
    assert stats["jobs"] == 5
    assert stats["success_rate"] == 0.8
    assert stats["median_seconds"] == 2.5
    assert ledger.model_stats("model-b") == {"jobs": 1, "success_rate": 1.0, "median_seconds": 99.0}


# ------------------------------------------------------------------ CLI: credits and history
def test_credits_command_json_and_human(cli):
    result = cli("credits", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert isinstance(report["balance"], int) and report["balance"] == 100
    assert report["reserved"] == 0 and report["spent_today"] == 0 and report["spent_month"] == 0

    human = cli("credits")
    assert human.exit_code == 0
    assert "balance" in human.stdout and "100" in human.stdout
    assert "spent this month" in human.stdout


def test_credits_command_shows_spending_by_model(cli):
    with open_ledger() as ledger:
        ledger.reserve("k", "model-a", 3)
        ledger.settle("k")
        ledger.count_request("model-a")
    report = json.loads(cli("credits", "--json").stdout)
    assert report["balance"] == 97
    assert report["spent_today_by_model"] == {"model-a": 3}
    assert report["requests_today"] == 1
    assert "model-a" in cli("credits").stdout


@pytest.mark.slow
def test_credits_add_and_history(cli):
    added = cli("credits", "add", "25", "--note", "gift", "--json")
    assert added.exit_code == 0
    assert json.loads(added.stdout) == {"added": 25, "balance": 125}
    human = cli("credits", "add", "5")
    assert human.exit_code == 0 and "balance 130" in human.stdout
    assert cli("credits", "add", "0").exit_code == 2  # not a positive number
    with pytest.raises(CreditsError):
        cli("credits", "add", "99999999999999999999")

    moves = json.loads(cli("credits", "history", "--json").stdout)
    assert [(m["kind"], m["amount"], m["note"]) for m in moves] == [
        ("grant", 5, "added"),
        ("grant", 25, "gift"),
        ("grant", 100, "starter balance"),
    ]
    assert len(json.loads(cli("credits", "history", "--limit", "1", "--json").stdout)) == 1
    table = cli("credits", "history")
    assert table.exit_code == 0 and "gift" in table.stdout and "starter balance" in table.stdout


@pytest.mark.slow
def test_history_commands(cli):
    with open_ledger() as ledger:
        ledger.enqueue(record("feedbeef01", "/out/good.png"), "b1")
        ledger.reserve("feedbeef01", "model-a", 3, "b1")
        ledger.mark_done("feedbeef01", "model-a", 1, 1.25)
        ledger.enqueue(record("badcafe02", "/out/bad.png"), "b1")
        ledger.mark_failed("badcafe02", "not an image Pillow can read")

    lines = [json.loads(line) for line in cli("history", "--json").stdout.splitlines()]
    assert {row["job_key"] for row in lines} == {"feedbeef01", "badcafe02"}
    assert all(isinstance(row["params"], dict) for row in lines)

    failed = [json.loads(line) for line in cli("history", "--status", "failed", "--json").stdout.splitlines()]
    assert [row["job_key"] for row in failed] == ["badcafe02"]

    human = cli("history")
    assert human.exit_code == 0
    # Long cells fold onto several lines rather than being cut off: every word is there.
    assert "failed" in human.stdout and "done" in human.stdout
    assert "Pillow" in human.stdout and "…" not in human.stdout

    with pytest.raises(UsageError, match="--status"):
        cli("history", "--status", "bogus")

    shown = json.loads(cli("history", "show", "feedbeef", "--json").stdout)
    assert shown["job_key"] == "feedbeef01" and shown["status"] == "done"
    assert [m["kind"] for m in shown["movements"]] == ["reserve", "settle"]
    by_id = json.loads(cli("history", "show", str(shown["id"]), "--json").stdout)
    assert by_id["job_key"] == "feedbeef01"
    text = cli("history", "show", "badcafe")
    assert text.exit_code == 0 and "status: failed" in text.stdout

    with pytest.raises(UsageError, match="no job 'nothing'"):
        cli("history", "show", "nothing")
