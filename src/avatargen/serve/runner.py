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
`interrupt()` stops a batch's generation cleanly: queued calls are cancelled, the running one
ends at its next denoising step (pipelines.py asks `stop_requested()` after each), and
`wait_idle()` returns once the thread is back in Python. A process must not exit while this
thread is inside torch's C++ code: that aborts it (`terminate called without an active
exception`, exit 134) instead of the documented 130 / 143.

Micro-batching (`submit_batched`): when the thread takes a batched call, it also takes the calls
already queued with the same function and key, up to the first call's `max_batch`, and makes them
one call of the function on the list of items. It never waits for more to arrive: a call that
finds the thread free runs at once, alone. A call queued behind an incompatible batch waits one
batch longer at most, since the thread always starts from the oldest call.

`openmp_waits_passively` is the other half: libgomp's threads spin between parallel regions,
which on a CPU shared with anything else (the server's own threads, a batch's, other programs)
made each tiny-model image 3-7x slower on the 2-core dev machine under load (issue 15).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "avatargen-pipeline"
# `serve --max-batch`'s default (kept here: the CLI imports it without starlette): the default
# --queue, so every request queued at once can share a call. Batched images match solo ones up
# to float rounding (1/255 at most, tiny models on CPU); 4 clients got 1.39-1.63x the images/s
# of batching off (bench/serve_overhead.py, part b).
DEFAULT_MAX_BATCH = 4


@dataclass(eq=False)  # identity: deque.remove must never compare params (or images)
class _Call:
    future: Future
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    # Batched calls: fn takes a list of items and returns one result per item, in order.
    batched: bool = False
    key: Hashable = None
    max_batch: int = 1

    def batches_with(self, other: _Call) -> bool:
        return self.max_batch > 1 and other.max_batch > 1 and (other.fn, other.key) == (self.fn, self.key)


class PipelineRunner:
    def __init__(self, name: str = THREAD_NAME) -> None:
        self.name = name
        self._queue: deque[_Call] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # interrupt() bumps the epoch; a call taken under an older epoch is asked to stop.
        self._epoch = 0
        self._call_epoch = 0
        self._busy = False  # a call is running on the thread (guarded by _ready)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue `fn(*args, **kwargs)` for the runner's thread; the future holds its result or error."""
        return self._put(_Call(Future(), fn, args, kwargs))

    def submit_batched(
        self, fn: Callable[[list], list], item: Any, key: Hashable, max_batch: int = 1
    ) -> Future:
        """Queue `item` for `fn([item, ...]) -> [result, ...]`, one call with the items queued at the
        same time under the same fn and key (up to max_batch); the future holds this item's result,
        or the call's exception. max_batch 1: always a call of its own."""
        return self._put(_Call(Future(), fn, (item,), batched=True, key=key, max_batch=max(1, max_batch)))

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the runner's thread and wait for it; its exception is raised here."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)  # already on it (a call from inside a call): no deadlock
        return self.submit(fn, *args, **kwargs).result()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def pending(self) -> int:
        """Calls queued and not yet taken by the thread (cancelled ones included)."""
        with self._ready:
            return len(self._queue)

    def stop_requested(self) -> bool:
        """True when interrupt() came after the running call was taken: it should end now."""
        return self._call_epoch != self._epoch

    def interrupt(self) -> int:
        """Cancel every queued call and ask the running one to stop; returns how many were cancelled."""
        with self._ready:
            self._epoch += 1
            queued, self._queue = list(self._queue), deque()
        return sum(1 for call in queued if call.future.cancel())

    def wait_idle(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no call runs on the thread; True when it is idle."""
        if threading.current_thread() is self._thread:
            return False
        with self._ready:
            return self._ready.wait_for(lambda: not self._busy, timeout)

    def _put(self, call: _Call) -> Future:
        self._ensure_thread()
        with self._ready:
            self._queue.append(call)
            self._ready.notify_all()  # the loop, and any wait_idle()
        return call.future

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
            calls = self._next()
            try:
                if calls[0].batched:
                    self._run_batch(calls)
                else:
                    self._run(calls.pop())
            finally:
                with self._ready:
                    self._busy = False
                    self._ready.notify_all()

    def _next(self) -> list[_Call]:
        """The oldest call, and for a batched one its queued partners (never waiting for more)."""
        with self._ready:
            while not self._queue:
                self._ready.wait()
            first = self._queue.popleft()
            self._busy = True
            self._call_epoch = self._epoch
            calls = [first]
            if first.max_batch > 1:
                for call in list(self._queue):
                    if len(calls) == first.max_batch:
                        break
                    if first.batches_with(call):
                        self._queue.remove(call)
                        calls.append(call)
            return calls

    @staticmethod
    def _run(call: _Call) -> None:
        # A function of its own, so the image and params are let go of before the next wait.
        if not call.future.set_running_or_notify_cancel():
            return  # cancelled while waiting: nobody wants it any more
        try:
            result = call.fn(*call.args, **call.kwargs)
        except BaseException as exc:  # noqa: BLE001 - it belongs to the caller, not this thread
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)

    @staticmethod
    def _run_batch(calls: list[_Call]) -> None:
        # Cancelled ones drop out here; the rest are marked running, so they can no longer be.
        live = [call for call in calls if call.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = live[0].fn([call.args[0] for call in live])
            if len(results) != len(live):
                raise RuntimeError(f"a batched call gave {len(results)} results for {len(live)} items")
        except BaseException as exc:  # noqa: BLE001 - it belongs to the callers, not this thread
            for call in live:
                call.future.set_exception(exc)
        else:
            for call, result in zip(live, results, strict=True):
                call.future.set_result(result)


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
