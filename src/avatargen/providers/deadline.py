"""Whole-request deadlines for httpx.

httpx's timeouts are per socket operation: a server that sends its answer a byte at a time
(headers included) never trips a read timeout and holds the request for ever. `install(client)`
wraps the client's network backend so that every connect, read and write is given only the time
left before the deadline set with `deadline_in` / `deadline_at` around the request (a thread-local:
sync httpx does its I/O in the calling thread); past it, the operation fails with httpx's own
timeout error, and httpcore drops the connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore

_local = threading.local()


@contextlib.contextmanager
def deadline_at(when: float | None) -> Iterator[None]:
    """Requests sent inside finish by `when` (time.monotonic()); an enclosing earlier one holds."""
    previous = getattr(_local, "when", None)
    if when is not None:
        _local.when = when if previous is None else min(previous, when)
    try:
        yield
    finally:
        _local.when = previous


def deadline_in(seconds: float | None) -> contextlib.AbstractContextManager[None]:
    return deadline_at(None if seconds is None else time.monotonic() + seconds)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    when = getattr(_local, "when", None)
    if when is None:
        return timeout
    left = when - time.monotonic()
    if left <= 0:
        raise error("the whole-request deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None):
        return _Stream(
            self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        timeout = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def install(client: Any) -> Any:
    """`client` with deadlines on every connection it opens (its proxies' included); returned."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return client


def installed(client: Any) -> bool:
    """Whether install() took (a test checks it against the httpx/httpcore in use)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), _Backend)
