"""Batch progress on stderr: counts per state, credits spent, ETA and the current wait reason.

A live Rich display when stderr is a terminal; otherwise nothing but the final lines, so logs
and pipes stay clean. All methods are thread-safe (workers call them).
"""

from __future__ import annotations

import threading
import time

STATES = ("queued", "waiting", "generating", "done", "failed")


class Progress:
    def __init__(self, total: int, live: bool) -> None:
        self.total = total
        self.counts = dict.fromkeys(STATES, 0)
        self.counts["queued"] = total
        self.credits = 0
        self.wait_reason = ""
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._live = None
        if live and total:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._render(), console=Console(stderr=True), refresh_per_second=4, transient=False
            )
            self._live.start()

    def move(self, old: str, new: str) -> None:
        with self._lock:
            self.counts[old] -= 1
            self.counts[new] += 1
            if old == "waiting" and new in ("generating", "done"):
                self.wait_reason = ""  # the model answered: whatever we waited for is over
        self._refresh()

    def spent(self, credits: int) -> None:
        with self._lock:
            self.credits += credits
        self._refresh()

    def waiting(self, reason: str) -> None:
        with self._lock:
            self.wait_reason = reason
        self._refresh()

    def eta_seconds(self) -> float | None:
        finished = self.counts["done"] + self.counts["failed"]
        if not finished:
            return None
        elapsed = time.monotonic() - self._started
        return elapsed / finished * (self.total - finished)

    def _render(self):
        from rich.text import Text

        finished = self.counts["done"] + self.counts["failed"]
        eta = self.eta_seconds()
        parts = [
            f"{finished}/{self.total}",
            " · ".join(f"{state} {self.counts[state]}" for state in STATES),
            f"credits {self.credits}",
            f"ETA {int(eta)}s" if eta is not None else "ETA –",
        ]
        line = "  ".join(parts)
        if self.wait_reason:
            line += f"\n{self.wait_reason}"
        return Text(line)

    def _refresh(self) -> None:
        if self._live is not None:
            with self._lock:
                renderable = self._render()
            self._live.update(renderable)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
