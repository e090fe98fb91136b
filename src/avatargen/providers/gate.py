"""One gate per model, shared by every worker of a batch.

- While the model is loading, only one worker (the prober) may send; the others wait for it.
- A 429 pauses every worker until the server's time is up, not just the one that got it.
The retry policy calls these methods; the batch engine creates one gate per model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class GateTimeout(Exception):
    """The deadline passed while waiting at the gate."""


class ModelGate:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._loading = False
        self._prober: int | None = None
        self._paused_until = 0.0
        self.sent = 0  # attempts let through (for tests and benchmarks)

    @property
    def loading(self) -> bool:
        return self._loading

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def acquire(self, deadline: float | None = None) -> None:
        """Block until this worker may send one attempt."""
        me = threading.get_ident()
        with self._cond:
            while True:
                now = self._clock()
                if deadline is not None and now >= deadline:
                    raise GateTimeout()
                wait = self._paused_until - now
                if wait <= 0 and self._loading and self._prober not in (None, me):
                    wait = 0.5  # someone else is probing; wake on notify or re-check soon
                if wait <= 0:
                    if self._loading:
                        self._prober = me
                    self.sent += 1
                    return
                if deadline is not None:
                    wait = min(wait, deadline - now)
                self._cond.wait(timeout=max(wait, 0.001))

    def mark_loading(self, seconds: float) -> None:
        """The model answered 'loading': hold everyone for `seconds`, then let one prober through."""
        with self._cond:
            self._loading = True
            self._prober = None
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    def mark_rate_limited(self, seconds: float) -> None:
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    def mark_ready(self) -> None:
        """A real answer came back: the model is up, everyone may send."""
        with self._cond:
            if self._loading or self._prober is not None:
                self._loading = False
                self._prober = None
                self._cond.notify_all()

    def release(self) -> None:
        """The prober gave up without an answer (error, cancel): let another worker probe."""
        me = threading.get_ident()
        with self._cond:
            if self._prober == me:
                self._prober = None
                self._cond.notify_all()
