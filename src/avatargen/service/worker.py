"""Workers: threads that claim jobs from the queue and run each through the engine.

`avatargen api` runs them in its own process (--workers N); `avatargen worker` runs only them,
on another machine sharing the PostgreSQL database and the data folder. One heartbeat thread
per process renews the leases of the jobs it runs, tells pollers what a job waits for
("model loading, ~N s"), and sends expired leases of any worker back to the queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from avatargen.service.config import ServiceConfig
from avatargen.service.engine import SharedEngine, run_generation
from avatargen.service.ledger_adapter import JobLedger
from avatargen.service.queue import Queue, worker_id

log = logging.getLogger("avatargen.service")


class WorkerPool:
    def __init__(self, queue: Queue, shared: SharedEngine, config: ServiceConfig, count: int) -> None:
        self.queue = queue
        self.shared = shared
        self.config = config
        self.count = count
        self.id = worker_id()
        self.stop = threading.Event()
        self.wake = threading.Event()  # set by an accept in this process: claim at once
        self._current: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._done = 0
        self._secret: str | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self.count <= 0:
            return
        self.queue.register_worker(self.id)
        recovered = self.queue.recover_dead_workers(self.config.lease_seconds)
        if recovered:
            log.warning("re-queued %d job(s) left processing by a worker that died", recovered)
        for i in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"avatargen-svc-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._beat, name="avatargen-svc-heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop claiming; jobs still running after `grace` go back to the queue, credits held."""
        self.stop.set()
        self.wake.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = [job["id"] for job in self._current.values()]
        for gen_id in left:
            with contextlib.suppress(Exception):
                self.queue.requeue(gen_id, self.id, "interrupted")
        self.shared.close()

    # ------------------------------------------------------------ the work
    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                job = self.queue.claim(self.id, self.config.lease_seconds, self.config.user_concurrency)
            except Exception as exc:  # the database went away: wait, then try again
                log.error("claim failed: %s", exc)
                self.stop.wait(1.0)
                continue
            if job is None:
                self.wake.wait(0.25)
                self.wake.clear()
                continue
            me = threading.get_ident()
            with self._lock:
                self._current[me] = job
            try:
                self._run(job)
            except Exception as exc:
                log.error("generation %s: %s", job["id"], exc)
                with contextlib.suppress(Exception):
                    self.queue.requeue(job["id"], self.id, "worker error")
                self.stop.wait(1.0)
            finally:
                with self._lock:
                    self._current.pop(me, None)
                    self._done += 1

    def _run(self, generation: dict[str, Any]) -> None:
        from avatargen.plan import Job, Params

        photo = self.queue.photo(generation["photo_id"], None)
        spec = json.loads(generation["params"])
        out = self.config.outputs_dir / str(generation["user_id"]) / f"{generation['id']}.png"
        job = Job(
            job_key=generation["id"],
            input_path=Path(photo["path"]),
            input_hash=photo["sha256"],
            pose=generation["pose"],
            model=generation["model_key"],
            params=Params.from_dict(spec),
            seed=int(generation["seed"]),
            output_path=out,
        )
        # The runner's own thread writes through this worker thread's connection (it waits meanwhile).
        queue = Queue(self.queue.db.bound(), self.queue.limits, self.queue.max_pending)
        ledger = JobLedger(queue, self.id, generation, str(out))
        summary = run_generation(self.shared, ledger, job, out.parent)
        codes = summary.failure_codes or ([summary.stop_error.exit_code] if summary.stop_error else [])
        ledger.finish(codes)
        if ledger.outcome == "requeued" and summary.stop_error is not None:
            # The engine could not even start it (the database or the disk failing): back off
            # instead of claiming it again at once.
            log.error("generation %s not run: %s", generation["id"], summary.stop_error.one_line())
            self.stop.wait(1.0)
        if ledger.outcome in ("completed", "failed") and generation.get("webhook_url"):
            self._notify(generation["id"], generation["webhook_url"])

    def _notify(self, gen_id: str, url: str) -> None:
        from avatargen.service import views, webhooks

        row = self.queue.get(gen_id, None)
        if row is None:
            return
        if self._secret is None:
            self._secret = self.config.webhook_secret or webhooks.database_secret(self.queue.db)
        webhooks.send(
            url, {"event": f"generation.{row['status']}", "generation": views.generation(row)}, self._secret
        )

    # ------------------------------------------------------------ heartbeat
    def _beat(self) -> None:
        every = max(0.5, self.config.lease_seconds / 3)
        last_renew = 0.0
        shown: dict[str, str | None] = {}
        while not self.stop.wait(0.5):
            with self._lock:
                jobs = list(self._current.values())
                done, self._done = self._done, 0
            try:
                for job in jobs:  # what each running job waits for, written only when it changes
                    state = self.shared.gate_state(job["model_key"])
                    if shown.get(job["id"]) != state:
                        self.queue.set_waiting(job["id"], state)
                        shown[job["id"]] = state
                if time.monotonic() - last_renew >= every:
                    last_renew = time.monotonic()
                    self.queue.renew(self.id, [job["id"] for job in jobs], self.config.lease_seconds)
                    self.queue.heartbeat(self.id, done)
                    self.queue.expire_leases()
                    shown = {k: v for k, v in shown.items() if any(j["id"] == k for j in jobs)}
                elif done:
                    self.queue.heartbeat(self.id, done)
            except Exception as exc:
                log.error("heartbeat failed: %s", exc)
