"""One thread for every pipeline call in the process, with a queue in front of it.

Torch's CPU kernels run on OpenMP, and each thread that calls into torch gets its own OpenMP team
that lives as long as that thread. With several teams alive (a server's worker threads, a batch's
workers) the threads outnumber the cores, libgomp stops spinning between parallel regions and
every call gets ~2.8x slower on 2 cores, even one at a time. So `avatargen serve` and the
`local` backend hand each pipeline call (and the local backend its weight loading) to this one
thread, which runs them in arrival order; the callers wait. A GPU gains too: one caller at a time
keeps one CUDA stream busy instead of several threads taking turns on a lock.

The thread is a daemon, started on first use: Ctrl-C never waits for a queued image. A call whose
future is cancelled before its turn is skipped (a server request whose task was cancelled).

`openmp_waits_passively` is the other half: libgomp's threads spin between parallel regions,
which on a CPU shared with anything else (the server's own threads, a batch's, other programs)
made each tiny-model image 3-7x slower on the 2-core dev machine under load (issue 15).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "avatargen-pipeline"


class PipelineRunner:
    def __init__(self, name: str = THREAD_NAME) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple, dict]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)` for the runner's thread; the future holds its result or error."""
        future: Future[T] = Future()
        self._ensure_thread()
        self._queue.put((future, fn, args, kwargs))
        return future

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the runner's thread and wait for it; its exception is raised here."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)  # already on it (a call from inside a call): no deadlock
        return self.submit(fn, *args, **kwargs).result()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        while True:
            self._run(*self._queue.get())

    @staticmethod
    def _run(future: Future, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        # A function of its own, so the image and params are let go of before the next wait.
        if not future.set_running_or_notify_cancel():
            return  # cancelled while waiting: nobody wants it any more
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - it belongs to the caller, not this thread
            future.set_exception(exc)
        else:
            future.set_result(result)


def openmp_waits_passively() -> None:
    """OMP_WAIT_POLICY=PASSIVE, unless the user set it: idle OpenMP threads sleep at once instead of
    spinning. libgomp reads it when torch loads, so call this before; afterwards it does nothing.
    The price is a thread wake-up per parallel region, small beside a real model's kernels."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_shared: PipelineRunner | None = None
_shared_lock = threading.Lock()


def pipeline_runner() -> PipelineRunner:
    """The process's one runner, shared by the server and the local backend."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PipelineRunner()
        return _shared
