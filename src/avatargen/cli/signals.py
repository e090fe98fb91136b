"""SIGTERM and SIGHUP stop a batch exactly as Ctrl-C does: in-flight credits refunded, jobs left
queued, the batch marked interrupted, the resume command printed; exit 143 / 129."""

from __future__ import annotations

import signal

from avatargen.errors import StopSignal

last_signal: int | None = None  # the stop signal received, for the exit code (Typer says only 130)


def _stop(signum: int, _frame) -> None:
    global last_signal
    last_signal = signum
    # One stop is enough: a second TERM while credits are being refunded must not cut that short.
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise StopSignal(signum)


def install_stop_signals() -> None:
    """Turn SIGTERM and SIGHUP into StopSignal (a KeyboardInterrupt) in the main thread."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop)
