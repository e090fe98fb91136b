"""hf-endpoint: a dedicated Inference Endpoint, `avatargen serve`, or any URL running our handler.

Wire format (the seed's): POST {"inputs": {prompt, negative_prompt, image (base64 PNG pose),
num_inference_steps, guidance_scale, controlnet_conditioning_scale, width, height, seed
[, init_image, strength] [, ip_adapter_image (base64 face crop, or a list), ip_adapter_scale]}} with `Accept: image/png`; the answer is the image bytes.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from avatargen.catalog import Model
from avatargen.errors import InputError, ProviderError
from avatargen.providers.base import GenerationRequest, StatusReport
from avatargen.providers.handler_check import (
    HandlerInfo,
    ask_handler,
    fix_hint,
    foreign_error,
    from_headers,
    no_face_finder_error,
)
from avatargen.providers.http_client import (
    ENDPOINT_TOKEN_ENV,
    PROBE_BODY_BYTES,
    PROBE_TIMEOUT_S,
    BodyTooLarge,
    TokenScope,
    elapsed_ms,
    estimated_time,
    network_detail,
    scrub,
    send_capped,
    server_message,
)
from avatargen.providers.http_provider import HttpProvider
from avatargen.providers.retry import RetryPolicy, Target
from avatargen.redact import redact_url

FOREIGN_STATE = "foreign-handler"  # answers, but not with avatargen's handler: nothing will work

# How long the Hugging Face proxy may hold one request while a scaled-to-zero replica starts.
# Kept short so the progress display hears back (a 503) and says "starting" instead of freezing.
SCALE_UP_HOLD_S = 60
# A held request plus SDXL at 50 steps on a small GPU: the read timeout must cover both.
GENERATION_READ_TIMEOUT_S = SCALE_UP_HOLD_S + 240.0


class EndpointProvider(HttpProvider):
    name = "hf-endpoint"
    read_timeout_s = GENERATION_READ_TIMEOUT_S

    def __init__(
        self,
        model: Model,
        url: str,
        *,
        token: object = None,  # settings.TokenInfo, or None for no Hugging Face token
        wait_timeout: float | None = None,
        url_source: str = "",
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        scope = TokenScope(token, endpoint_url=url)  # type: ignore[arg-type]
        super().__init__(model, url, scope, wait_timeout=wait_timeout, client=client, policy=policy)
        self.url_source = url_source
        self.shown_url = redact_url(url)  # what messages, events and reports name: no credentials
        self.handler: HandlerInfo | None = None  # which handler the URL runs, once known
        self._handler_lock = threading.Lock()

    def before_send(self) -> None:
        """A job at an endpoint the batch's pre-flight found foreign fails at once, unsent, as
        never-succeeding (each one would only meet the same refusal)."""
        with self._handler_lock:
            info = self.handler
        if info is not None and info.ours is False:
            raise foreign_error(self.model, self.shown_url, info.detail)

    def generate(self, request: GenerationRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().generate(request, *args, **kwargs)
        except ProviderError as exc:
            # A refusal from a handler not yet known (the pre-flight found it loading): ours says
            # why in its own words; another's is told so, with what to deploy, once asked.
            if getattr(exc, "status_code", None) not in (400, 422) or self.handler is not None:
                raise
            with self._handler_lock:
                if self.handler is None:
                    self.handler = ask_handler(self.client, self.url, self.scope.headers_for(self.url))
            if self.handler.ours is False:
                raise foreign_error(self.model, self.shown_url, self.handler.detail) from None
            raise

    def payload(self, request: GenerationRequest) -> dict:
        if request.pose_png is None:
            raise InputError(f"no pose image for {self.model.key}", "the endpoint needs a pose (--pose)")
        if request.ip_adapter_find_faces and request.ip_adapter_scale > 0:
            info = self.handler  # before_send ran: known, or unknowable (then the server says)
            if info is not None and info.ours and not info.finds_faces:
                raise no_face_finder_error(self.shown_url)
        inputs = request.wire_inputs(lambda data: base64.b64encode(data).decode("ascii"))
        return {"inputs": inputs}

    def headers(self) -> dict[str, str]:
        hold = int(min(SCALE_UP_HOLD_S, self.policy.wait_timeout))
        return {
            "Accept": "image/png",
            "X-Scale-Up-Timeout": str(max(hold, 1)),
            **self.scope.headers_for(self.url),
        }

    def target(self) -> Target:
        return Target(
            backend=self.name,
            url=self.url,
            model_key=self.model.key,
            label=f"endpoint {self.shown_url}",
            auth_hint=(
                "check the token: HF_TOKEN or `hf auth login` for a Hugging Face endpoint (it needs access "
                f"to the endpoint), {ENDPOINT_TOKEN_ENV} for `avatargen serve --token`"
            ),
            not_found_hint="check the endpoint URL (avatargen status MODEL shows which one is used)",
            secrets=self.scope.secrets(),
        )

    def status(self) -> StatusReport:
        report = probe_endpoint(self.client, self.url, self.scope, model=self.model)
        report.extra["url_source"] = self.url_source
        handler = report.extra.get("handler")
        if isinstance(handler, dict):
            with self._handler_lock:
                self.handler = HandlerInfo.from_dict(handler)
        return report


def probe_endpoint(client: httpx.Client, url: str, scope: TokenScope, model: Any = None) -> StatusReport:
    """GET {url}/health (the inference toolkit's route), falling back to GET {url}; when it is
    ready, whether it runs avatargen's handler (handler_check.py): state `foreign-handler` if not.
    Every failure is a state in the report, never an exception; the report names the URL without
    its credentials."""
    shown = redact_url(url)
    parts = urlsplit(url)
    health = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/health"))  # the query stays
    candidates = [health, url]
    for probe_url in candidates:
        began = time.perf_counter()
        try:
            response = send_capped(
                client,
                "GET",
                probe_url,
                cap=PROBE_BODY_BYTES,
                headers=scope.headers_for(probe_url),
                timeout=PROBE_TIMEOUT_S,
            )
        except BodyTooLarge as exc:
            detail = f"HTTP {exc.status_code} with {exc} of body, not a health answer"
            return StatusReport(
                "hf-endpoint", shown, "unknown", detail=detail, round_trip_ms=elapsed_ms(began)
            )
        except httpx.TransportError as exc:
            return StatusReport(
                "hf-endpoint",
                shown,
                "unreachable",
                detail=network_detail(exc, scope.secrets()),
                round_trip_ms=elapsed_ms(began),
                # refused or no such host: nothing listens there (providers/reachable.py)
                extra={"refused": isinstance(exc, httpx.ConnectError)},
            )
        ms = elapsed_ms(began)
        if response.status_code in (404, 405) and probe_url != url:
            continue  # a server without /health: ask the root instead
        break
    code = response.status_code
    message = scrub(server_message(response), scope.secrets()) if code >= 300 else ""
    extra = {"http_status": code, "probed": redact_url(probe_url)}
    if 200 <= code < 300:
        info = from_headers(response) or ask_handler(client, url, scope.headers_for(url))
        extra["handler"] = info.to_dict()
        if info.ours is False:
            return StatusReport(
                "hf-endpoint",
                shown,
                FOREIGN_STATE,
                detail=f"it answers, but does not run avatargen's handler ({info.detail})",
                round_trip_ms=ms,
                extra={**extra, "hint": fix_hint(model)},
            )
        detail = "" if info.ours else f"handler not confirmed: {info.detail}"
        return StatusReport("hf-endpoint", shown, "ready", detail=detail, round_trip_ms=ms, extra=extra)
    if code == 503:
        estimate = estimated_time(response)
        detail = f"loading, ~{estimate:.0f} s" if estimate is not None else "starting (scaled to zero?)"
        return StatusReport(
            "hf-endpoint",
            shown,
            "starting",
            detail=detail,
            estimated_time=estimate,
            round_trip_ms=ms,
            extra=extra,
        )
    if code in (401, 403):
        has_token = scope.token_for(url) is not None
        detail = f"HTTP {code}: {message}" + ("" if has_token else " (no token is sent to this host)")
        return StatusReport(
            "hf-endpoint", shown, "unauthorized", detail=detail, round_trip_ms=ms, extra=extra
        )
    return StatusReport(
        "hf-endpoint", shown, "unknown", detail=f"HTTP {code}: {message}", round_trip_ms=ms, extra=extra
    )
