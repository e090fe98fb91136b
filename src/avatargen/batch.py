"""Running a planned batch: bounded concurrency, credits reserved per job, shared cold-start
and rate-limit gates per model, fallbacks, progress, and a clean stop on Ctrl-C or a limit.

Per job: reserve credits -> pose image at the model's size -> provider call (retries, waits)
-> atomic write with metadata -> settle; any failure refunds and the batch goes on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class _Stop(Exception):
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
    def __init__(
        self,
        ledger: Ledger,
        catalog: Catalog,
        poses: dict[str, Any],
        settings: RunSettings,
        emit: Callable[[dict[str, Any]], None] | None = None,
        provider_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.poses = poses  # pose spec -> PoseSource (see poses/sources.py)
        self.settings = settings
        self.emit = emit
        self._provider_factory = provider_factory
        self._providers: dict[str, Any] = {}
        self._gates: dict[str, Any] = {}
        self._chains: dict[str, list[Model]] = {}  # model key -> itself and its usable fallbacks
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._stop = threading.Event()  # start no new job (credits or limit ran out, or Ctrl-C)
        self._abort = threading.Event()  # Ctrl-C: drop in-flight jobs too, their credits refunded
        # A failure every job would meet (402, a refused token, a full disk): a job already
        # reserved but still waiting for a request slot is not sent. A credits or limit stop only
        # stops new reservations: what is reserved is paid for and still goes.
        self._halt = threading.Event()
        self._in_flight: set[str] = set()
        self._pose_cache: dict[tuple[str, int, int], bytes] = {}
        # --concurrency bounds the requests in flight; a few more workers than that prepare the
        # next photos and write and settle finished ones meanwhile, so a slot never idles on that.
        self._slots = threading.BoundedSemaphore(max(1, settings.concurrency))
        self._workers = worker_count(settings.concurrency)
        self._photos = _photo_cache(catalog, self._workers)

    # ------------------------------------------------------------ shared per-model state
    def provider_for(self, model: Model, primary: bool = True):
        with self._lock:
            if model.key not in self._providers:
                from avatargen.providers.select import make_provider

                factory = self._provider_factory or make_provider
                # --endpoint names the server of the model asked for; fallbacks use their own.
                local = {"model_dir": self.settings.model_dir, "tiny": self.settings.tiny}
                self._providers[model.key] = factory(
                    model,
                    endpoint=self.settings.endpoint if primary else None,
                    provider=self.settings.provider,
                    token=self.settings.token,
                    wait_timeout=self.settings.wait_timeout,
                    **{k: v for k, v in local.items() if v},
                )
            return self._providers[model.key]

    def gate_for(self, model_key: str):
        from avatargen.providers.gate import ModelGate

        with self._lock:
            return self._gates.setdefault(model_key, ModelGate())

    def close(self) -> None:
        for provider in self._providers.values():
            with contextlib.suppress(Exception):  # closing must never hide the batch's own result
                provider.close()

    def preflight(self, model: Model, announce: Callable[[str], None]) -> None:
        """One status probe before any job is sent: a cold model is announced once and every
        worker waits at the gate instead of discovering it on its own."""
        provider = self.provider_for(model)
        try:
            report = provider.status()
        except AvatargenError as exc:
            announce(f"pre-flight check of {model.alias} failed: {exc.message}")
            return
        if report.state == "starting":
            seconds = report.estimated_time or 10.0
            announce(f"model loading, ~{int(seconds)} s ({model.alias} at {report.url})")
            self.gate_for(model.key).mark_loading(seconds)
        elif report.state in ("unreachable", "unauthorized"):
            announce(f"pre-flight: {model.alias} is {report.state}: {report.detail}")

    # ------------------------------------------------------------ running
    def run(self, batch_id: str, jobs: list[Job], output_dir: Path) -> Summary:
        summary = Summary(batch_id, len(jobs), output_dir=str(output_dir))
        self._photos.min_side = self._photo_side(jobs)
        self._photos.expect(Counter(job.input_hash for job in jobs))
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

    def _photo_side(self, jobs: list[Job]) -> int:
        """How large the photos of these jobs are decoded: the largest side any of their models
        (fallbacks included) sends the photo at, so a 12 MP JPEG is decoded at 1/4 scale for a
        512x512 model instead of 1/2. A face crop or a pose found in the photo wants more detail:
        then the largest size of the catalog, as before."""
        if not jobs or any(
            job.params.identity_scale or self.poses[job.params.pose_spec].per_photo for job in jobs
        ):
            return self._photos.min_side
        sides = [max(job.params.width, job.params.height) for job in jobs]
        for key in {job.model for job in jobs}:
            sides += [max(m.size) for m in self._models_to_try(self.catalog.by_key[key])]
        return max(sides)

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

    def _models_to_try(self, model: Model) -> list[Model]:
        with self._lock:
            cached = self._chains.get(model.key)
        if cached is None:
            cached = self._fallback_chain(model)
            with self._lock:
                self._chains[model.key] = cached
        return cached

    def _fallback_chain(self, model: Model) -> list[Model]:
        chain = [model]
        if self.settings.fallback:
            for key in model.fallbacks:
                candidate = self.catalog.by_key.get(key)
                if candidate is None or not candidate.enabled or candidate in chain:
                    continue
                if candidate.credit_cost > model.credit_cost and not self.settings.allow_upgrade:
                    continue
                if not self._same_backend(model, candidate):
                    continue
                chain.append(candidate)
        return chain

    def _same_backend(self, model: Model, candidate: Model) -> bool:
        """A fallback runs where the asked-for model runs: never a surprise switch from an
        endpoint to downloading gigabytes for an in-process model, or to a text-only router."""
        from avatargen.providers.select import choose_backend

        try:
            choice = choose_backend(candidate, provider=self.settings.provider)
        except AvatargenError:
            return False
        return choice.problem is None and choice.backend == self.provider_for(model).name

    def _emit(self, record: dict[str, Any]) -> None:
        if self.emit is not None:
            with self._emit_lock:
                self.emit(record)

    def _run_job(self, job: Job, summary: Summary, progress: Progress) -> None:
        model = self.catalog.by_key[job.model]
        try:
            self.ledger.reserve_and_start(job.job_key, model.key, model.credit_cost, summary.batch_id)
        except JobBusy as busy:
            # Another live process runs (or just finished) this very job: not ours, not a failure.
            with self._lock:
                summary.skipped += 1
            progress.move("queued", "done")
            self._emit(job.result_line(status="skipped", reason=busy.reason, credits=0))
            return
        except CreditsError as exc:
            # Another process spent the balance after our quote: stop cleanly, leave the rest queued.
            self._stop.set()
            with self._lock:
                summary.stopped = summary.stopped or "credits"
                summary.stop_message = exc.message
            return
        except OutputError as exc:  # the ledger cannot be written: nothing was reserved
            self._stop_batch(summary, exc)
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

    def _generate(self, job: Job, model: Model, progress: Progress, track: _Track):
        """The provider call, with fallbacks: (the model that ran, its result)."""
        chain = self._models_to_try(model)
        for candidate in chain:
            if candidate is not model:
                self.ledger.adjust_reservation(job.job_key, candidate.key, candidate.credit_cost)
            try:
                request = self._request(job, candidate)
            finally:
                if candidate is model:
                    self._photos.release(job.input_hash)  # this job asks for its photo no more

            def on_event(event, _c=candidate):
                track.move(progress, "waiting")
                progress.waiting(event.reason)

            def on_attempt(_c=candidate):
                if self._abort.is_set():
                    raise _Stop()
                self.ledger.count_request(
                    _c.key, self.settings.daily_limit, self.settings.model_limits.get(_c.key)
                )
                track.attempts += 1
                track.move(progress, "generating")

            provider = self.provider_for(candidate, primary=candidate is model)
            try:
                with self._slots:  # one of --concurrency requests (its waits and retries too)
                    if self._halt.is_set() or self._abort.is_set():  # halted while it waited: not sent
                        raise _Stop()
                    result = provider.generate(
                        request, on_event=on_event, gate=self.gate_for(candidate.key), on_attempt=on_attempt,
                        **resume_options(provider, self.ledger, job.job_key),  # a provider job already paid for
                    )  # fmt: skip
            except (ModelUnavailable, ProviderError, NetworkError) as exc:
                if exc.stops_batch or not _fallback_worthy(exc) or candidate is chain[-1]:
                    raise
                progress.waiting(f"{candidate.alias} failed ({exc.message}); trying a fallback")
                continue
            if self._abort.is_set():
                raise _Stop()
            return candidate, result
        raise AssertionError("unreachable: the chain always has the model itself")

    def _write_and_settle(self, job: Job, model: Model, ran: Model, result, attempts: int) -> int:
        from avatargen.images import write_output

        try:
            meta = self._metadata(job, ran, getattr(result, "sampler", None))
            write_output(
                job.output_path,
                result.image,
                meta,
                overwrite=self.settings.overwrite,
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
            if isinstance(exc, _Stop) or not isinstance(exc, Exception):
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
        self.ledger.mark_failed(job.job_key, message, attempts, permanent=_never_succeeds(exc))
        progress.move(state, "failed")
        with self._lock:
            summary.failed += 1
            summary.failure_codes.append(code)
            summary.failed_items.append({"input": str(job.input_path), "error": message})
        self._emit(job.result_line(status="failed", error=message, credits=0, attempts=attempts))

    # ------------------------------------------------------------ pieces of a job
    def _pose_png(self, job: Job, width: int, height: int) -> bytes:
        from avatargen.images import png_bytes

        spec = job.params.pose_spec
        pose = self.poses[spec]
        if pose.per_photo:  # the photo's own pose: found once per photo and size

            def draw(photo) -> bytes:
                return png_bytes(pose.image(width, height, photo))

            return self._photos.made(job.input_path, job.input_hash, ("pose", spec, width, height), draw)
        with self._lock:
            cached = self._pose_cache.get((spec, width, height))
        if cached is None:  # the same skeleton for every photo: render it once per size
            cached = png_bytes(pose.image(width, height))
            with self._lock:
                self._pose_cache[(spec, width, height)] = cached
        return cached

    def _request(self, job: Job, model: Model):
        from avatargen.photo_prep import needs_lossless
        from avatargen.providers.base import GenerationRequest

        width, height = model.size if model.key != job.model else (job.params.width, job.params.height)
        init = None
        references: tuple[bytes, ...] = ()
        lossless = needs_lossless(model.architecture)
        if job.params.strength is not None or model.edits_photo:
            init = self._photos.init_image(job.input_path, job.input_hash, width, height, lossless)
        # Always read, even when only the pose is sent: a file that is not a usable image is a
        # failed job, never an avatar made from nothing (and the face crop reuses the decode).
        # A JPEG sent as its own data was checked whole without decoding: decoded only if its face is needed.
        photo = None
        as_is = init is not None and self._photos.sent_as_is(job.input_hash, width, height)
        if not as_is or self._wants_faces(job, model):
            photo = self._photos.photo(job.input_path, job.input_hash)
        if model.edits_photo and job.params.references:
            files = dict(job.reference_files)
            references = tuple(
                self._photos.init_image(files[digest], digest, width, height, lossless)
                for digest in job.params.references
                if digest in files and digest != job.input_hash  # the subject is image 1 already
            )
        return GenerationRequest(
            model=model,
            prompt=job.params.prompt,
            negative_prompt=job.params.negative_prompt,
            width=width,
            height=height,
            steps=job.params.steps,
            guidance_scale=job.params.guidance_scale,
            controlnet_conditioning_scale=job.params.controlnet_conditioning_scale,
            seed=job.seed,
            pose_png=self._pose_png(job, width, height),
            pose_description=self.poses[job.params.pose_spec].description,
            init_image_png=init,
            strength=job.params.strength if init else None,
            ip_adapter_images=tuple(crop.png for crop in self._face_crops(job, model, photo)),
            ip_adapter_scale=job.params.identity_scale,
            reference_images=references,
        )

    @staticmethod
    def _wants_faces(job: Job, model: Model) -> bool:
        return bool(job.params.identity_scale) and model.identity_adapter is not None

    def _face_crops(self, job: Job, model: Model, photo=None) -> list:
        """The photo's face crop, then its references', each cropped once per batch; none when
        identity is off or the model that runs has no adapter (a fallback without one)."""
        if not self._wants_faces(job, model):
            return []
        from avatargen.faces import shared_cache

        faces = shared_cache()
        crops = [faces.get(job.input_hash, job.input_path, photo)]
        files = dict(job.reference_files)
        for digest in job.params.references:
            if digest not in files:
                raise InputError(
                    f"{job.input_path}: this job's reference photos are not known to this run",
                    "run the generate command again with the same --ref/--person options",
                )
            crops.append(faces.get(digest, files[digest]))
        return crops

    def _metadata(self, job: Job, ran: Model, result_sampler: str | None = None) -> dict[str, Any]:
        p = job.params
        width, height = ran.size if ran.key != job.model else (p.width, p.height)
        return {
            "job_key": job.job_key,
            "input": str(job.input_path),
            "input_hash": job.input_hash,
            "pose": job.pose,
            "model": ran.key,
            "model_requested": job.model,
            "seed": job.seed,
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "steps": p.steps,
            "guidance_scale": p.guidance_scale,
            "controlnet_conditioning_scale": p.controlnet_conditioning_scale,
            "strength": p.strength,
            "width": width,
            "height": height,
            "architecture": ran.architecture,
            # The scheduler the backend reports having used (A1111's `Sampler`), when it does.
            **({"sampler": result_sampler} if result_sampler else {}),
            **self._identity_metadata(job, ran),
        }

    def _identity_metadata(self, job: Job, ran: Model) -> dict[str, Any]:
        """What reproduces the identity part: the adapter that ran, its scale, and hashes (never
        paths) of the reference photos and of the exact face crops sent."""
        crops = self._face_crops(job, ran)  # cached: no detection again
        if not crops:
            return {}
        adapter = ran.identity_adapter
        return {
            "identity": {
                "adapter": {
                    "repo": adapter.repo,
                    "subfolder": adapter.subfolder,
                    "weight_name": adapter.weight_name,
                    "image_encoder_folder": adapter.image_encoder_folder,
                },
                "scale": job.params.identity_scale,
                "references": list(job.params.references),
                "crops": [crop.sha256 for crop in crops],
            }
        }


def worker_count(concurrency: int) -> int:
    """Threads for `concurrency` requests in flight: half as many again (at least 2, at most 8
    more) prepare photos and write outputs while the slots are busy."""
    concurrency = max(1, concurrency)
    return concurrency + min(8, max(2, concurrency // 2))


def _photo_cache(catalog: Catalog, concurrency: int):
    """Photos decoded once per batch: a few more kept than workers run, each decoded no larger
    than the largest model needs."""
    from avatargen.photo_prep import PhotoCache

    largest = max((max(m.size) for m in catalog.by_key.values()), default=1024)
    return PhotoCache(keep=concurrency + 2, min_side=largest)


def _never_succeeds(exc: Exception) -> bool:
    """Failures a retry would only repeat: the photo is not a usable image (or has no person for
    --pose auto), or the server refused the request itself as invalid or too large."""
    if isinstance(exc, InputError):
        return True
    return isinstance(exc, ProviderError) and getattr(exc, "status_code", None) in (400, 413, 422)


def _fallback_worthy(exc: AvatargenError) -> bool:
    """A model that stayed unavailable, or 5xx / network failures beyond the retries."""
    if isinstance(exc, ModelUnavailable | NetworkError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status >= 500
