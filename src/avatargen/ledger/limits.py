"""Usage limits: HTTP requests counted per day (UTC) and model, refused past a configured cap."""

from __future__ import annotations

from avatargen.errors import LimitError
from avatargen.ledger.store import Store, today


class Limits(Store):
    def count_request(
        self, model: str, limit_total: int | None = None, limit_model: int | None = None
    ) -> None:
        """Count one HTTP attempt for today, refusing it (LimitError) when it would cross a limit."""
        day = today()
        with self._tx() as db:
            if limit_total is not None:
                used = db.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM requests WHERE day = ?", (day,)
                ).fetchone()[0]
                if used >= limit_total:
                    raise LimitError(
                        f"daily request limit reached: {used} of {limit_total} (limits.daily_requests)",
                        "resume tomorrow with the same command, or raise it: "
                        "avatargen config set limits.daily_requests N",
                    )
            if limit_model is not None:
                row = db.execute(
                    "SELECT count FROM requests WHERE day = ? AND model = ?", (day, model)
                ).fetchone()
                used = row[0] if row else 0
                if used >= limit_model:
                    raise LimitError(
                        f"daily request limit for {model} reached: {used} of {limit_model} "
                        f"(limits.models.{model})",
                        "resume tomorrow with the same command, or raise it in config",
                    )
            db.execute(
                "INSERT INTO requests (day, model, count) VALUES (?, ?, 1) "
                "ON CONFLICT (day, model) DO UPDATE SET count = count + 1",
                (day, model),
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
