"""A job's HTTP attempts counted against limits.daily_requests, the first one before its request
slot is taken.

Counting is a ledger transaction, and under a busy batch it waits for the ledger behind other
workers' commits: done inside the slot, that wait left one of --concurrency requests idle for
it on every job. The first attempt is counted while the job still waits for a slot; an attempt
counted but never sent (the batch stopped, the model failed before sending, a provider job
resumed without a new submit) is given back, so the count stays exactly what was sent."""

from __future__ import annotations

from typing import Any


class AttemptCounter:
    def __init__(self, ledger: Any, model_key: str, daily_limit: int | None, model_limit: int | None) -> None:
        self.ledger = ledger
        self.model_key = model_key
        self.limits = (daily_limit, model_limit)
        self._ahead = False  # one attempt counted, not yet sent

    def count_ahead(self) -> None:
        """Count the first attempt now (may raise LimitError, as counting it later would)."""
        self.ledger.count_request(self.model_key, *self.limits)
        self._ahead = True

    def attempt(self) -> None:
        """Before each attempt is sent: the first uses the count taken ahead."""
        if self._ahead:
            self._ahead = False
            return
        self.ledger.count_request(self.model_key, *self.limits)

    def give_back(self) -> None:
        """After the call: an attempt counted ahead and never sent is not counted."""
        if self._ahead:
            self._ahead = False
            self.ledger.uncount_request(self.model_key)

