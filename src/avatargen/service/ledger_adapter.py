"""The ledger BatchRunner writes to, backed by one claimed job of the service's queue.

BatchRunner calls exactly these methods (see batch.py). The credits were reserved when the
job was accepted, so `reserve_and_start` only checks that this worker still holds the job;
`mark_done` settles it; a failure is kept until the run returns (its exit code tells the
stable error code) and then refunded; a stop puts it back in the queue with its reservation.
"""

from __future__ import annotations

from typing import Any

from avatargen.ledger.credits import JobBusy
from avatargen.service.queue import Queue

# An avatargen exit code -> the stable `error.code` of a failed generation.
FAILURE_CODES = {
    4: "insufficient_credits",  # a fallback that costs more than is left
    5: "invalid_photo",  # INPUT: not a usable image, no person for an extracted pose
    6: "model_unavailable",
    7: "backend_auth",
    8: "network_error",
    9: "provider_error",
    10: "daily_limit",
    74: "storage_error",
}


class JobLedger:
    def __init__(self, queue: Queue, worker_id: str, generation: dict[str, Any], output_path: str) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.generation = generation
        self.output_path = output_path
        self.outcome: str | None = None  # completed | failed | requeued | lost
        self.failure: tuple[str, int, bool] | None = None  # (message, attempts, permanent)
        self.settled: int | None = None

    @property
    def gen_id(self) -> str:
        return self.generation["id"]

    # ------------------------------------------------------------ what BatchRunner calls
    def reserve_and_start(self, job_key: str, model: str, amount: int, batch_id: str | None = None) -> None:
        current = self.queue.get(job_key, None)
        if current is None or current["status"] != "processing" or current["lease_owner"] != self.worker_id:
            self.outcome = "lost"
            raise JobBusy(job_key)

    def adjust_reservation(self, job_key: str, model: str, amount: int) -> None:
        self.queue.adjust_reservation(job_key, self.worker_id, model, amount)

    def count_request(
        self, model: str, limit_total: int | None = None, limit_model: int | None = None
    ) -> None:
        self.queue.count_request(model, limit_total, limit_model)

    def mark_done(
        self, job_key: str, model_used: str, attempts: int, seconds: float, note: str = "generated"
    ) -> int:
        credits = self.queue.settle(job_key, self.worker_id, model_used, self.output_path, attempts, seconds)
        self.outcome = "completed" if credits is not None else "lost"
        self.settled = credits
        return credits or 0

    def mark_failed(
        self,
        job_key: str,
        error: str,
        attempts: int = 0,
        status: str = "failed",
        model_used: str | None = None,
        permanent: bool = False,
    ) -> int:
        if status == "queued" and error == "interrupted":  # a stop: the job goes back, credits held
            self.outcome = (
                "requeued" if self.queue.requeue(job_key, self.worker_id, error, attempts) else "lost"
            )
            return 0
        self.failure = (error, attempts, permanent)  # refunded in finish(), with its code
        self.outcome = "failed"
        return int(self.generation["reserved"])

    # ------------------------------------------------------------ after the run
    def finish(self, failure_codes: list[int]) -> None:
        if self.outcome == "failed" and self.failure is not None:
            message, attempts, _permanent = self.failure
            exit_code = failure_codes[0] if failure_codes else 0
            code = FAILURE_CODES.get(exit_code, "generation_failed" if exit_code != 70 else "internal_error")
            if "daily request limit" in message:
                code = "daily_limit"
            if self.queue.fail(self.gen_id, self.worker_id, code, message, attempts) is None:
                self.outcome = "lost"
        elif self.outcome is None:  # the runner stopped before the job: back to the queue
            self.outcome = (
                "requeued" if self.queue.requeue(self.gen_id, self.worker_id, "not run") else "lost"
            )
