"""The credit ledger and job history: one SQLite file (WAL) in the data folder.

One module per concern: `store` (the file, transactions, migrations), `credits` (grant,
reserve, settle, refund, reconcile), `jobs` (batches, jobs, history), `limits` (requests per
day), `provider_requests` (a provider's id of a submitted job). `Ledger` is all of them on one connection.
"""

from __future__ import annotations

from avatargen.ledger.credits import MAX_GRANT, JobBusy, Totals, Verification
from avatargen.ledger.jobs import Jobs
from avatargen.ledger.limits import Limits
from avatargen.ledger.provider_requests import ProviderRequests
from avatargen.ledger.store import BUSY_TIMEOUT_S, DEFAULT_STARTER_CREDITS, default_path, pid_alive

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_STARTER_CREDITS",
    "JobBusy",
    "MAX_GRANT",
    "Ledger",
    "Totals",
    "Verification",
    "default_path",
    "open_ledger",
    "pid_alive",
]


class Ledger(Jobs, Limits, ProviderRequests):
    """Credits, jobs, limits and provider requests over one thread-safe connection."""


def open_ledger(starter_credits: int | None = None) -> Ledger:
    """The user's ledger, with the configured starter balance for a new one."""
    if starter_credits is None:
        from avatargen.settings import get_value

        configured = get_value("credits.starter")
        starter_credits = int(configured) if configured is not None else None
    return Ledger(default_path(), starter_credits)
