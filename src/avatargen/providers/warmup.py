"""Getting HTTP ready while a batch is planned: importing httpx and building its TLS context
(the CA bundle loaded) cost ~120 ms before the first request, on the critical path. Started on
a thread when `generate` begins, it runs while the photos are read and hashed (which let go of
the GIL), so the first request goes out that much sooner.

Nothing here is required: when the thread has not finished, `ssl_context` waits for it; when it
failed, or was never started, the client builds its own context as before.
"""

from __future__ import annotations

import threading
from typing import Any

_thread: threading.Thread | None = None
_context: list[Any] = []
_lock = threading.Lock()


def start() -> None:
    """Begin warming up on a thread (once per process). Not a daemon: a run that stops early
    (bad input) waits the few ms the imports have left rather than tear the interpreter down
    under a thread still loading the ssl module, which crashes it (SIGSEGV)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm, name="avatargen-http-warmup", daemon=False)
            _thread.start()


def _warm() -> None:
    try:
        import httpx

        _context.append(httpx.create_ssl_context())  # httpx's own: certifi, SSL_CERT_FILE/DIR honoured
    except Exception:  # noqa: BLE001 - the client builds its own context then
        pass


def ssl_context() -> Any | None:
    """The TLS context the warm-up built (waiting for it if it is still running), else None."""
    thread = _thread
    if thread is None:
        return None
    thread.join()
    return _context[0] if _context else None
