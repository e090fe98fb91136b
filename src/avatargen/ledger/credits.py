"""Credits: grant, reserve, settle, refund, and the reconciliation after a killed run.

Credits move in four kinds of rows: grant (+), reserve (-), refund (+ back), settle (marks a
reservation spent). So:
    balance  = grants - reserves + refunds         (what can still be reserved)
    reserved = reserves - settles - refunds         (held by running jobs)
    spent    = settles
A reservation is one BEGIN IMMEDIATE transaction that checks the balance first, so several
processes sharing the file can never take the balance below zero.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from avatargen.errors import ConfigError, CreditsError
from avatargen.ledger.migrations import BALANCE_DELTA, RESERVED_DELTA
from avatargen.ledger.store import Store, now, pid_alive

MAX_GRANT = 10**12


class JobBusy(Exception):
    """Another avatargen process holds this job (or finished it since we looked): not a credits
    problem, the job is simply not ours to run."""

    def __init__(self, job_key: str, done: bool = False) -> None:
        super().__init__(job_key)
        self.done = done

    @property
    def reason(self) -> str:
        return (
            "already done by another avatargen process"
            if self.done
            else "running in another avatargen process"
        )


@dataclass(frozen=True)
class Totals:
    balance: int
    reserved: int
    spent_today: int
    spent_month: int
    spent_today_by_model: dict[str, int]
    spent_month_by_model: dict[str, int]


@dataclass(frozen=True)
class Verification:
    """The running totals and the same figures summed from the ledger's rows."""

    movements: int
    balance: int
    summed_balance: int
    reserved: int
    summed_reserved: int
    open_reservations: int

    @property
    def ok(self) -> bool:
        return (
            self.balance == self.summed_balance
            and self.reserved == self.summed_reserved == self.open_reservations
        )

    def mismatches(self) -> list[str]:
        found = []
        if self.balance != self.summed_balance:
            found.append(f"running balance {self.balance} but the movements sum to {self.summed_balance}")
        if self.reserved != self.summed_reserved:
            found.append(f"running reserved {self.reserved} but the movements sum to {self.summed_reserved}")
        if self.summed_reserved != self.open_reservations:
            found.append(
                f"the movements hold {self.summed_reserved} reserved but open reservations hold "
                f"{self.open_reservations}"
            )
        return found


class Credits(Store):
    def _grant_starter(self, db, amount: int) -> None:
        self._move(db, "grant", amount, note="starter balance")

    @staticmethod
    def _move(db, kind: str, amount: int, job_key=None, model=None, batch_id=None, note=None) -> None:
        db.execute(
            "INSERT INTO movements (kind, amount, job_key, model, batch_id, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, amount, job_key, model, batch_id, note, now()),
        )

    def _running(self, db) -> sqlite3.Row:
        """The running totals (m003): one row, kept by a trigger on every movement."""
        row = db.execute("SELECT balance, reserved FROM running_totals WHERE id = 1").fetchone()
        if row is None:
            raise ConfigError(
                f"{self.path}: the credit ledger is damaged (its running balance is missing)",
                "restore it from a backup, or move it away to start a new ledger (its history is lost)",
            )
        return row

    def _balance(self, db) -> int:
        return int(self._running(db)["balance"])

    def balance(self) -> int:
        with self._read():
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
            self._reserve(db, job_key, model, amount, batch_id)

    def _reserve(self, db, job_key: str, model: str, amount: int, batch_id: str | None) -> None:
        existing = db.execute("SELECT state FROM reservations WHERE job_key = ?", (job_key,)).fetchone()
        if existing and existing["state"] == "open":
            raise JobBusy(job_key)
        done = db.execute("SELECT 1 FROM jobs WHERE job_key = ? AND status = 'done'", (job_key,)).fetchone()
        if done:
            raise JobBusy(job_key, done=True)
        available = self._balance(db)
        if available < amount:
            raise CreditsError(
                f"not enough credits: {amount} needed, {available} available",
                "add some with `avatargen credits add N`",
            )
        self._move(db, "reserve", amount, job_key, model, batch_id, "reserved")
        # An upsert, not INSERT OR REPLACE: a provider request an earlier run submitted for this
        # job (m004) stays with the job's new reservation, so it is polled, not paid for again.
        db.execute(
            "INSERT INTO reservations (job_key, model, amount, batch_id, pid, state, created_at) "
            "VALUES (?, ?, ?, ?, ?, 'open', ?) ON CONFLICT (job_key) DO UPDATE SET model = excluded.model, "
            "amount = excluded.amount, batch_id = excluded.batch_id, pid = excluded.pid, state = 'open', "
            "created_at = excluded.created_at, closed_at = NULL",
            (job_key, model, amount, batch_id, os.getpid(), now()),
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
        # A settled job's provider request is used up; a refunded one may still be running there.
        db.execute(
            "UPDATE reservations SET state = ?, closed_at = ?, "
            "provider_request = CASE ? WHEN 'settled' THEN NULL ELSE provider_request END WHERE job_key = ?",
            (state, now(), state, job_key),
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
        with self._read():
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
                        (credits, now(), row["job_key"]),
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
        with self._read():
            row = self._db.execute(
                "SELECT pid FROM reservations WHERE job_key = ? AND state = 'open'", (job_key,)
            ).fetchone()
        return bool(row) and row["pid"] != os.getpid() and pid_alive(row["pid"])

    def totals(self) -> Totals:
        now = datetime.now(UTC)
        day = now.date().isoformat()
        month = now.strftime("%Y-%m")
        with self._read():
            db = self._db
            running = self._running(db)
            balance, reserved = int(running["balance"]), int(running["reserved"])
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

    def verify(self) -> Verification:
        """The running totals against the sums over every movement (and what running jobs hold
        against the open reservations), read in one snapshot."""
        with self._read() as db:
            db.execute("BEGIN")  # one read snapshot: another process may be writing
            try:
                running = self._running(db)
                summed = db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM({BALANCE_DELTA.format(m='')}), 0), "
                    f"COALESCE(SUM({RESERVED_DELTA.format(m='')}), 0) FROM movements"
                ).fetchone()
                held = db.execute(
                    "SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE state = 'open'"
                ).fetchone()[0]
            finally:
                db.execute("COMMIT")
        return Verification(
            movements=int(summed[0]),
            balance=int(running["balance"]),
            summed_balance=int(summed[1]),
            reserved=int(running["reserved"]),
            summed_reserved=int(summed[2]),
            open_reservations=int(held),
        )

    def movements(self, limit: int = 50, job_key: str | None = None) -> list[dict[str, Any]]:
        with self._read():
            if job_key:
                rows = self._db.execute(
                    "SELECT * FROM movements WHERE job_key = ? ORDER BY id DESC LIMIT ?", (job_key, limit)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM movements ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
        return [dict(r) for r in rows]
