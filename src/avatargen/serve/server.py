"""`avatargen serve`: the Inference Endpoint contract over HTTP, for self-hosting and for tests.

Routes (as the Hugging Face serving toolkit has them): `POST /` and `POST /predict` take the
request of pipelines.parse_request and answer image/png; `GET /` and `GET /health` answer "Ok".
While the pipeline loads in a background thread every route answers
`503 {"error": "Model K is currently loading", "estimated_time": N}`, so the client's cold-start
wait works unchanged. Generation runs on one dedicated thread (serve/runner.py: one OpenMP team,
one pipeline call at a time), behind a bounded queue: a request takes its place once its body is in
(received within AVATARGEN_SERVE_BODY_TIMEOUT_S, else 408), and when the queue is full the answer
is 429 with Retry-After before the body is read. With max_batch > 1,
requests already queued with the same size, steps and settings (pipelines.batch_key) when the
thread comes free share one pipeline call, each with its own prompt, pose and seed. Bodies are parsed
strictly (serve/body.py) and checked by parse_request (image sizes from the header, before
decoding), so any input gets a JSON 4xx.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from avatargen import environment
from avatargen.serve.body import parse_json_body
from avatargen.serve.pipelines import (
    HANDLER_HEADER,
    HANDLER_PROTOCOL,
    IMAGE_MAGIC,
    ModelSpec,
    RequestError,
    batch_key,
    handler_hello,
    parse_request,
    png_bytes,
)
from avatargen.serve.runner import DEFAULT_MAX_BATCH, PipelineRunner, pipeline_runner

BODY_TIMEOUT_ENV = environment.SERVE_BODY_TIMEOUT_S
DEFAULT_BODY_TIMEOUT_S = 60.0  # 32 MiB at ~0.5 MB/s; a client slower than that is cut off (408)
READERS_PER_SLOT = 4  # bodies received at once, per queue place
MAX_BODY_BYTES = 32 * 1024 * 1024  # two base64 images at 2048x2048 fit with room to spare
MIN_LOAD_ENV = environment.SERVE_MIN_LOAD_S


class ModelHost:
    """The model behind the server: loads in a background thread, then serves.

    `loader` returns an object with `generate(params) -> PIL.Image` (a ControlNetService, or a
    stand-in in tests) and may take minutes; `expected_load_s` feeds estimated_time meanwhile.
    With `max_batch` > 1 and a service that has `generate_batch(list) -> list`, compatible queued
    requests are micro-batched (up to max_batch per call).
    """

    def __init__(
        self,
        spec: ModelSpec,
        loader: Callable[[], Any],
        expected_load_s: float = 60.0,
        min_load_s: float = 0.0,
        on_ready: Callable[[float], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        runner: PipelineRunner | None = None,
        max_batch: int = 1,
    ) -> None:
        self.spec = spec
        self.max_batch = max_batch
        self.runner = runner or pipeline_runner()
        self.loader = loader
        self.expected_load_s = expected_load_s
        self.min_load_s = min_load_s
        self.on_ready = on_ready
        self.on_failed = on_failed
        self.clock = clock
        self.state = "loading"  # loading | ready | failed
        self.error = ""
        self.service: Any = None
        self.started = clock()
        self.seconds_per_image: float | None = None

    def start(self) -> threading.Thread:
        self.started = self.clock()
        thread = threading.Thread(target=self._load, name="avatargen-model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        try:
            service = self.loader()
            rest = self.min_load_s - (self.clock() - self.started)
            if rest > 0:
                time.sleep(rest)
        except BaseException as exc:  # noqa: BLE001 - any failure must reach the user, not kill a thread silently
            self.error = _first_line(exc)
            self.state = "failed"
            if self.on_failed:
                self.on_failed(exc)
            return
        self.service = service
        self.state = "ready"
        if self.on_ready:
            self.on_ready(self.clock() - self.started)

    def estimated_time(self) -> float:
        left = self.expected_load_s - (self.clock() - self.started)
        return float(max(1, math.ceil(left))) if left > 1 else 5.0

    def _generate(self, params: Any) -> Any:
        """One image, on the runner's thread; its time (not the wait before it) feeds Retry-After."""
        started = time.monotonic()
        image = self.service.generate(params)
        elapsed = time.monotonic() - started
        self.seconds_per_image = (
            elapsed if self.seconds_per_image is None else 0.7 * self.seconds_per_image + 0.3 * elapsed
        )
        return image

    def _generate_batch(self, batch: list[Any]) -> list[Any]:
        """Several compatible requests in one pipeline call, on the runner's thread."""
        if len(batch) == 1:
            return [self._generate(batch[0])]
        started = time.monotonic()
        images = self.service.generate_batch(batch)
        elapsed = (time.monotonic() - started) / len(batch)  # what one more queued request costs
        self.seconds_per_image = (
            elapsed if self.seconds_per_image is None else 0.7 * self.seconds_per_image + 0.3 * elapsed
        )
        return images

    def _submit(self, params: Any) -> Future:
        if self.max_batch > 1 and hasattr(self.service, "generate_batch"):
            key = batch_key(params)
            return self.runner.submit_batched(self._generate_batch, params, key, self.max_batch)
        return self.runner.submit(self._generate, params)

    async def generate_png_async(self, params: Any) -> bytes:
        """The event loop's way: no thread waits for the queue; a cancelled request leaves it.
        The PNG is encoded off the runner's thread, so the next image starts at once."""
        image = await asyncio.wrap_future(self._submit(params))
        return await run_in_threadpool(png_bytes, image)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it passes MAX_BODY_BYTES (a chunked body has no Content-Length)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def read_request(body: bytes, spec: ModelSpec, content_type: str | None = None) -> Any:
    """Body bytes -> validated Params, or RequestError (400/422) for anything a client can send."""
    # huggingface_hub's image_to_image(photo) with no parameters posts the file itself, no JSON.
    if (content_type or "").lower().startswith("image/") or body.startswith(IMAGE_MAGIC):
        raise RequestError(
            "the body is a bare image, with no prompt or pose: send JSON "
            '{"inputs": <base64 photo>, "parameters": {"prompt": ..., "control_image": <base64 pose>}}',
            400,
        )
    data = parse_json_body(body)
    hello = handler_hello(data, spec)  # the handshake: a dict, answered as JSON
    return hello if hello is not None else parse_request(data, spec)


def body_timeout_s() -> float:
    """Seconds a client has to send its whole body (AVATARGEN_SERVE_BODY_TIMEOUT_S, default 60)."""
    try:
        value = float(os.environ.get(BODY_TIMEOUT_ENV, "") or DEFAULT_BODY_TIMEOUT_S)
    except ValueError:
        value = DEFAULT_BODY_TIMEOUT_S
    return value if math.isfinite(value) and value > 0 else DEFAULT_BODY_TIMEOUT_S


def create_app(host: ModelHost, token: str | None = None, queue_size: int = 4) -> Starlette:
    """The ASGI app. `queue_size` counts requests accepted at once (the one running included)."""
    routes = _Routes(host, token, queue_size)
    return Starlette(
        routes=[
            Route("/", routes.health, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/", routes.predict, methods=["POST"]),
            Route("/predict", routes.predict, methods=["POST"]),
        ],
        middleware=[Middleware(_HandlerHeader)],
    )


class _Routes:
    """The endpoint contract's two routes over one ModelHost, with the admission rules: a token
    if asked for, a body cap in bytes and in time, and `queue_size` places taken once a body is in.
    Its counters are touched only on the event loop thread."""

    def __init__(self, host: ModelHost, token: str | None, queue_size: int) -> None:
        self.host = host
        self.token = token
        self.queue_size = queue_size
        self.pending = 0  # requests queued or running
        self.reading = 0  # bodies being received (a slow client holds one of these, never a queue place)
        self.max_reading = max(READERS_PER_SLOT * queue_size, 8)
        self.body_timeout = body_timeout_s()

    # ------------------------------------------------------------ answers
    def loading_response(self) -> JSONResponse:
        wait = self.host.estimated_time()
        return _error(
            503,
            f"Model {self.host.spec.key} is currently loading",
            {"Retry-After": str(int(wait))},
            estimated_time=wait,
        )

    def failed_response(self) -> JSONResponse:
        return _error(500, f"Model {self.host.spec.key} failed to load: {self.host.error}")

    def busy_response(self) -> JSONResponse:
        per_image = self.host.seconds_per_image or 5.0
        wait = max(1, math.ceil(per_image * self.pending))
        return _error(
            429,
            f"the server is busy ({self.pending} requests queued or running); retry in {wait}s",
            {"Retry-After": str(wait)},
        )

    def authorized(self, request: Request) -> bool:
        if not self.token:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Constant-time comparison: the answer's timing says nothing about how much matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    # ------------------------------------------------------------ routes
    async def health(self, request: Request) -> Response:
        if self.host.state == "ready":
            return PlainTextResponse("Ok")
        return self.failed_response() if self.host.state == "failed" else self.loading_response()

    async def predict(self, request: Request) -> Response:
        if not self.authorized(request):
            return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        # A full server refuses before reading anything. The queue place is taken once the body is
        # in (read within body_timeout): clients slow to send cannot hold the places of the others.
        # Bodies in memory: at most max_reading being received plus queue_size queued.
        if self.pending >= self.queue_size or self.reading >= self.max_reading:
            return self.busy_response()
        self.reading += 1
        try:
            body = await asyncio.wait_for(_read_body(request), self.body_timeout)
        except TimeoutError:
            return _error(408, f"the request body was not received within {self.body_timeout:g} s")
        finally:
            self.reading -= 1
        if body is None:
            return _error(413, f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB")
        if self.pending >= self.queue_size:
            return self.busy_response()
        self.pending += 1
        try:
            return await self.answer(request, body)
        finally:
            self.pending -= 1

    async def answer(self, request: Request, body: bytes) -> Response:
        host = self.host
        try:
            # Checked before the loading test: a bad request is refused at once, never waited on.
            params = await run_in_threadpool(
                read_request, body, host.spec, request.headers.get("content-type")
            )
        except RequestError as exc:
            return _error(exc.status, str(exc))
        if isinstance(params, dict):  # the handshake is answered while loading too
            return JSONResponse(params)
        if host.state == "loading":
            return self.loading_response()
        if host.state == "failed":
            return self.failed_response()
        try:
            data_png = await host.generate_png_async(params)
        except RequestError as exc:
            return _error(exc.status, str(exc))
        except Exception as exc:  # noqa: BLE001 - the client gets a message, the console the traceback
            traceback.print_exc(file=sys.stderr)
            return _error(500, f"generation failed: {_first_line(exc)}")
        # The scheduler really used, so a client can write it into the PNG's metadata.
        sampler = getattr(host.service, "sampler", None)
        headers = {"X-Avatargen-Sampler": sampler} if sampler else None
        return Response(data_png, media_type="image/png", headers=headers)


class _HandlerHeader:
    """Every answer says it comes from avatargen's handler (HANDLER_HEADER): `status` and the
    pre-flight probe of a batch tell `serve` from another server by its GET /health alone."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HANDLER_HEADER.lower().encode(), str(HANDLER_PROTOCOL).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


# ---------------------------------------------------------------- running it
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeOptions:
    spec: ModelSpec
    source: Any = None  # a folder of weights, a function returning one (run while loading), or None: the Hub
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    queue_size: int = 4
    max_batch: int = DEFAULT_MAX_BATCH
    json_output: bool = False
    device: str | None = None


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _bind(host: str, port: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Naming TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it Nagle + delayed ACK hold every response ~40 ms. Set on the listener too, which
    # Linux copies to each accepted connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    # Listening before the URL is printed: a client that connects at once waits in the backlog.
    sock.listen(128)
    return sock


def _log_config() -> dict[str, Any]:
    """uvicorn's logs, all on stderr (its default sends the access log to stdout)."""
    fmt = {"format": "%(levelprefix)s %(message)s", "use_colors": None}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "uvicorn.logging.DefaultFormatter", **fmt},
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s "%(request_line)s" %(status_code)s',
            },
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def uvicorn_server(app: Any) -> Any:
    """The uvicorn.Server that serves `app` (run it with `.run(sockets=[_bind(...)])`)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_config=_log_config(), timeout_graceful_shutdown=10))


def run_server(options: ServeOptions, say: Callable[[str], None]) -> None:
    """Bind, print the URL as the first stdout line, load in the background, serve until Ctrl-C.
    Raises LoadError when the model cannot be loaded (the server stops)."""
    import uvicorn

    from avatargen.serve.pipelines import ControlNetService, LoadError

    spec = options.spec
    sock = _bind(options.host, options.port)
    port = sock.getsockname()[1]
    url = _url(options.host, port)
    if options.json_output:
        sys.stdout.write(json.dumps({"url": url, "model": spec.key, "tiny": spec.tiny}) + "\n")
    else:
        sys.stdout.write(url + "\n")
    sys.stdout.flush()

    def load() -> Any:
        source = options.source() if callable(options.source) else options.source
        service = ControlNetService(spec, source=source, device=options.device)
        service.load()
        return service

    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def ready(seconds: float) -> None:
        say(
            f"ready: {spec.key}{' (tiny random weights: images are noise)' if spec.tiny else ''} "
            f"loaded in {seconds:.1f}s; POST {url}"
        )

    def failed(exc: BaseException) -> None:
        failure.append(exc)
        if server is not None:
            server.should_exit = True

    min_load = float(os.environ.get(MIN_LOAD_ENV, "0") or 0)
    expected = 5.0 if spec.tiny else 120.0  # tiny: mostly the torch + diffusers imports
    host = ModelHost(
        spec,
        load,
        expected_load_s=expected,
        min_load_s=min_load,
        on_ready=ready,
        on_failed=failed,
        max_batch=options.max_batch,
    )
    app = create_app(host, token=options.token, queue_size=options.queue_size)
    server = uvicorn_server(app)
    say(f"loading {spec.key} in the background; answering 503 until it is ready")
    host.start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a foreground server is stopped: uvicorn has already shut down cleanly
    finally:
        sock.close()
    say("stopped")
    if failure:
        exc = failure[0]
        raise exc if isinstance(exc, LoadError) else LoadError(_first_line(exc)) from exc
