"""Provider requests: the id a provider gave a submitted job, kept with the job's reservation.

A provider bills every job it was sent, whether or not anyone reads its result. So the id is
saved the moment the submit answers, and a later run of the same job (after a kill -9, Ctrl-C,
a timeout, `retry`) polls it instead of submitting again. It is dropped when the job settles, or
when the provider says the job failed or is gone (then a new submit is the only way)."""

from __future__ import annotations

import json
from typing import Any

from avatargen.ledger.store import Store


class ProviderRequests(Store):
    def save_provider_request(self, job_key: str, request: dict[str, Any]) -> None:
        """Keep the provider's id of this job's submitted request (on its open reservation)."""
        with self._tx() as db:
            db.execute(
                "UPDATE reservations SET provider_request = ? WHERE job_key = ? AND state = 'open'",
                (json.dumps(request, sort_keys=True), job_key),
            )

    def provider_request(self, job_key: str) -> dict[str, Any] | None:
        """The request an earlier run (or this one) submitted for this job, if any is kept."""
        with self._read() as db:
            row = db.execute(
                "SELECT provider_request FROM reservations WHERE job_key = ?", (job_key,)
            ).fetchone()
        if row is None or not row[0]:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None  # unreadable: submitting again is the safe side
        return value if isinstance(value, dict) else None

    def forget_provider_request(self, job_key: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE reservations SET provider_request = NULL WHERE job_key = ?", (job_key,))
