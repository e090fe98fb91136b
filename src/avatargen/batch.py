"""Running a planned batch: bounded concurrency, credits reserved per job, shared cold-start
and rate-limit gates per model, fallbacks, progress, and a clean stop on Ctrl-C or a limit.

Per job: reserve credits -> pose image at the model's size -> provider call (retries, waits)
-> atomic write with metadata -> settle; any failure refunds and the batch goes on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatargen.app.backends import Backends
from avatargen.app.fallbacks import FallbackPolicy, fallback_worthy
from avatargen.app.job_request import RequestBuilder
from avatargen.catalog import Catalog, Model
from avatargen.errors import (
    AvatargenError,
    CreditsError,
    InputError,
    LimitError,
    ModelUnavailable,
    NetworkError,
    OutputError,
    ProviderError,
    RunStopped,
)
from avatargen.ledger import JobBusy, Ledger
from avatargen.plan import Job
from avatargen.progress import Progress
from avatargen.providers.resume import resume_options


@dataclass
class RunSettings:
    concurrency: int = 4
    overwrite: bool = False
    fallback: bool = True
    allow_upgrade: bool = False
    live_progress: bool = False
    endpoint: str | None = None
    provider: str | None = None
    token: str | None = None
    wait_timeout: float | None = None
    daily_limit: int | None = None
    model_limits: dict[str, int] = field(default_factory=dict)
    model_dir: str | None = None
    tiny: bool = False
    concurrency_auto: bool = False  # following a deployed endpoint's replicas (deploy/batch_hooks.py)
    hf_provider: str | None = None  # --hf-provider as given (the router's provider), for retry
    endpoint_after: str | None = None  # --endpoint-after as given, for retry
    regenerate: bool = False  # --regenerate: make done jobs again (charged), replacing their files

    # What `avatargen retry` re-uses of how a batch ran. Never the token: retry reads it from
    # the environment again. An endpoint URL is stored with any credentials in it masked.
    REMEMBERED = (
        "endpoint",
        "provider",
        "model_dir",
        "tiny",
        "concurrency",
        "concurrency_auto",
        "hf_provider",
        "endpoint_after",
        "wait_timeout",
        "fallback",
        "allow_upgrade",
    )

    def remembered(self) -> dict[str, Any]:
        from avatargen.redact import redact_url

        stored = {name: getattr(self, name) for name in self.REMEMBERED}
        if stored["endpoint"]:
            stored["endpoint"] = redact_url(stored["endpoint"])
        return stored


@dataclass
class Summary:
    batch_id: str
    total: int
    done: int = 0
    copied: int = 0  # of done: finished before into another folder, copied at no charge
    failed: int = 0
    skipped: int = 0
    left_queued: int = 0
    credits_spent: int = 0
    failed_items: list[dict[str, str]] = field(default_factory=list)
    duration_s: float = 0.0
    output_dir: str = ""
    stopped: str | None = None  # None, 'interrupted', 'limit', 'credits', 'error'
    stop_message: str = ""
    signal: int | None = None  # the signal that interrupted the batch (2 = Ctrl-C, 15, 1)
    # 'error': the failure that stopped every job (cannot load the model, cannot write)
    stop_error: AvatargenError | None = None
    failure_codes: list[int] = field(default_factory=list)  # exit code of each failed job

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stop_error"}


class _Stop(RunStopped):
    """Raised inside a worker when the batch is stopping: the job goes back to the queue."""


@dataclass
class _Track:
    """One job's HTTP attempts so far and its state on the progress display."""

    attempts: int = 0
    state: str = "queued"

    def move(self, progress: Progress, new: str) -> None:
        if self.state != new:
            progress.move(self.state, new)
            self.state = new


class BatchRunner:
    """One batch's jobs on worker threads: reserve, generate (with fallbacks), write, settle;
    refund on failure; stop rules for Ctrl-C, limits, credits and failures every job would meet.
    What a job is sent is RequestBuilder's (app/job_request.py); which models it may run on is
    FallbackPolicy's (app/fallbacks.py); the providers and gates are Backends' (app/backends.py),
    passed in, and closed by whoever made them: one batch's (app/run.py) or a service process's,
    shared by its workers with the fallback chains and the rendered skeletons."""

    def __init__(
        self,
        ledger: Ledger,
        catalog: Catalog,
        poses: dict[str, Any],
        settings: RunSettings,
        emit: Callable[[dict[str, Any]], None] | None = None,
        *,
        backends: Backends,
        fallbacks: FallbackPolicy | None = None,
        pose_pngs: dict[tuple[str, int, int], bytes] | None = None,
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.settings = settings
        self.emit = emit
        self.backends = backends
        self.fallbacks = fallbacks or FallbackPolicy(
            catalog, self.backends, enabled=settings.fallback, allow_upgrade=settings.allow_upgrade
        )
        # --concurrency bounds the requests in flight; a few more workers than that prepare the
        # next photos and write and settle finished ones meanwhile, so a slot never idles on that.
        self._workers = worker_count(settings.concurrency)
        self.requests = RequestBuilder(catalog, poses, self._workers, pose_pngs)
        self._slots = threading.BoundedSemaphore(max(1, settings.concurrency))
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._stop = threading.Event()  # start no new job (credits or limit ran out, or Ctrl-C)
        self._abort = threading.Event()  # Ctrl-C: drop in-flight jobs too, their credits refunded
        # A failure every job would meet (402, a refused token, a full disk): a job already
        # reserved but still waiting for a request slot is not sent. A credits or limit stop only
        # stops new reservations: what is reserved is paid for and still goes.
        self._halt = threading.Event()
        self._in_flight: set[str] = set()
        self._threads: list[threading.Thread] = []  # close() lets them finish their ledger writes

    def preflight(self, model: Model, announce: Callable[[str], None]) -> None:
        self.backends.preflight(model, announce, self.fallbacks.models_to_try(model)[1:])

    def close(self) -> None:
        """Let the worker threads finish their ledger writes after a stop (the backends, whose
        close() stops the local backend's generation thread, are their maker's to close)."""
        deadline = time.monotonic() + 2.0  # an HTTP call in flight is not waited for longer
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------ running
    def run(self, batch_id: str, jobs: list[Job], output_dir: Path) -> Summary:
        summary = Summary(batch_id, len(jobs), output_dir=str(output_dir))
        self.requests.prepare(jobs, self.fallbacks.models_to_try)
        progress = Progress(len(jobs), self.settings.live_progress)
        started = time.monotonic()
        queue = iter(jobs)
        queue_lock = threading.Lock()

        def worker() -> None:
            while not self._stop.is_set():
                with queue_lock:
                    job = next(queue, None)
                if job is None:
                    return
                self._run_job(job, summary, progress)

        threads = [
            threading.Thread(target=worker, name=f"avatargen-worker-{i}", daemon=True)
            for i in range(max(1, min(self._workers, len(jobs))))
        ]
        self._threads = threads
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)  # short joins keep Ctrl-C deliverable
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (see cli.signals)
            self._abort.set()
            self._stop.set()
            summary.stopped = "interrupted"
            summary.signal = getattr(exc, "signum", 2)
            self._refund_in_flight("interrupted")
        finally:
            progress.stop()
            summary.duration_s = round(time.monotonic() - started, 3)
        finished = summary.done + summary.failed + summary.skipped
        summary.left_queued = summary.total - finished
        return summary

    def _refund_in_flight(self, why: str) -> None:
        with self._lock:
            keys = list(self._in_flight)
        for key in keys:
            # A ledger that cannot be written: the next run reconciles these (as after kill -9).
            with contextlib.suppress(OutputError):
                self.ledger.mark_failed(key, why, status="queued")

    def _stop_batch(self, summary: Summary, exc: AvatargenError) -> None:
        """A failure every job would meet alike: start no new job, keep the first such error."""
        self._halt.set()
        self._stop.set()
        with self._lock:
            if summary.stop_error is None:
                summary.stopped = "error"
                summary.stop_error = exc
                summary.stop_message = exc.one_line()

    def _emit(self, record: dict[str, Any]) -> None:
        if self.emit is not None:
            with self._emit_lock:
                self.emit(record)

    def _run_job(self, job: Job, summary: Summary, progress: Progress) -> None:
        model = self.catalog.by_key[job.model]
        if not self._reserve(job, model, summary, progress):
            return
        with self._lock:
            self._in_flight.add(job.job_key)
        track = _Track()
        try:
            ran, result = self._generate(job, model, progress, track)
            credits = self._write_and_settle(job, model, ran, result, track.attempts)
        except BaseException as exc:
            self._job_failed(job, exc, track, summary, progress)
            if not isinstance(exc, Exception):
                raise
        else:
            progress.move(track.state, "done")
            progress.spent(credits)
            with self._lock:
                summary.done += 1
                summary.credits_spent += credits
            record = job.result_line(
                status="done",
                model_used=ran.key,
                credits=credits,
                seconds=round(result.seconds, 3),
                attempts=track.attempts,
            )
            if ran is not model:
                record["fallback_from"] = model.key
            self._emit(record)
        finally:
            with self._lock:
                self._in_flight.discard(job.job_key)

    def _reserve(self, job: Job, model: Model, summary: Summary, progress: Progress) -> bool:
        """The job's credits reserved and the job marked running; False: it is not to run."""
        try:
            self.ledger.reserve_and_start(job.job_key, model.key, model.credit_cost, summary.batch_id)
        except JobBusy as busy:
            # Another live process runs (or just finished) this very job: not ours, not a failure.
            with self._lock:
                summary.skipped += 1
            progress.move("queued", "done")
            self._emit(job.result_line(status="skipped", reason=busy.reason, credits=0))
            return False
        except CreditsError as exc:
            # Another process spent the balance after our quote: stop cleanly, leave the rest queued.
            self._stop.set()
            with self._lock:
                summary.stopped = summary.stopped or "credits"
                summary.stop_message = exc.message
            return False
        except OutputError as exc:  # the ledger cannot be written: nothing was reserved
            self._stop_batch(summary, exc)
            return False
        return True

    def _generate(self, job: Job, model: Model, progress: Progress, track: _Track):
        """The provider call, with fallbacks: (the model that ran, its result)."""
        chain = self.fallbacks.models_to_try(model)
        for candidate in chain:
            if candidate is not model:
                self.ledger.adjust_reservation(job.job_key, candidate.key, candidate.credit_cost)
            try:
                request = self.requests.request(job, candidate)
            finally:
                if candidate is model:
                    self.requests.release_photo(job)
            try:
                result = self._call(job, candidate, candidate is model, request, progress, track)
            except (ModelUnavailable, ProviderError, NetworkError) as exc:
                if exc.stops_batch or not fallback_worthy(exc) or candidate is chain[-1]:
                    raise
                progress.waiting(f"{candidate.alias} failed ({exc.message}); trying a fallback")
                continue
            if self._abort.is_set():
                raise _Stop()
            return candidate, result
        raise AssertionError("unreachable: the chain always has the model itself")

    def _call(self, job: Job, model: Model, primary: bool, request, progress: Progress, track: _Track):
        """One model's provider call in one of --concurrency slots (its waits and retries too)."""

        def on_event(event) -> None:
            track.move(progress, "waiting")
            progress.waiting(event.reason)

        def on_attempt() -> None:
            if self._abort.is_set():
                raise _Stop()
            self.ledger.count_request(
                model.key, self.settings.daily_limit, self.settings.model_limits.get(model.key)
            )
            track.attempts += 1
            track.move(progress, "generating")

        provider = self.backends.provider_for(model, primary=primary)
        with self._slots:
            if self._halt.is_set() or self._abort.is_set():  # halted while it waited: not sent
                raise _Stop()
            return provider.generate(
                request,
                on_event=on_event,
                gate=self.backends.gate_for(model.key),
                on_attempt=on_attempt,
                **resume_options(provider, self.ledger, job.job_key),  # a provider job already paid for
            )

    def _write_and_settle(self, job: Job, model: Model, ran: Model, result, attempts: int) -> int:
        from avatargen.images import write_output

        try:
            meta = self.requests.metadata(job, ran, getattr(result, "sampler", None))
            if getattr(result, "weights_revisions", None):  # the Hub commits the local backend loaded
                meta["weights_revisions"] = result.weights_revisions
            write_output(
                job.output_path,
                result.image,
                meta,
                overwrite=self.settings.overwrite or self.settings.regenerate,
                png_chunks=getattr(result, "png_chunks", None),
            )
        except OSError as exc:
            # A full disk or a read-only folder fails every job alike: stop, keep the rest queued.
            raise OutputError(
                f"{job.output_path.parent}: cannot write {job.output_path.name} ({exc.strerror or exc})",
                "free disk space or choose a writable folder with -o, then run the same command again",
            ) from None
        return self.ledger.mark_done(
            job.job_key,
            ran.key,
            attempts,
            result.seconds,
            note="generated" if ran is model else f"generated by fallback {ran.key}",
        )

    def _job_failed(
        self, job: Job, exc: BaseException, track: _Track, summary: Summary, progress: Progress
    ) -> None:
        """Record a job that did not finish: back to the queue (a stop) or failed (its own fault)."""
        attempts, state = track.attempts, track.state
        try:
            if isinstance(exc, RunStopped) or not isinstance(exc, Exception):
                self.ledger.mark_failed(job.job_key, "interrupted", attempts, status="queued")
                progress.move(state, "queued")
            elif isinstance(exc, LimitError):
                self._stop.set()
                self.ledger.mark_failed(job.job_key, exc.message, attempts, status="queued")
                progress.move(state, "queued")
                with self._lock:
                    summary.stopped = "limit"
                    summary.stop_message = exc.one_line()
            elif isinstance(exc, AvatargenError) and exc.stops_batch:
                self._stop_batch(summary, exc)
                self.ledger.mark_failed(job.job_key, exc.message, attempts, status="queued")
                progress.move(state, "queued")
            else:  # one bad photo or call never stops the batch
                self._record_failure(job, exc, attempts, state, summary, progress)
        except OutputError as ledger_exc:
            # The ledger itself cannot be written: stop; the next run reconciles this job's credits.
            self._stop_batch(summary, ledger_exc)

    def _record_failure(
        self, job: Job, exc: Exception, attempts: int, state: str, summary: Summary, progress: Progress
    ) -> None:
        if isinstance(exc, AvatargenError):
            message, code = exc.message, exc.exit_code
        else:
            message, code = f"internal error: {type(exc).__name__}: {exc}", 70
        permanent = _never_succeeds(exc)
        self.ledger.mark_failed(job.job_key, message, attempts, permanent=permanent)
        progress.move(state, "failed")
        with self._lock:
            summary.failed += 1
            summary.failure_codes.append(code)
            summary.failed_items.append(
                {
                    "input": str(job.input_path),
                    "pose": job.pose,
                    "error": message,
                    "hint": getattr(exc, "hint", None) or "",
                    "permanent": permanent,
                }
            )
        self._emit(job.result_line(status="failed", error=message, credits=0, attempts=attempts))


def worker_count(concurrency: int) -> int:
    """Threads for `concurrency` requests in flight: half as many again (at least 2, at most 8
    more) prepare photos and write outputs while the slots are busy."""
    concurrency = max(1, concurrency)
    return concurrency + min(8, max(2, concurrency // 2))


def _never_succeeds(exc: Exception) -> bool:
    """Failures a retry would only repeat: the photo is not a usable image (or has no person for
    --pose auto), or the server refused the request itself as invalid or too large."""
    if isinstance(exc, InputError):
        return True
    return isinstance(exc, ProviderError) and getattr(exc, "status_code", None) in (400, 413, 422)
