"""The durable queue and the per-user ledger, one short transaction per step.

    accept  = the upload's row + the credits reserved + the generations inserted (one transaction)
    claim   = the next job: priority first (pro tier or a priority_queue model), then the user
              served least recently (round-robin, so one user's thousands of jobs never starve
              another's single one), then age; marked processing with a lease (worker, expiry)
    settle  = the reservation spent, the job completed          } exactly once per generation:
    fail    = the reservation refunded, the job failed          } `reservation` goes from 'open'
    cancel  = a pending job cancelled and refunded              } to settled|refunded only once
    requeue = back to pending with its reservation still open (a stop, an expired lease, a
              worker that died): the credits follow the job, never charged twice nor lost.

Claims look at users, not at jobs: each user row keeps its pending counts per priority and
when it was last served, so picking the next job reads the (few) users and then one index
range of that user's queue, whatever the queue's length. Locks are always taken user row
first, then generation row, so PostgreSQL transactions never deadlock; SQLite's BEGIN
IMMEDIATE serialises writers anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from avatargen.errors import CreditsError, LimitError
from avatargen.service.db import Cursor, Database

PRIORITY_TIERS = ("pro", "enterprise")
DEFAULT_LEASE_S = 60.0


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def new_id() -> str:
    """A generation or photo id: 96 random bits, so ids cannot be guessed or enumerated."""
    return secrets.token_hex(12)


def priority_of(tier: str, priority_queue: bool) -> int:
    return 1 if tier in PRIORITY_TIERS or priority_queue else 0


@dataclass(frozen=True)
class NewJob:
    model_key: str
    pose: str
    quality: str
    params: dict[str, Any]
    seed: int
    credit_cost: int
    priority: int
    webhook_url: str | None = None


@dataclass(frozen=True)
class Limits:
    """Daily caps from config (`service.limits`): generations accepted per user per day, all
    models, and per user per day for one model."""

    user_daily: int | None = None
    model_daily: dict[str, int] | None = None


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("queue full")
        self.retry_after = retry_after


class Queue:
    def __init__(self, db: Database, limits: Limits | None = None, max_pending: int | None = None) -> None:
        self.db = db
        self.limits = limits or Limits()
        self.max_pending = max_pending  # per user: more is answered 503 queue_full

    # ------------------------------------------------------------ accept
    def accept(
        self, user_id: int, photo: dict[str, Any] | None, photo_id: str, jobs: list[NewJob]
    ) -> list[dict[str, Any]]:
        """Store the upload's row (when new), reserve the credits and queue the jobs: all or
        nothing. Raises CreditsError (402), LimitError (429), QueueFull (503)."""
        total = sum(job.credit_cost for job in jobs)
        now = time.time()
        with self.db.tx() as cur:
            user = _lock_user(cur, user_id)
            if (
                self.max_pending is not None
                and user["pending_hi"] + user["pending_lo"] + len(jobs) > self.max_pending
            ):
                raise QueueFull(retry_after=30)
            self._check_daily(cur, user_id, jobs)
            if user["balance"] < total:
                raise CreditsError(
                    f"not enough credits: {total} needed, {user['balance']} available",
                    "ask the service's administrator for more credits",
                )
            if photo is not None:
                cur.execute(
                    "INSERT INTO svc_photos (id, user_id, path, sha256, content_type, width, height, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        photo_id,
                        user_id,
                        photo["path"],
                        photo["sha256"],
                        photo["content_type"],
                        photo["width"],
                        photo["height"],
                        now,
                    ),
                )
            out = []
            hi = lo = 0
            for job in jobs:
                gen_id = new_id()
                self._insert(cur, gen_id, user_id, photo_id, job, now)
                cur.execute(
                    "INSERT INTO svc_movements (user_id, kind, amount, generation_id, model, note, created_at) "
                    "VALUES (?, 'reserve', ?, ?, ?, 'accepted', ?)",
                    (user_id, job.credit_cost, gen_id, job.model_key, now),
                )
                hi += job.priority
                lo += 1 - job.priority
                out.append({"generationId": gen_id, "creditCost": job.credit_cost, "priority": job.priority})
            cur.execute(
                "UPDATE svc_users SET balance = balance - ?, reserved = reserved + ?, pending_hi = pending_hi + ?, "
                "pending_lo = pending_lo + ? WHERE id = ?",
                (total, total, hi, lo, user_id),
            )
            ahead_users = cur.scalar(
                "SELECT COUNT(*) FROM svc_users WHERE id <> ? AND (pending_hi > 0 OR pending_lo > 0)",
                (user_id,),
            )
            own = user["pending_hi"] + user["pending_lo"]
            for i, item in enumerate(out):
                # Round-robin: each job of ours ahead waits one round of every other active user.
                item["queuePosition"] = 1 + (own + i) * (1 + int(ahead_users)) + int(ahead_users)
        return out

    def _insert(self, cur: Cursor, gen_id: str, user_id: int, photo_id: str, job: NewJob, now: float) -> None:
        columns = (
            "id, user_id, status, priority, model_key, pose, quality, params, seed, photo_id, credit_cost, "
            "reserved, reservation, webhook_url, created_at"
        )
        values = [gen_id, user_id, "pending", job.priority, job.model_key, job.pose, job.quality,
                  json.dumps(job.params), job.seed, photo_id, job.credit_cost, job.credit_cost, "open",
                  job.webhook_url, now]  # fmt: skip
        if not cur.postgres:  # PostgreSQL numbers seq itself (BIGSERIAL)
            columns += ", seq"
            values.append(int(cur.scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM svc_generations")))
        marks = ", ".join("?" * len(values))
        cur.execute(f"INSERT INTO svc_generations ({columns}) VALUES ({marks})", values)

    def _check_daily(self, cur: Cursor, user_id: int, jobs: list[NewJob]) -> None:
        day = today()
        per_model: dict[str, int] = {}
        for job in jobs:
            per_model[job.model_key] = per_model.get(job.model_key, 0) + 1
        if self.limits.user_daily is not None:
            used = int(
                cur.scalar(
                    "SELECT COALESCE(SUM(count), 0) FROM svc_daily WHERE day = ? AND user_id = ?",
                    (day, user_id),
                )
            )
            if used + len(jobs) > self.limits.user_daily:
                raise LimitError(
                    f"daily limit reached: {used} of {self.limits.user_daily} generations today",
                    "try again tomorrow (UTC), or ask the administrator to raise service.limits.user_daily",
                )
        for model, count in per_model.items():
            cap = (self.limits.model_daily or {}).get(model)
            used = int(
                cur.scalar(
                    "SELECT COALESCE(SUM(count), 0) FROM svc_daily WHERE day = ? AND user_id = ? AND model = ?",
                    (day, user_id, model),
                )
            )
            if cap is not None and used + count > cap:
                raise LimitError(
                    f"daily limit for {model} reached: {used} of {cap} generations today",
                    "try another model, or again tomorrow (UTC)",
                )
            _bump_daily(cur, day, user_id, model, count)

    # ------------------------------------------------------------ claim
    def claim(
        self, worker_id: str, lease_s: float = DEFAULT_LEASE_S, user_cap: int = 2
    ) -> dict[str, Any] | None:
        """The next job for this worker, marked processing under its lease; None when none is runnable."""
        now = time.time()
        with self.db.tx() as cur:
            user = cur.one(
                "SELECT id, pending_hi FROM svc_users WHERE (pending_hi > 0 OR pending_lo > 0) AND running < ? "
                "ORDER BY CASE WHEN pending_hi > 0 THEN 0 ELSE 1 END, last_served, id LIMIT 1"
                + cur.skip_locked,
                (user_cap,),
            )
            if user is None:
                return None
            priority = 1 if user["pending_hi"] > 0 else 0
            job = cur.one(
                "SELECT * FROM svc_generations WHERE user_id = ? AND status = 'pending' AND priority = ? "
                "ORDER BY seq LIMIT 1" + cur.skip_locked,
                (user["id"], priority),
            )
            if job is None:  # counters and rows disagree: never, but a claim must not spin on it
                cur.execute(
                    f"UPDATE svc_users SET {'pending_hi' if priority else 'pending_lo'} = 0 WHERE id = ?",
                    (user["id"],),
                )
                return None
            cur.execute(
                "UPDATE svc_generations SET status = 'processing', lease_owner = ?, lease_expires = ?, "
                "started_at = COALESCE(started_at, ?), claims = claims + 1, waiting_for = NULL WHERE id = ?",
                (worker_id, now + lease_s, now, job["id"]),
            )
            cur.execute(
                f"UPDATE svc_users SET running = running + 1, {'pending_hi' if priority else 'pending_lo'} = "
                f"{'pending_hi' if priority else 'pending_lo'} - 1, last_served = ? WHERE id = ?",
                (now, user["id"]),
            )
            job.update(status="processing", lease_owner=worker_id)
            return job

    def renew(self, worker_id: str, gen_ids: list[str], lease_s: float = DEFAULT_LEASE_S) -> None:
        if not gen_ids:
            return
        marks = ", ".join("?" * len(gen_ids))
        with self.db.tx() as cur:
            cur.execute(
                f"UPDATE svc_generations SET lease_expires = ? WHERE lease_owner = ? AND status = 'processing' "
                f"AND id IN ({marks})",
                [time.time() + lease_s, worker_id, *gen_ids],
            )

    def set_waiting(self, gen_id: str, text: str | None) -> None:
        with self.db.tx() as cur:
            cur.execute("UPDATE svc_generations SET waiting_for = ? WHERE id = ?", (text, gen_id))

    # ------------------------------------------------------------ finishing (exactly once)
    def _owned(self, cur: Cursor, gen_id: str, worker_id: str | None) -> dict[str, Any] | None:
        """The generation, locked, if this worker still holds its lease and its reservation is open."""
        user_id = cur.scalar("SELECT user_id FROM svc_generations WHERE id = ?", (gen_id,))
        if user_id is None:
            return None
        _lock_user(cur, int(user_id))
        job = cur.one("SELECT * FROM svc_generations WHERE id = ?" + cur.for_update, (gen_id,))
        if job is None or job["status"] != "processing" or job["reservation"] != "open":
            return None
        if worker_id is not None and job["lease_owner"] != worker_id:
            return None
        return job

    def settle(
        self, gen_id: str, worker_id: str, model_used: str, output_path: str, attempts: int, seconds: float
    ) -> int | None:
        """Spend the reservation and complete the job; None when this worker lost the job."""
        now = time.time()
        with self.db.tx() as cur:
            job = self._owned(cur, gen_id, worker_id)
            if job is None:
                return None
            amount = int(job["reserved"])
            cur.execute(
                "INSERT INTO svc_movements (user_id, kind, amount, generation_id, model, note, created_at) "
                "VALUES (?, 'settle', ?, ?, ?, 'generated', ?)",
                (job["user_id"], amount, gen_id, model_used, now),
            )
            cur.execute(
                "UPDATE svc_generations SET status = 'completed', reservation = 'settled', model_used = ?, "
                "output_path = ?, attempts = attempts + ?, completed_at = ?, lease_owner = NULL, "
                "lease_expires = NULL, waiting_for = NULL, error_code = NULL, error_message = NULL WHERE id = ?",
                (model_used, output_path, attempts, now, gen_id),
            )
            cur.execute(
                "UPDATE svc_users SET reserved = reserved - ?, running = running - 1 WHERE id = ?",
                (amount, job["user_id"]),
            )
            return amount

    def fail(
        self, gen_id: str, worker_id: str | None, code: str, message: str, attempts: int = 0
    ) -> int | None:
        """Refund the reservation and fail the job; None when it was not this worker's to fail."""
        now = time.time()
        with self.db.tx() as cur:
            job = self._owned(cur, gen_id, worker_id)
            if job is None:
                return None
            amount = int(job["reserved"])
            self._refund(cur, job, amount, message[:200], now)
            cur.execute(
                "UPDATE svc_generations SET status = 'failed', reservation = 'refunded', error_code = ?, "
                "error_message = ?, attempts = attempts + ?, completed_at = ?, lease_owner = NULL, "
                "lease_expires = NULL, waiting_for = NULL WHERE id = ?",
                (code, message[:2000], attempts, now, gen_id),
            )
            cur.execute("UPDATE svc_users SET running = running - 1 WHERE id = ?", (job["user_id"],))
            return amount

    @staticmethod
    def _refund(cur: Cursor, job: dict[str, Any], amount: int, note: str, now: float) -> None:
        cur.execute(
            "INSERT INTO svc_movements (user_id, kind, amount, generation_id, model, note, created_at) "
            "VALUES (?, 'refund', ?, ?, ?, ?, ?)",
            (job["user_id"], amount, job["id"], job["model_key"], note, now),
        )
        cur.execute(
            "UPDATE svc_users SET balance = balance + ?, reserved = reserved - ? WHERE id = ?",
            (amount, amount, job["user_id"]),
        )

    def requeue(
        self, gen_id: str, worker_id: str | None, why: str = "interrupted", attempts: int = 0
    ) -> bool:
        """Back to pending, its reservation still open (it follows the job)."""
        with self.db.tx() as cur:
            job = self._owned(cur, gen_id, worker_id)
            if job is None:
                return False
            self._to_pending(cur, job, why, attempts)
            return True

    @staticmethod
    def _to_pending(cur: Cursor, job: dict[str, Any], why: str, attempts: int = 0) -> None:
        column = "pending_hi" if job["priority"] else "pending_lo"
        cur.execute(
            "UPDATE svc_generations SET status = 'pending', lease_owner = NULL, lease_expires = NULL, "
            "attempts = attempts + ?, error_message = ?, waiting_for = NULL WHERE id = ?",
            (attempts, why, job["id"]),
        )
        cur.execute(
            f"UPDATE svc_users SET running = running - 1, {column} = {column} + 1 WHERE id = ?",
            (job["user_id"],),
        )

    def adjust_reservation(self, gen_id: str, worker_id: str, model: str, amount: int) -> None:
        """A fallback model costs another amount: take or give back the difference."""
        now = time.time()
        with self.db.tx() as cur:
            job = self._owned(cur, gen_id, worker_id)
            if job is None:
                return
            user = _lock_user(cur, int(job["user_id"]))
            diff = amount - int(job["reserved"])
            if diff > 0:
                if user["balance"] < diff:
                    raise CreditsError(
                        f"not enough credits for the fallback: {diff} more needed, {user['balance']} left"
                    )
                cur.execute(
                    "INSERT INTO svc_movements (user_id, kind, amount, generation_id, model, note, created_at) "
                    "VALUES (?, 'reserve', ?, ?, ?, 'fallback costs more', ?)",
                    (job["user_id"], diff, gen_id, model, now),
                )
                cur.execute(
                    "UPDATE svc_users SET balance = balance - ?, reserved = reserved + ? WHERE id = ?",
                    (diff, diff, job["user_id"]),
                )
            elif diff < 0:
                self._refund(cur, job, -diff, "fallback costs less", now)
            cur.execute("UPDATE svc_generations SET reserved = ? WHERE id = ?", (amount, gen_id))

    # ------------------------------------------------------------ cancel / delete (the user's)
    def cancel_or_delete(self, user_id: int, gen_id: str) -> str | None:
        """pending: cancelled and refunded; finished: its record and image removed. None: not
        this user's (or not there); 'processing': running now, cannot be cancelled."""
        with self.db.tx() as cur:
            _lock_user(cur, user_id)
            job = cur.one(
                "SELECT * FROM svc_generations WHERE id = ? AND user_id = ?" + cur.for_update,
                (gen_id, user_id),
            )
            if job is None:
                return None
            if job["status"] == "processing":
                return "processing"
            if job["status"] == "pending":
                self._refund(cur, job, int(job["reserved"]), "cancelled", time.time())
                column = "pending_hi" if job["priority"] else "pending_lo"
                cur.execute(
                    "UPDATE svc_generations SET status = 'cancelled', reservation = 'refunded', completed_at = ? "
                    "WHERE id = ?",
                    (time.time(), gen_id),
                )
                cur.execute(f"UPDATE svc_users SET {column} = {column} - 1 WHERE id = ?", (user_id,))
                return "cancelled"
            cur.execute("DELETE FROM svc_generations WHERE id = ?", (gen_id,))
        if job["output_path"]:
            with contextlib.suppress(OSError):
                os.unlink(job["output_path"])
        return "deleted"

    # ------------------------------------------------------------ recovery
    def expire_leases(self) -> int:
        """Jobs whose lease ran out (a worker that hung or lost the database) go back to the queue."""
        with self.db.read() as cur:
            ids = [r["id"] for r in cur.all(
                "SELECT id FROM svc_generations WHERE status = 'processing' AND lease_expires < ?", (time.time(),)
            )]  # fmt: skip
        return sum(
            self._requeue_if(gen_id, lambda job: job["lease_expires"] < time.time(), "lease expired")
            for gen_id in ids
        )

    def recover_dead_workers(self, stale_s: float = DEFAULT_LEASE_S) -> int:
        """At start: every job left processing by a worker that is gone (a dead process on this
        host, or one whose heartbeat stopped) is queued again with its reservation."""
        host = socket.gethostname()
        now = time.time()
        with self.db.read() as cur:
            rows = cur.all("SELECT DISTINCT lease_owner FROM svc_generations WHERE status = 'processing'")
            beats = {r["id"]: r["heartbeat_at"] for r in cur.all("SELECT id, heartbeat_at FROM svc_workers")}
        dead = set()
        for row in rows:
            owner = row["lease_owner"] or ""
            owner_host, _, rest = owner.partition("/")
            pid = rest.split("/", 1)[0]
            if (
                owner_host == host
                and pid.isdigit()
                and not _pid_alive(int(pid))
                or now - beats.get(owner, 0) > stale_s
            ):
                dead.add(owner)
        count = 0
        for owner in dead:
            with self.db.read() as cur:
                ids = [r["id"] for r in cur.all(
                    "SELECT id FROM svc_generations WHERE status = 'processing' AND lease_owner = ?", (owner,)
                )]  # fmt: skip
            count += sum(
                self._requeue_if(i, lambda job, o=owner: job["lease_owner"] == o, "worker died") for i in ids
            )
        return count

    def _requeue_if(self, gen_id: str, still, why: str) -> bool:
        with self.db.tx() as cur:
            job = self._owned(cur, gen_id, None)
            if job is None or not still(job):
                return False
            self._to_pending(cur, job, why)
            return True

    # ------------------------------------------------------------ workers
    def register_worker(self, worker_id: str) -> None:
        now = time.time()
        host, _, rest = worker_id.partition("/")
        with self.db.tx() as cur:
            cur.execute(
                "INSERT INTO svc_workers (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (worker_id, host, int(rest.split("/", 1)[0] or 0), now, now),
            )

    def heartbeat(self, worker_id: str, done: int = 0) -> None:
        with self.db.tx() as cur:
            cur.execute(
                "UPDATE svc_workers SET heartbeat_at = ?, jobs_done = jobs_done + ? WHERE id = ?",
                (time.time(), done, worker_id),
            )

    def count_request(self, model: str, limit_total: int | None, limit_model: int | None) -> None:
        """One provider attempt, counted for today across the service (user 0), refused past the
        CLI's own limits.daily_requests / limits.models.* (the same config keys)."""
        day = today()
        with self.db.tx() as cur:
            if limit_total is not None:
                used = int(
                    cur.scalar(
                        "SELECT COALESCE(SUM(count), 0) FROM svc_daily WHERE day = ? AND user_id = 0", (day,)
                    )
                )
                if used >= limit_total:
                    raise LimitError(
                        f"daily request limit reached: {used} of {limit_total} (limits.daily_requests)"
                    )
            if limit_model is not None:
                used = int(
                    cur.scalar(
                        "SELECT COALESCE(SUM(count), 0) FROM svc_daily WHERE day = ? AND user_id = 0 AND model = ?",
                        (day, model),
                    )
                )
                if used >= limit_model:
                    raise LimitError(f"daily request limit for {model} reached: {used} of {limit_model}")
            _bump_daily(cur, day, 0, model, 1)

    # ------------------------------------------------------------ reads
    def get(self, gen_id: str, user_id: int | None) -> dict[str, Any] | None:
        """A generation if it is this user's (user_id None: an admin's look)."""
        with self.db.read() as cur:
            if user_id is None:
                return cur.one("SELECT * FROM svc_generations WHERE id = ?", (gen_id,))
            return cur.one("SELECT * FROM svc_generations WHERE id = ? AND user_id = ?", (gen_id, user_id))

    def position(self, job: dict[str, Any]) -> int:
        """Roughly where a pending job stands: its own jobs ahead times the users sharing the rounds."""
        with self.db.read() as cur:
            own = int(cur.scalar(
                "SELECT COUNT(*) FROM svc_generations WHERE user_id = ? AND status = 'pending' AND priority = ? AND seq < ?",
                (job["user_id"], job["priority"], job["seq"]),
            ))  # fmt: skip
            others = int(cur.scalar(
                "SELECT COUNT(*) FROM svc_users WHERE id <> ? AND (pending_hi > 0 OR pending_lo > 0)", (job["user_id"],)
            ))  # fmt: skip
        return 1 + own * (1 + others) + others

    def list_for(self, user_id: int, limit: int = 20, before_seq: int | None = None) -> list[dict[str, Any]]:
        with self.db.read() as cur:
            if before_seq is None:
                return cur.all(
                    "SELECT * FROM svc_generations WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                    (user_id, limit),
                )
            return cur.all(
                "SELECT * FROM svc_generations WHERE user_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (user_id, before_seq, limit),
            )

    def photo(self, photo_id: str, user_id: int | None) -> dict[str, Any] | None:
        with self.db.read() as cur:
            if user_id is None:
                return cur.one("SELECT * FROM svc_photos WHERE id = ?", (photo_id,))
            return cur.one("SELECT * FROM svc_photos WHERE id = ? AND user_id = ?", (photo_id, user_id))

    def queue_stats(self) -> dict[str, Any]:
        with self.db.read() as cur:
            states = {
                r["status"]: int(r["n"])
                for r in cur.all("SELECT status, COUNT(*) AS n FROM svc_generations GROUP BY status")
            }
            users = cur.all(
                "SELECT name, pending_hi + pending_lo AS pending, running FROM svc_users "
                "WHERE pending_hi + pending_lo > 0 OR running > 0 ORDER BY name"
            )
        return {"byStatus": states, "users": users}

    def workers(self) -> list[dict[str, Any]]:
        with self.db.read() as cur:
            return cur.all("SELECT * FROM svc_workers ORDER BY heartbeat_at DESC LIMIT 200")

    def stats_today(self) -> dict[str, int]:
        with self.db.read() as cur:
            rows = cur.all(
                "SELECT model, SUM(count) AS n FROM svc_daily WHERE day = ? AND user_id <> 0 GROUP BY model",
                (today(),),
            )
        return {r["model"]: int(r["n"]) for r in rows}


def _bump_daily(cur: Cursor, day: str, user_id: int, model: str, count: int) -> None:
    cur.execute(
        "INSERT INTO svc_daily (day, user_id, model, count) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (day, user_id, model) DO UPDATE SET count = svc_daily.count + excluded.count",
        (day, user_id, model, count),
    )


def _lock_user(cur: Cursor, user_id: int) -> dict[str, Any]:
    row = cur.one("SELECT * FROM svc_users WHERE id = ?" + cur.for_update, (user_id,))
    if row is None:
        raise LookupError(f"user {user_id} is gone")
    return row


def _pid_alive(pid: int) -> bool:
    from avatargen.ledger import pid_alive

    return pid_alive(pid)


def worker_id(index: int = 0) -> str:
    """host/pid/random/index: the host and pid let a restart on the same machine tell at once
    that the worker is dead; the random part keeps a recycled pid from being taken for it."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}/{index}"
