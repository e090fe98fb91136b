"""Does an endpoint URL run avatargen's handler? Asked once, before anything is paid for.

An Inference Endpoint created from a plain model repository runs the serving toolkit's default
diffusers handler: /health says 200 like ours, but every generation is refused with an opaque
400 ("image must be passed ... but is <class 'str'>"). So the probe asks the handler itself:
- `avatargen serve` puts HANDLER_HEADER on every answer: its GET /health already says so;
- otherwise POST {"inputs": {"avatargen": "handler"}} (Accept: application/json). Our handler (the
  bundle's handler.py, and `serve`) answers {"avatargen": {"handler": N, "features": [...]}};
  the toolkit's default handler and other servers refuse it (4xx) without generating anything.
An answer that is neither ours nor a refusal (an image, 5xx, a timeout, still loading) proves
nothing: the endpoint is not called foreign then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from avatargen.errors import MISSING_EXTRA, AvatargenError, ProviderError
from avatargen.providers.http_client import PROBE_BODY_BYTES, PROBE_TIMEOUT_S, BodyTooLarge, send_capped

# Mirrors of serve/pipelines.py's constants (the client never imports the server half);
# tests/test_handler_identity_23.py checks that they agree.
HANDLER_HEADER = "X-Avatargen-Handler"
HELLO = {"inputs": {"avatargen": "handler"}}
FACE_CROP = "face-crop"
SERVE = "avatargen serve"  # the detail of a handler known by its header
# What avatargen's own handler said to a hello before it knew the handshake (it asked for a prompt):
# an older bundle is still ours, without the newer features.
_OLD_HANDLER_WORDS = ("'prompt' is required",)


@dataclass
class HandlerInfo:
    ours: bool | None  # None: could not tell
    protocol: int = 0  # 0: our handler from before the handshake
    features: tuple[str, ...] = ()
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finds_faces(self) -> bool:
        """Can it crop a photo sent as `ip_adapter_photo`? `serve` always can (its extra has
        MediaPipe); a bundle says so in its handshake."""
        return self.detail == SERVE or FACE_CROP in self.features

    def to_dict(self) -> dict[str, Any]:
        return {
            "ours": self.ours,
            "protocol": self.protocol,
            "features": list(self.features),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandlerInfo:
        return cls(
            data.get("ours"), data.get("protocol", 0), tuple(data.get("features", ())), data.get("detail", "")
        )


def from_headers(response: httpx.Response) -> HandlerInfo | None:
    """Ours by its header (`avatargen serve`), else None (not known from this answer)."""
    value = response.headers.get(HANDLER_HEADER)
    if not value:
        return None
    protocol = int(value) if value.strip().isdigit() else 1
    # serve finds faces whenever it runs (the serve extra has MediaPipe); asked to be sure otherwise.
    return HandlerInfo(True, protocol, detail=SERVE)


def ask_handler(client: httpx.Client, url: str, headers: dict[str, str]) -> HandlerInfo:
    """POST the handshake to `url` and read what answers."""
    from avatargen.providers.http_client import server_message

    sent = {**headers, "Accept": "application/json", "Content-Type": "application/json"}
    try:
        response = send_capped(
            client, "POST", url, cap=PROBE_BODY_BYTES, json=HELLO, headers=sent, timeout=PROBE_TIMEOUT_S
        )
    except (httpx.TransportError, BodyTooLarge) as exc:
        return HandlerInfo(None, detail=f"the handshake got no answer ({type(exc).__name__})")
    code = response.status_code
    data: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            data = None
    hello = data.get("avatargen") if isinstance(data, dict) else None
    if code == 200 and isinstance(hello, dict) and isinstance(hello.get("handler"), int):
        features = hello.get("features")
        named = tuple(str(f) for f in features) if isinstance(features, list) else ()
        return HandlerInfo(True, hello["handler"], named, extra={"model": hello.get("model")})
    words = server_message(response) if code >= 300 else ""
    if code in (400, 422) and any(w in words for w in _OLD_HANDLER_WORDS):
        return HandlerInfo(True, 0, detail="avatargen's handler from before the handshake")
    if code not in (400, 415, 422):
        # An image (something generated, or a fake), auth, a wrong URL (404), rate limits, 5xx:
        # not a handler refusing our request, so nothing is concluded.
        return HandlerInfo(None, detail=f"the handshake got HTTP {code} without avatargen's answer")
    return HandlerInfo(False, detail=f"HTTP {code}" + (f": {words[:160]}" if words else ""))


def fix_hint(model: Any) -> str:
    alias = getattr(model, "alias", None) or getattr(model, "key", "MODEL")
    return (
        f"deploy avatargen's handler there: `avatargen endpoint deploy {alias}`, or "
        f"`avatargen endpoint bundle {alias} -o DIR` and push DIR to the endpoint's repository"
    )


def foreign_error(model: Any, shown_url: str, detail: str) -> ProviderError:
    """The error every job meets at an endpoint that does not run our handler: it can never
    succeed there (status 400: the batch counts it so, and `retry` does not re-send it)."""
    error = ProviderError(
        f"endpoint {shown_url} does not run avatargen's handler ({detail}); {fix_hint(model)}",
        "until then every job there can never succeed; `avatargen status MODEL` checks it",
    )
    error.status_code = 400  # type: ignore[attr-defined]
    return error


class NoFaceFinder(AvatargenError):
    """Identity with no one to find the faces: not this install (no MediaPipe), not the endpoint.
    Every job would meet it: the batch stops, the jobs stay queued (exit 11, as a missing extra)."""

    exit_code = MISSING_EXTRA
    stops_batch = True


def no_face_finder_error(shown_url: str) -> NoFaceFinder:
    return NoFaceFinder(
        "identity (finding the face in each photo) needs the optional extra 'pose' here, and the "
        f"handler at {shown_url} cannot find faces either (an older bundle, or no MediaPipe there)",
        "install it with: pip install 'avatargen[pose]', or redeploy the endpoint (`avatargen endpoint "
        "deploy MODEL`), or turn identity off with --identity-scale 0",
    )
