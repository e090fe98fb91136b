"""The one retry policy both HTTP backends use (tenacity drives the loop, this module decides).

| answer                                    | what happens                                                  |
|-------------------------------------------|---------------------------------------------------------------|
| 503 + estimated_time (model loading)      | wait ~estimated_time (0.5..60 s, ±10 %), retry until deadline |
| 503 without it (endpoint scaling up)      | back off 2, 4, 8 .. 30 s, retry until the same deadline       |
| 429                                       | Retry-After (seconds or HTTP date), or RateLimit `t=`, else back off; until deadline |
| 500, 502, 504, connect/read errors, resets| 3 retries backed off 1, 2, 4 s (±20 %)                        |
| 200 that is not a whole image             | 1 retry                                                       |
| a body over 64 MB, an image of more than 4x the pixels asked for | no retry (the server would do it again) |
| 400, 401, 403, 404, 422, 402, others      | no retry; the server's message, cleaned                       |

The deadline is `wait_timeout` seconds (default 600) from the first attempt. Every wait is
announced through `on_event` first. With a shared ModelGate, waits for a loading model or a 429
happen at the gate, so all workers of a batch pause together and only one probes.
"""

from __future__ import annotations

import io
import os
import random
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
import tenacity

from avatargen import environment
from avatargen.errors import AuthError, AvatargenError, ModelUnavailable, NetworkError, ProviderError
from avatargen.providers.base import GenerationResult, WaitEvent
from avatargen.providers.deadline import deadline_at
from avatargen.providers.gate import GateTimeout, ModelGate
from avatargen.providers.http_client import BodyTooLarge, estimated_time, scrub, server_message

DEFAULT_WAIT_TIMEOUT = 600.0
LOADING_WAIT_FLOOR = 0.5
LOADING_WAIT_CAP = 60.0
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
TRANSIENT_RETRIES = 3
BAD_IMAGE_RETRIES = 1
TRANSIENT_STATUSES = frozenset({500, 502, 504})
# An answer may be a little larger than asked (a server that rounds up to a multiple of 64);
# more than this many times the pixels asked for is not an image of this request.
MAX_PIXEL_FACTOR = 4
RETRY_SCALE_ENV = environment.RETRY_SCALE
CREDITS_HINT = (
    "add pay-as-you-go billing or upgrade at https://huggingface.co/settings/billing, wait for the "
    "monthly reset, or run the model yourself: `avatargen serve` / an Inference Endpoint (--endpoint)"
)

NETWORK_ERRORS = (httpx.TransportError,)  # connect/read/write errors and timeouts, resets, protocol errors


def retry_scale_from_env() -> float:
    try:
        value = float(os.environ.get(RETRY_SCALE_ENV, "") or 1.0)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


@dataclass
class Target:
    """What the messages name: which backend, which URL, which model."""

    backend: str
    url: str
    model_key: str
    label: str  # e.g. "endpoint https://x.endpoints.huggingface.cloud/"
    auth_hint: str
    not_found_hint: str
    secrets: list[str] = field(default_factory=list)
    expected_size: tuple[int, int] | None = None  # (width, height) asked for
    # "image": a 2xx must be a whole image; "json": a JSON object (a provider's queue ticket,
    # status or result), handed back as GenerationResult.image bytes for the caller to read.
    expects: str = "image"


@dataclass
class RetryPolicy:
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic  # the gate must use the same clock
    wall_clock: Callable[[], float] = time.time  # for Retry-After given as an HTTP date
    rng: random.Random = field(default_factory=random.Random)
    scale: float = field(default_factory=retry_scale_from_env)
    transient_retries: int = TRANSIENT_RETRIES
    bad_image_retries: int = BAD_IMAGE_RETRIES

    def backoff(self, retry_number: int) -> float:
        """1, 2, 4, ... capped at 30 s, ±20 %, times the scale knob."""
        base = min(BACKOFF_CAP, BACKOFF_BASE * 2**retry_number)
        return base * self.rng.uniform(0.8, 1.2) * self.scale

    def loading_wait(self, estimate: float) -> float:
        return min(LOADING_WAIT_CAP, max(LOADING_WAIT_FLOOR, estimate)) * self.rng.uniform(0.9, 1.1)

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the server asks for: Retry-After (seconds or HTTP date), else RateLimit's t=."""
        value = response.headers.get("retry-after", "").strip()
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - self.wall_clock())
        match = re.search(r"(?:^|[;,\s])t=(\d+(?:\.\d+)?)", response.headers.get("ratelimit", ""))
        if match:
            return float(match.group(1))
        return None

    def run(
        self,
        send: Callable[[], httpx.Response],
        target: Target,
        on_event: Callable[[WaitEvent], None] | None = None,
        gate: ModelGate | None = None,
        on_attempt: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """Send until an image comes back or the policy gives up (raising an errors.py class)."""
        run = _Run(self, send, target, on_event, gate, on_attempt)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda outcome: outcome.retry),
            wait=lambda state: state.outcome.result().sleep,
            stop=tenacity.stop_never,  # the policy's own counters and deadline decide (see _decide)
            sleep=self.sleep,
            before_sleep=lambda state: run.announce(state.outcome.result().event),
            reraise=True,
        )
        outcome = retrying(run.attempt)
        if outcome.error is not None:
            raise outcome.error
        return GenerationResult(
            image=outcome.image,
            content_type=outcome.content_type,
            seconds=outcome.seconds,
            attempts=run.attempts,
            backend=target.backend,
            model_key=target.model_key,
            sampler=outcome.sampler,
            png_chunks=outcome.png_chunks,
        )


@dataclass
class _Outcome:
    kind: str  # ok | loading | starting | rate-limited | transient | bad-image | fatal | deadline
    error: AvatargenError | None = None
    server_wait: float | None = None
    image: bytes = b""
    content_type: str = ""
    sampler: str | None = None
    png_chunks: list | None = None
    seconds: float = 0.0
    retry: bool = False
    sleep: float = 0.0
    event: WaitEvent | None = None


class _Run:
    """The state of one generate() call: counters, deadline, the gate."""

    def __init__(self, policy, send, target, on_event, gate, on_attempt) -> None:
        self.policy = policy
        self.send = send
        self.target = target
        self.on_event = on_event
        self.gate = gate
        self.on_attempt = on_attempt
        self.start = policy.clock()
        self.deadline = self.start + policy.wait_timeout
        self.attempts = 0
        self.counts: dict[str, int] = {}
        self.last_kind = ""

    # ------------------------------------------------------------ one attempt
    def attempt(self) -> _Outcome:
        gate = self.gate
        if gate is not None:
            self._announce_gate_wait(gate)
            try:
                gate.acquire(self.deadline)
            except GateTimeout:
                gate.release()  # giving up: never leave another worker waiting on us as prober
                return _Outcome("deadline", error=self._deadline_error(gate.loading))
        try:
            if self.on_attempt is not None:
                self.on_attempt()  # may raise (usage limit, stop): the gate must not stay held
            self.attempts += 1
            began = self.policy.clock()
            try:
                with deadline_at(self._wall_deadline()):  # no attempt outlives wait_timeout
                    response = self.send()
            except NETWORK_ERRORS as exc:
                outcome = _Outcome("transient", error=self._network_error(exc))
            except BodyTooLarge as exc:
                error = ProviderError(
                    f"{self.target.label} answered with {exc} (HTTP {exc.status_code}); reading stopped there",
                    "no image of ours is that large: check that the URL runs the avatargen handler",
                )
                outcome = _Outcome("fatal", error=_tag(error, exc.status_code))
            else:
                outcome = self._classify(response)
                outcome.seconds = self.policy.clock() - began
                if gate is not None and response.status_code != 503:
                    gate.mark_ready()  # a real answer: the model is up
        except BaseException:
            if gate is not None:
                gate.release()
            raise
        self.last_kind = outcome.kind
        self._decide(outcome)
        if not outcome.retry and gate is not None and outcome.kind != "ok":
            gate.release()
        return outcome

    def _wall_deadline(self) -> float:
        """The job's deadline on time.monotonic() (the policy's clock may be a test's); an attempt
        started at the deadline still gets a second to answer."""
        return time.monotonic() + max(1.0, self.deadline - self.policy.clock())

    def announce(self, event: WaitEvent | None) -> None:
        if event is not None and self.on_event is not None:
            self.on_event(event)

    def _announce_gate_wait(self, gate: ModelGate) -> None:
        # Our own waits were announced already; this is a wait caused by another worker.
        if self.last_kind in ("loading", "starting", "rate-limited"):
            return
        paused = gate.paused_for()
        if gate.loading:
            self.announce(
                WaitEvent(
                    "loading", paused, "model loading (another request is checking it)", self.target.model_key
                )
            )
        elif paused > 0:
            self.announce(
                WaitEvent(
                    "rate-limited", paused, "rate limited (pausing every request)", self.target.model_key
                )
            )

    # ------------------------------------------------------------ classification
    def _classify(self, response: httpx.Response) -> _Outcome:
        code = response.status_code
        t = self.target
        if 200 <= code < 300:
            return _check_json(response, t) if t.expects == "json" else _check_image(response, t)
        if code == 503:
            estimate = estimated_time(response)
            return _Outcome("loading" if estimate is not None else "starting", server_wait=estimate)
        if code == 429:
            return _Outcome(
                "rate-limited",
                server_wait=self.policy.retry_after(response),
                error=self._error(ProviderError, response, "rate limited", None),
            )
        if code in TRANSIENT_STATUSES:
            return _Outcome("transient", error=self._error(ProviderError, response, "failed", None))
        if code in (401, 403):
            return _Outcome("fatal", error=self._error(AuthError, response, "refused the token", t.auth_hint))
        if code == 402:
            error = ProviderError(
                f"Hugging Face credits are used up ({t.label}: {self._clean(response)})", CREDITS_HINT
            )
            return _Outcome("fatal", error=_tag(error, code))
        if code in (404, 410):
            return _Outcome(
                "fatal", error=self._error(ModelUnavailable, response, "not found", t.not_found_hint)
            )
        if 300 <= code < 400:
            where = response.headers.get("location", "")
            error = ProviderError(
                f"{t.label} redirected (HTTP {code}) to {where.split('?')[0] or 'another address'}; "
                "avatargen does not follow redirects so the token stays with its host",
                "use the final URL as the endpoint",
            )
            return _Outcome("fatal", error=_tag(error, code))
        hint = "check the generation parameters (size, steps, guidance)" if code in (400, 422) else None
        return _Outcome("fatal", error=self._error(ProviderError, response, "refused the request", hint))

    def _clean(self, response: httpx.Response) -> str:
        return scrub(server_message(response), self.target.secrets)

    def _error(self, cls, response, verb: str, hint: str | None) -> AvatargenError:
        message = f"{self.target.label} {verb} (HTTP {response.status_code}): {self._clean(response)}"
        return _tag(cls(message, hint), response.status_code)

    def _network_error(self, exc: Exception) -> NetworkError:
        kind = {
            httpx.ConnectTimeout: "did not accept a connection in time",
            httpx.ConnectError: "could not be reached",
            httpx.ReadTimeout: "did not answer in time",
            httpx.WriteTimeout: "did not take the request in time",
            httpx.PoolTimeout: "had no free connection in time",
            httpx.RemoteProtocolError: "closed the connection",
            httpx.ReadError: "reset the connection",
        }
        what = next((text for cls, text in kind.items() if isinstance(exc, cls)), "failed")
        detail = scrub(str(exc), self.target.secrets) or type(exc).__name__
        return NetworkError(
            f"{self.target.label} {what} ({detail})",
            "check the URL and your connection; a starting endpoint may need a larger --wait-timeout",
        )

    def _deadline_error(self, loading: bool) -> AvatargenError:
        waited = self.policy.clock() - self.start
        hint = "try again later, or wait longer: --wait-timeout SECONDS / avatargen config set wait_timeout SECONDS"
        if loading or self.last_kind in ("loading", "starting"):
            state = "starting" if self.last_kind == "starting" else "loading"
            error = ModelUnavailable(
                f"{self.target.model_key} at {self.target.label} was still {state} after {waited:.0f} s "
                f"(wait_timeout {self.policy.wait_timeout:g} s)",
                hint,
            )
            return _tag(error, 503, waited)
        error = ProviderError(f"{self.target.label} kept rate limiting for {waited:.0f} s", hint)
        return _tag(error, 429, waited)

    # ------------------------------------------------------------ the policy
    def _decide(self, outcome: _Outcome) -> None:
        """Set retry / sleep / event on the outcome, or the final error when giving up."""
        policy = self.policy
        kind = outcome.kind
        if kind in ("ok", "fatal", "deadline"):
            return
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        remaining = self.deadline - policy.clock()
        key = self.target.model_key
        gate = self.gate
        if kind in ("loading", "starting"):
            if remaining <= 0:
                outcome.error = self._deadline_error(True)
                return
            if kind == "loading":
                wait = policy.loading_wait(outcome.server_wait or 0.0)
                reason = f"model loading, ~{outcome.server_wait:.0f} s"
            else:
                wait = policy.backoff(n + 1)
                reason = "endpoint starting (scaled to zero?)"
            wait = min(wait, remaining)
            outcome.event = WaitEvent(kind, wait, reason, key)
            if gate is not None:
                gate.mark_loading(wait)  # everyone waits at the gate; one prober goes next
            outcome.sleep = 0.0 if gate is not None else wait
            outcome.retry = True
            return
        if kind == "rate-limited":
            asked = outcome.server_wait
            if asked is not None and asked > remaining:
                message = (
                    f"{self.target.label} is rate limiting and asks to wait {asked:.0f} s, "
                    f"more than the {max(remaining, 0):.0f} s left of wait_timeout"
                )
                outcome.error = _tag(ProviderError(message, "try again later, or raise --wait-timeout"), 429)
                return
            if remaining <= 0:
                outcome.error = self._deadline_error(False)
                return
            wait = min(asked if asked is not None else policy.backoff(n + 1), remaining)
            outcome.event = WaitEvent("rate-limited", wait, "rate limited by the server", key)
            if gate is not None:
                gate.mark_rate_limited(wait)
            outcome.sleep = 0.0 if gate is not None else wait
            outcome.retry = True
            return
        limit = policy.transient_retries if kind == "transient" else policy.bad_image_retries
        if n >= limit or remaining <= 0:
            return  # outcome.error already says what failed
        wait = policy.backoff(n)
        assert outcome.error is not None
        outcome.event = WaitEvent("retrying", wait, f"retry {n + 1}/{limit}: {outcome.error.message}", key)
        outcome.sleep = wait
        outcome.retry = True


def _tag(error: AvatargenError, status: int | None, waited: float | None = None) -> AvatargenError:
    """Facts the batch engine reads (fallback on 5xx): the HTTP status and seconds waited."""
    error.status_code = status  # type: ignore[attr-defined]
    if waited is not None:
        error.waited_s = round(waited, 1)  # type: ignore[attr-defined]
    return error


SAMPLER_HEADER = "X-Avatargen-Sampler"
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def _check_image(response: httpx.Response, target: Target) -> _Outcome:
    """A 200 counts only if its body is a whole image (HTML, JSON, cut-short files are not).
    A PNG is checked chunk by chunk (CRCs, IHDR first, IEND last) without decoding its pixels;
    another format is decoded once to prove it whole."""
    body = response.content
    png_chunks = None
    try:
        if body[:8] == b"\x89PNG\r\n\x1a\n":
            png = _check_png(body, target)
            if isinstance(png, _Outcome):  # far more pixels than asked for
                return png
            png_chunks, content_type = png, "image/png"
        else:
            checked = _decode_other(body, target, response)
            if isinstance(checked, _Outcome):
                return checked
            content_type = checked
    except _NotAnImage:
        what = response.headers.get("content-type", "").split(";")[0] or "unknown type"
        detail = ""
        if "json" in what:
            detail = ": " + scrub(server_message(response), target.secrets)
        error = ProviderError(
            f"{target.label} answered 200 but not a whole image ({what}, {len(body)} bytes){detail}",
            "check that the URL runs the avatargen handler (`avatargen endpoint bundle`)",
        )
        return _Outcome("bad-image", error=_tag(error, response.status_code))
    # A class name at most: anything else from the server stays out of our metadata.
    sampler = (
        "".join(c for c in response.headers.get(SAMPLER_HEADER, "") if c.isalnum() or c in "_+-")[:64] or None
    )
    return _Outcome("ok", image=body, content_type=content_type, sampler=sampler, png_chunks=png_chunks)


class _NotAnImage(Exception):
    pass


def checked_image(body: bytes, target: Target, content_type: str = "") -> tuple[bytes, str]:
    """(image, its type) after the checks every downloaded image passes (whole, not far larger
    than asked), for an image that arrives another way (a data: URL in a JSON answer); raises
    the same error a download would meet."""
    response = httpx.Response(
        200, content=body, headers={"content-type": content_type} if content_type else {}
    )
    outcome = _check_image(response, target)
    if outcome.kind != "ok":
        assert outcome.error is not None
        raise outcome.error
    return outcome.image, outcome.content_type


def _check_png(body: bytes, target: Target) -> _Outcome | list[tuple[bytes, int, int]]:
    """Far more pixels than asked for (an outcome), or the PNG's chunks, every one checked."""
    from avatargen.pngchunks import PngError, check_png, read_header

    try:
        header = read_header(body)
        too_big = _too_big((header.width, header.height), target)
        if too_big is not None:
            return too_big
        return check_png(body, max_pixels=header.width * header.height)[1]  # the pixel cap is _too_big's
    except PngError:
        raise _NotAnImage() from None


def _decode_other(body: bytes, target: Target, response: httpx.Response) -> _Outcome | str:
    """A JPEG, WebP, ... answer: its header size checked, then decoded whole. Its content type."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check is ours
            with Image.open(io.BytesIO(body)) as img:  # reads the header only
                too_big = _too_big(img.size, target)
                if too_big is not None:
                    return too_big
                img.load()  # decodes every byte: a truncated file fails here
                return _MIME.get(img.format or "", response.headers.get("content-type", "image/png"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise _NotAnImage() from None


def _check_json(response: httpx.Response, target: Target) -> _Outcome:
    """A 2xx that should be a JSON object: anything else is retried once, like a broken image."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        what = response.headers.get("content-type", "").split(";")[0] or "unknown type"
        error = ProviderError(
            f"{target.label} answered {response.status_code} but not a JSON object ({what})",
            "check AVATARGEN_ROUTER_URL: it must be Hugging Face's router or a proxy of it",
        )
        return _Outcome("bad-image", error=_tag(error, response.status_code))
    return _Outcome("ok", image=response.content, content_type="application/json")


def _too_big(size: tuple[int, int], target: Target) -> _Outcome | None:
    """A failed attempt when the image header promises far more pixels than were asked for
    (decoding a 12000x12000 'image' of a few KB would take hundreds of MB)."""
    if target.expected_size is None:
        return None
    width, height = size
    asked_w, asked_h = target.expected_size
    if width * height <= MAX_PIXEL_FACTOR * asked_w * asked_h:
        return None
    error = ProviderError(
        f"{target.label} answered a {width}x{height} image for {asked_w}x{asked_h} asked; not decoded",
        "check that the URL runs the avatargen handler for this model",
    )
    return _Outcome("fatal", error=_tag(error, 200))
