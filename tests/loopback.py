"""What the tests' fake HTTP servers share: a ThreadingHTTPServer on 127.0.0.1 (a free port),
served from a daemon thread, started and stopped by start()/stop() or `with`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    def listen(self, handler: type[BaseHTTPRequestHandler], url_suffix: str = "/") -> None:
        """Bind now (so `url` is known before start); `url` is http://127.0.0.1:PORT + url_suffix."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{url_suffix}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
