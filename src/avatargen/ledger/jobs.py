"""Batches and jobs: what was asked, what ran, where each output is (history and resume)."""

from __future__ import annotations

import json
from typing import Any

from avatargen.ledger.credits import Credits
from avatargen.ledger.store import now


class Jobs(Credits):
    def start_batch(
        self,
        batch_id: str,
        argv: list[str],
        cwd: str,
        output_dir: str,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """Record a new batch, or mark one being retried as running again (same id, its first
        command line kept). `argv` and `settings` must hold no secret: callers redact them."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO batches (id, created_at, argv, cwd, output_dir, settings) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = 'running', finished_at = NULL",
                (batch_id, now(), json.dumps(argv), cwd, output_dir, json.dumps(settings or {})),
            )

    def finish_batch(self, batch_id: str, status: str, summary: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE batches SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, now(), json.dumps(summary), batch_id),
            )

    def batch(self, batch_id: str | None = None) -> dict[str, Any] | None:
        with self._read():
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
        with self._read():
            row = self._db.execute("SELECT * FROM jobs WHERE job_key = ?", (job_key,)).fetchone()
        return dict(row) if row else None

    def find_job(self, ref: str) -> dict[str, Any] | None:
        """A job by numeric id or by a prefix of its key (a hex key may start with digits only)."""
        with self._read():
            row = None
            if ref.isdigit():
                row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (int(ref),)).fetchone()
            if row is None and ref:
                # A range on the key's index, not LIKE (which scans every job); keys are lowercase hex.
                prefix = ref.lower()
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE job_key >= ? AND job_key < ? ORDER BY id DESC LIMIT 1",
                    (prefix, prefix + "\U0010ffff"),
                ).fetchone()
        return dict(row) if row else None

    def enqueue(self, job: dict[str, Any], batch_id: str) -> str:
        """Record a planned job (or adopt an earlier one into this batch); returns its status."""
        return self.enqueue_many([job], batch_id)[0]

    def enqueue_many(self, jobs: list[dict[str, Any]], batch_id: str) -> list[str]:
        """`enqueue` for a whole plan in one transaction (one commit, not one per job); the
        statuses in order."""
        with self._tx() as db:
            return [self._enqueue(db, job, batch_id) for job in jobs]

    @staticmethod
    def _enqueue(db, job: dict[str, Any], batch_id: str) -> str:
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
                    now(),
                ),
            )
            return "queued"
        # A finished job keeps the path of the file it really wrote (history points at it).
        db.execute(
            "UPDATE jobs SET batch_id = ?, input_path = ?, "
            "output_path = CASE status WHEN 'done' THEN output_path ELSE ? END WHERE job_key = ?",
            (batch_id, job["input_path"], job["output_path"], job["job_key"]),
        )
        return row["status"]

    def requeue_done(self, job_key: str) -> None:
        """A finished job whose image is gone everywhere is made again."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET status = 'queued' WHERE job_key = ? AND status = 'done'", (job_key,))

    def record_copy(self, job_key: str, path: str, copied_from: str, batch_id: str) -> None:
        """A finished job's output copied into another folder (no charge): one more place it is."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO job_outputs (job_key, path, batch_id, copied_from, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (job_key, path, batch_id, copied_from, now()),
            )

    def output_paths(self, job_key: str) -> list[str]:
        """Every place a job's image was written: where it was generated, then each copy."""
        with self._read() as db:
            row = db.execute("SELECT output_path FROM jobs WHERE job_key = ?", (job_key,)).fetchone()
            copies = db.execute(
                "SELECT path FROM job_outputs WHERE job_key = ? ORDER BY created_at", (job_key,)
            ).fetchall()
        return ([row[0]] if row else []) + [c[0] for c in copies]

    def mark_running(self, job_key: str) -> None:
        with self._tx() as db:
            self._mark_running(db, job_key)

    @staticmethod
    def _mark_running(db, job_key: str) -> None:
        db.execute(
            "UPDATE jobs SET status = 'running', started_at = ?, error = NULL WHERE job_key = ?",
            (now(), job_key),
        )

    def reserve_and_start(self, job_key: str, model: str, amount: int, batch_id: str | None = None) -> None:
        """`reserve` then `mark_running` in one transaction: a job never holds credits while
        still shown as queued, and a batch commits once per job start instead of twice."""
        with self._tx() as db:
            self._reserve(db, job_key, model, amount, batch_id)
            self._mark_running(db, job_key)

    def mark_done(
        self, job_key: str, model_used: str, attempts: int, seconds: float, note: str = "generated"
    ) -> int:
        """Settle the reservation and record the job as done, in one transaction."""
        with self._tx() as db:
            credits = self._close_reservation(db, job_key, "settled", note)
            db.execute(
                "UPDATE jobs SET status = 'done', model_used = ?, attempts = attempts + ?, seconds = ?, "
                "credits = ?, finished_at = ?, error = NULL WHERE job_key = ?",
                (model_used, attempts, seconds, credits, now(), job_key),
            )
            return credits

    def mark_failed(
        self,
        job_key: str,
        error: str,
        attempts: int = 0,
        status: str = "failed",
        model_used: str | None = None,
        permanent: bool = False,
    ) -> int:
        """Refund the reservation and record why, in one transaction. status 'queued' = try again
        later; `permanent`: retrying can never succeed (not an image, refused as too large)."""
        with self._tx() as db:
            refunded = self._close_reservation(db, job_key, "refunded", error[:200])
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, attempts = attempts + ?, model_used = COALESCE(?, model_used), "
                "finished_at = ?, permanent = ? WHERE job_key = ?",
                (status, error, attempts, model_used, now(), int(permanent), job_key),
            )
            return refunded

    def mark_skipped(self, job_key: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = 'skipped', error = ?, finished_at = ? WHERE job_key = ?",
                (reason, now(), job_key),
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
        # Newest first by a key that never changes: the order the jobs were planned. (Finish
        # times mixed with creation times put a Ctrl-C'd batch's rows out of order.)
        query += " ORDER BY id DESC"
        if limit:
            query += " LIMIT ?"
            args.append(limit)
        with self._read():
            return [dict(r) for r in self._db.execute(query, args).fetchall()]

    def model_stats(self, model: str, last: int = 100) -> dict[str, Any] | None:
        """Recent success rate and median latency of one model (for `avatargen status`)."""
        with self._read():
            rows = self._db.execute(
                "SELECT status, seconds FROM jobs WHERE COALESCE(model_used, model) = ? "
                "AND status IN ('done', 'failed') ORDER BY finished_at DESC LIMIT ?",
                (model, last),
            ).fetchall()
        if not rows:
            return None
        import statistics  # only `status` needs it: not on every command that opens the ledger

        done = [r["seconds"] for r in rows if r["status"] == "done" and r["seconds"] is not None]
        median = statistics.median(done) if done else None  # even count: mean of the middle two
        return {
            "jobs": len(rows),
            "success_rate": round(sum(1 for r in rows if r["status"] == "done") / len(rows), 3),
            "median_seconds": round(median, 2) if median is not None else None,
        }
