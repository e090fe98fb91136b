"""Usage limits: HTTP requests counted per day (UTC) and model, refused past a configured cap."""

from __future__ import annotations

from avatargen.errors import LimitError
from avatargen.ledger.store import Store, today


class Limits(Store):
    def count_request(
        self, model: str, limit_total: int | None = None, limit_model: int | None = None
    ) -> None:
        """Count one HTTP attempt for today, refusing it (LimitError) when it would cross a limit.

        One statement, checks and count together: SQLite runs it as a write transaction of its
        own, taken before anything is read, so racing processes never pass a limit. It runs
        inside a request slot before every attempt, so it holds the ledger as briefly as it can
        (a BEGIN, a check and a COMMIT were three waits for the ledger and the interpreter)."""
        day = today()
        with self._read() as db:
            counted = db.execute(
                "INSERT INTO requests (day, model, count) SELECT ?1, ?2, 1 "
                "WHERE (?3 IS NULL OR (SELECT COALESCE(SUM(count), 0) FROM requests WHERE day = ?1) < ?3) "
                "AND (?4 IS NULL OR COALESCE((SELECT count FROM requests WHERE day = ?1 AND model = ?2), 0) < ?4) "
                "ON CONFLICT (day, model) DO UPDATE SET count = count + 1",
                (day, model, limit_total, limit_model),
            ).rowcount
        if counted:
            return
        used = self.requests_today()
        if limit_total is not None and used >= limit_total:
            raise LimitError(
                f"daily request limit reached: {used} of {limit_total} (limits.daily_requests)",
                "resume tomorrow with the same command, or raise it: "
                "avatargen config set limits.daily_requests N",
            )
        raise LimitError(
            f"daily request limit for {model} reached: {self.requests_today(model)} of {limit_model} "
            f"(limits.models.{model})",
            "resume tomorrow with the same command, or raise it in config",
        )

    def requests_today(self, model: str | None = None) -> int:
        with self._read():
            if model:
                row = self._db.execute(
                    "SELECT count FROM requests WHERE day = ? AND model = ?", (today(), model)
                ).fetchone()
                return int(row[0]) if row else 0
            return int(
                self._db.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM requests WHERE day = ?", (today(),)
                ).fetchone()[0]
            )
