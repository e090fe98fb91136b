"""A job's provider request, handed to a backend that can resume one (hf-providers).

The batch engine gives such a backend a RequestJournal for the job it runs: the backend saves the
provider's id of the job as soon as the submit answers, and on the next run of the same job (after
a kill, a stop, a timeout, `retry`) polls that id instead of submitting (and paying) again."""

from __future__ import annotations

from typing import Any


class RequestJournal:
    """The ledger's record of one job's provider request (ledger/provider_requests.py)."""

    def __init__(self, ledger: Any, job_key: str) -> None:
        self.ledger = ledger
        self.job_key = job_key

    def load(self) -> dict[str, Any] | None:
        return self.ledger.provider_request(self.job_key)

    def save(self, request: dict[str, Any]) -> None:
        self.ledger.save_provider_request(self.job_key, request)

    def forget(self) -> None:
        self.ledger.forget_provider_request(self.job_key)


def resume_options(provider: Any, ledger: Any, job_key: str) -> dict[str, Any]:
    """The keyword arguments of `provider.generate` that let it resume this job's request: none
    for a backend without requests to resume (an endpoint answers the image itself)."""
    if not getattr(provider, "resumes_requests", False) or not hasattr(ledger, "provider_request"):
        return {}  # the service's job ledger keeps no provider requests (yet): a plain submit
    return {"journal": RequestJournal(ledger, job_key)}
