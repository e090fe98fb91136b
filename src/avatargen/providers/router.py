"""hf-providers: image-to-image through Hugging Face's router to Inference Providers (fal-ai, replicate).

Nothing to deploy: a Hugging Face token is enough, and the provider's price is billed to the
token's account. huggingface_hub's own provider helpers (the `hub` extra) build each request, so
the body and the route are exactly what `InferenceClient.image_to_image` would send; this module
sends them itself, through the retry policy, the model's gate and the usage counter.

What is sent, and what counts:
- the submit (POST {router}/{provider}/...): the charged request. Every attempt, retries included,
  goes through `on_attempt` (limits.daily_requests and the ledger's request count);
- fal-ai's queue status polls and its result JSON (GET on the router), and the image download
  from the provider's CDN: through the same retry policy, never counted (HF bills a generation,
  not its polls).
The token goes to the router base (AVATARGEN_ROUTER_URL) only; the image is fetched from the
provider's CDN without any Authorization header.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from avatargen import settings
from avatargen.catalog import Model
from avatargen.errors import AvatargenError, InputError, MissingExtra, ProviderError, UsageError
from avatargen.providers.base import EventSink, GenerationRequest, GenerationResult, StatusReport, WaitEvent
from avatargen.providers.gate import ModelGate
from avatargen.providers.http_client import send_capped
from avatargen.providers.http_provider import PolicyClient
from avatargen.providers.resume import RequestJournal
from avatargen.providers.retry import RetryPolicy, Target, checked_image
from avatargen.redact import remember_secret

BACKEND = "hf-providers"
PUBLIC_ROUTER = "router.huggingface.co"
TASK = "image-to-image"
POLL_INTERVAL_S = 0.5  # huggingface_hub's own interval for fal-ai's queue
READ_TIMEOUT_S = 120.0  # replicate's `Prefer: wait` holds the answer up to 60 s
BILLING_URL = "https://huggingface.co/settings/billing"
PERMISSION_HINT = (
    "check the token (HF_TOKEN or `hf auth login`); a fine-grained token needs the "
    "'Make calls to Inference Providers' permission: https://huggingface.co/settings/tokens"
)
# The placeholder handed to huggingface_hub: an `hf_` key makes it route through the router, and
# the real token never enters its code (we add the Authorization header ourselves).
_HUB_KEY = "hf_avatargen"
_FAILED = {"failed", "canceled", "FAILED", "ERROR"}
GONE = (404, 410)  # a saved provider job's status or result answers this: the provider lost it


# ------------------------------------------------------------ the catalog's provider facts
def provider_ids(model: Model) -> dict[str, str]:
    """{provider: the model's id there} from the catalog's `provider_ids` ("fal-ai=fal-ai/x")."""
    out: dict[str, str] = {}
    for entry in model.provider_ids:
        name, _, pid = entry.partition("=")
        if name.strip() and pid.strip():
            out[name.strip()] = pid.strip()
    return out


def resolve_hf_provider(model: Model, hf_provider: str | None = None) -> tuple[str, str]:
    """(provider, its model id): --hf-provider, else the catalog's `hf_provider`, else the first listed."""
    ids = provider_ids(model)
    if not ids:
        raise UsageError(
            f"{model.key} does not run on Inference Providers (no provider_ids in the catalog)",
            "pick a model that does: --model qwen-image-edit-pose or --model flux-kontext",
        )
    name = (hf_provider or "").strip() or model.hf_provider or next(iter(ids), "")
    if name not in ids:
        where = "--hf-provider" if hf_provider else f"catalog {model.source or 'models.toml'}"
        known = ", ".join(ids) or "none"
        raise UsageError(
            f"{model.key} has no model id for provider '{name}' ({where}; the catalog lists: {known})",
            f"use one of them, or add '{name}=ID' to its provider_ids (avatargen status {model.alias} "
            "shows the live mapping)",
        )
    return name, ids[name]


def submit_url(provider: str, provider_model_id: str) -> str:
    """Where the submit goes (shown by `status` and used by the fakes' tests): the router route
    huggingface_hub builds for an `hf_` token, on our router base."""
    return _on_router(_hub_request(provider, "x/x", provider_model_id, "data:,", {"prompt": ""}).url)


# ------------------------------------------------------------ prompts
def edit_prompt(request: GenerationRequest, pose_input: str, extra_images: int = 0) -> str:
    """The instruction: which image is whom, what to keep, and the pose (as image 2, or in words)."""
    pose = request.pose_description.strip().rstrip(".")
    style = request.prompt.strip().rstrip(".")
    if pose_input == "image":
        text = (
            "Put the person from image 1 in the exact body pose of the stick-figure skeleton in image 2"
            + (f" ({pose})" if pose else "")
            + ". Keep their face, identity, hair, skin tone and clothes exactly as in image 1; do not draw"
            " the skeleton."
        )
        if extra_images == 1:
            text += " Image 3 shows the same person: keep the face consistent with it."
        elif extra_images:
            text += (
                f" Images 3 to {2 + extra_images} show the same person: keep the face consistent with them."
            )
    else:
        text = (
            "Change the pose of the person in the image"
            + (f": {pose}" if pose else "")
            + ". Keep their face, identity, hair, skin tone and clothes exactly the same."
        )
    return f"{text} {style}." if style else text


def data_url(image: bytes) -> str:
    """An image as a data URL with its real type (huggingface_hub would call raw bytes JPEG)."""
    mime = "image/png"
    if image[:3] == b"\xff\xd8\xff":
        mime = "image/jpeg"
    elif image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        mime = "image/webp"
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def call_arguments(request: GenerationRequest, model: Model) -> tuple[str, dict[str, Any]]:
    """The (image, parameters) of the image_to_image call this request makes: what
    `InferenceClient.image_to_image(image, **parameters)` would take (kwargs included)."""
    if request.init_image_png is None:  # the batch always sends it to a model that edits_photo
        raise InputError(f"{model.key} edits the photo, and none was sent", "give a photo to generate")
    photo = data_url(request.init_image_png)
    extra: list[str] = []
    parameters: dict[str, Any] = {}
    if model.pose_input == "image":
        if request.pose_png is None:
            raise InputError(f"no pose image for {model.key}", "give a pose: --pose NAME|FILE|auto")
        references = [data_url(img) for img in request.reference_images]
        extra = references
        parameters["image_urls"] = [photo, data_url(request.pose_png), *references]
    parameters = {
        "prompt": edit_prompt(request, model.pose_input, len(extra)),
        "negative_prompt": request.negative_prompt or None,
        "target_size": {"width": request.width, "height": request.height},
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance_scale,
        "seed": request.seed,
        **parameters,
    }
    return photo, parameters


# ------------------------------------------------------------ huggingface_hub's helpers
def _hub_request(provider: str, hf_model_id: str, provider_model_id: str, image: str, params: dict):
    """RequestParameters from huggingface_hub's helper for `provider`, with the catalog's mapping
    (no Hub lookup per call) and a placeholder key (the real token never enters its code)."""
    from avatargen import hub_extra

    hub_extra.require("the hf-providers backend (Inference Providers)")  # an old stray copy too
    try:
        from huggingface_hub.hf_api import InferenceProviderMapping
        from huggingface_hub.inference._providers import get_provider_helper
    except ImportError:
        raise MissingExtra("hub", "the hf-providers backend (Inference Providers)") from None
    try:
        helper = get_provider_helper(provider, task=TASK, model=hf_model_id)
    except ValueError as exc:
        raise UsageError(f"provider '{provider}' ({exc})", "see `avatargen status MODEL`") from None
    mapping = InferenceProviderMapping(
        provider=provider, hf_model_id=hf_model_id, providerId=provider_model_id, status="live", task=TASK
    )
    helper._prepare_mapping_info = lambda model: mapping  # the catalog's id: no Hub fetch per job
    return helper.prepare_request(
        inputs=image,
        parameters=dict(params),
        headers={},
        model=hf_model_id,
        api_key=_HUB_KEY,
    )


def _on_router(url: str) -> str:
    """huggingface_hub's router URL moved onto AVATARGEN_ROUTER_URL (a proxy, or a test's fake)."""
    prefix = f"https://{PUBLIC_ROUTER}"
    assert url.startswith(prefix), url
    return settings.router_base_url() + url[len(prefix) :]


class RouterScope:
    """The HF token goes to URLs under the router base the user named, and nowhere else."""

    def __init__(self, token_info: Any, base: str) -> None:
        self.token = token_info.token if token_info is not None and token_info.found else None
        self.base = base.rstrip("/")
        if self.token is not None:
            remember_secret(self.token.reveal())

    def headers_for(self, url: str) -> dict[str, str]:
        if self.token is None or not _under(url, self.base):
            return {}
        return {"Authorization": f"Bearer {self.token.reveal()}"}

    def secrets(self) -> list[str]:
        return [self.token.reveal()] if self.token is not None else []


def _has_dot_segments(path: str) -> bool:
    """`.` or `..` segments, percent-encoded ones included (a server may decode them)."""
    return any(segment in (".", "..") for segment in unquote(path).replace("\\", "/").split("/"))


def _under(url: str, base: str) -> bool:
    """Same origin, and the path inside the base's path once dot segments are resolved."""
    a, b = urlsplit(url), urlsplit(base)
    same_origin = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    if not same_origin or _has_dot_segments(a.path):
        return False
    return (a.path + "/").startswith(b.path.rstrip("/") + "/")


# ------------------------------------------------------------ the backend
class RouterProvider(PolicyClient):
    name = BACKEND
    read_timeout_s = READ_TIMEOUT_S

    def __init__(
        self,
        model: Model,
        *,
        token: Any = None,  # settings.TokenInfo
        hf_provider: str | None = None,
        wait_timeout: float | None = None,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        from avatargen import hub_extra

        hub_extra.require("the hf-providers backend (Inference Providers)")  # before any job is planned
        self.model = model
        self.hf_provider, self.provider_model_id = resolve_hf_provider(model, hf_provider)
        self.base = settings.router_base_url()
        self.scope = RouterScope(token, self.base)
        super().__init__(wait_timeout=wait_timeout, client=client, policy=policy)
        self._mapping_lock = threading.Lock()
        self._mapping: dict[str, Any] | None = None
        self._mapping_used = False

    def mapping_info(self) -> dict[str, Any]:
        """The Hub's inferenceProviderMapping for this model, asked once per backend (the batch's
        pre-flight status and the first submit share it)."""
        with self._mapping_lock:
            if self._mapping is None:
                from avatargen.providers.router_status import provider_mapping

                self._mapping = provider_mapping(
                    self.client, self.model, self.hf_provider, self.provider_model_id
                )
            return self._mapping

    def use_live_mapping(self) -> None:
        """Before the first submit: the Hub's live mapping wins over the catalog's id (a provider
        renames or re-points ids; the Hub's is what the router serves), with one warning when they
        differ. Offline, unreachable, or nothing live there: the catalog's id."""
        from avatargen.providers.router_status import live_provider_id

        live = live_provider_id(self.mapping_info(), self.hf_provider)
        with self._mapping_lock:
            if self._mapping_used:
                return
            self._mapping_used = True
            if live and live != self.provider_model_id:
                from avatargen.output import warn

                warn(
                    f"the Hub maps {self.model.huggingface_model} on {self.hf_provider} to {live}, not the "
                    f"catalog's {self.provider_model_id}: sending to {live} (update provider_ids in "
                    f"{self.model.source or 'models.toml'})"
                )
                self.provider_model_id = live

    @property
    def url(self) -> str:
        return submit_url(self.hf_provider, self.provider_model_id)

    def build(self, request: GenerationRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, json) of the submit: huggingface_hub's request on our router base, its
        Authorization replaced by ours (only for the router base)."""
        image, parameters = call_arguments(request, self.model)
        built = _hub_request(
            self.hf_provider, self.model.huggingface_model, self.provider_model_id, image, parameters
        )
        url = _on_router(built.url)
        headers = {k: v for k, v in built.headers.items() if k not in ("authorization", "user-agent")}
        return url, {**headers, **self.scope.headers_for(url)}, built.json  # type: ignore[return-value]

    def _target(self, url: str, what: str, expects: str = "json") -> Target:
        return Target(
            backend=self.name,
            url=url,
            model_key=self.model.key,
            label=f"{self.hf_provider} via the router ({what})",
            auth_hint=PERMISSION_HINT,
            not_found_hint=(
                f"the router does not serve {self.model.huggingface_model} on {self.hf_provider} as "
                f"{self.provider_model_id}; check `avatargen status {self.model.alias}`"
            ),
            secrets=self.scope.secrets(),
            expects=expects,
        )

    def _json(
        self, method, url, target, *, body=None, headers=None, on_event=None, gate=None, on_attempt=None
    ):
        """One JSON exchange with the router, retried by the policy."""
        sent = {**(headers or {}), **self.scope.headers_for(url)}

        def send() -> httpx.Response:
            return send_capped(self.client, method, url, json=body, headers=sent)

        result = self.policy.run(send, target, on_event=on_event, gate=gate, on_attempt=on_attempt)
        return json.loads(result.image), result.attempts

    def generate(
        self,
        request: GenerationRequest,
        on_event: EventSink | None = None,
        gate: ModelGate | None = None,
        on_attempt: Callable[[], None] | None = None,
        journal: RequestJournal | None = None,
    ) -> GenerationResult:
        """One image. With a `journal` (the batch's record of this job), a provider job an earlier
        run submitted is polled again rather than paid for twice, and a new one is recorded the
        moment the provider accepts it."""
        if self.scope.token is None:
            # The CLI refuses this up front (select.require_token); a library caller meets it here.
            from avatargen.providers.credentials import missing_token

            raise missing_token(BACKEND)
        began = self.policy.clock()
        self.use_live_mapping()  # before a saved request is compared with the model id
        try:
            answer, attempts, polls = None, 0, 0
            ticket = self._resumable(journal)
            if ticket is not None:
                try:
                    answer, polls = self._result(ticket, None, began, on_event, gate)
                except AvatargenError as exc:
                    if getattr(exc, "status_code", None) not in GONE:
                        raise
                    journal.forget()  # type: ignore[union-attr]  # the provider lost it: submit anew
            if answer is None:
                ticket, submitted, attempts = self._submit(request, on_event, gate, on_attempt)
                if journal is not None and "request_id" in ticket:
                    journal.save(ticket)  # before anything else: from here on this job is paid for
                answer, polls = self._result(ticket, submitted, began, on_event, gate)
            image_url = _image_url(answer, self.hf_provider)
            image, content_type, downloads = self._download(image_url, request)
        except AvatargenError as exc:
            if journal is not None and getattr(exc, "provider_job_failed", False):
                journal.forget()  # that job is over: `retry` submits a new one
            raise _credits_stop(exc) from None
        return GenerationResult(
            image=image,
            content_type=content_type,
            seconds=round(self.policy.clock() - began, 3),
            attempts=attempts + polls + downloads,
            backend=self.name,
            model_key=self.model.key,
        )

    resumes_requests = True  # generate() takes a journal (providers/resume.py)

    def _resumable(self, journal: RequestJournal | None) -> dict | None:
        """The job's saved provider request, when it was made here: same provider, same model."""
        saved = journal.load() if journal is not None else None
        if not saved or (saved.get("provider"), saved.get("model")) != (
            self.hf_provider,
            self.provider_model_id,
        ):
            return None
        needs = ("request_id", "response_url") if self.hf_provider == "fal-ai" else ("request_id",)
        return saved if all(isinstance(saved.get(k), str) and saved[k] for k in needs) else None

    def _submit(self, request, on_event, gate, on_attempt) -> tuple[dict, dict, int]:
        """The charged request: (the ticket to keep, the submit's answer, attempts)."""
        url, headers, body = self.build(request)
        answer, attempts = self._json(
            "POST", url, self._target(url, "submit"), body=body, headers=headers,
            on_event=on_event, gate=gate, on_attempt=on_attempt,
        )  # fmt: skip
        ticket = {"provider": self.hf_provider, "model": self.provider_model_id}
        if self.hf_provider == "fal-ai":
            response_url = answer.get("response_url")
            if not answer.get("request_id") or not isinstance(response_url, str):
                raise ProviderError(
                    f"fal-ai via the router answered the submit without a request_id/response_url: {_short(answer)}"
                )
            ticket["request_id"], ticket["response_url"] = answer["request_id"], response_url
        elif isinstance(answer.get("id"), str) and answer["id"]:
            ticket["request_id"] = answer["id"]
        return ticket, answer, attempts

    def _result(self, ticket: dict, submitted: dict | None, began: float, on_event, gate) -> tuple[dict, int]:
        """The provider's finished job (polled until done): (result JSON, polls). `submitted`: the
        submit's answer; None for a job an earlier run submitted (its state is asked for first)."""
        if self.hf_provider == "fal-ai":
            return self._fal_result(ticket, submitted or {}, began, on_event, gate)
        prediction = submitted or {"id": ticket.get("request_id"), "status": "starting", "output": None}
        return self._replicate_result(prediction, began, on_event, gate)

    # -------------------------------------------------------- fal-ai's queue
    def _fal_result(self, ticket: dict, answer: dict, began: float, on_event, gate) -> tuple[dict, int]:
        """Poll the status until COMPLETED, then fetch the result JSON (huggingface_hub's routes:
        {router}/fal-ai{response_url's path}[/status]?_subdomain=queue)."""
        path = urlsplit(ticket["response_url"]).path
        if _has_dot_segments(path):
            # Joined onto the router base, `..` would walk out of it, and take the token along.
            raise ProviderError(
                f"fal-ai via the router answered a response_url with '.' or '..' in its path: {_short(ticket['response_url'])}"
            )
        result_url = f"{self.base}/fal-ai{path}?_subdomain=queue"
        status_url = f"{self.base}/fal-ai{path}/status?_subdomain=queue"
        status, calls = _status(answer, "fal-ai"), 0
        while status != "COMPLETED":
            self._check_deadline(began, f"fal-ai job still {status or 'queued'}")
            if status == "IN_QUEUE" and on_event is not None:
                position = answer.get("queue_position")
                where = f" (position {position})" if isinstance(position, int) else ""
                on_event(
                    WaitEvent("starting", POLL_INTERVAL_S, f"in the fal-ai queue{where}", self.model.key)
                )
            self.policy.sleep(POLL_INTERVAL_S * self.policy.scale)
            answer, n = self._json("GET", status_url, self._target(status_url, "queue status"), gate=gate)
            calls += n
            status = _status(answer, "fal-ai")
            if answer.get("error") or status in _FAILED:
                raise _job_failed("fal-ai", answer)
        result, n = self._json("GET", result_url, self._target(result_url, "result"), gate=gate)
        return result, calls + n

    # -------------------------------------------------------- replicate
    def _replicate_result(self, prediction: dict, began: float, on_event, gate) -> tuple[dict, int]:
        """`Prefer: wait` answers with the output when done within the wait; otherwise the
        prediction is polled at {router}/replicate/v1/predictions/{id}."""
        calls = 0
        while prediction.get("output") is None or _status(prediction, "replicate") in (
            "starting",
            "processing",
        ):
            if _status(prediction, "replicate") in _FAILED or prediction.get("error"):
                raise _job_failed("replicate", prediction)
            pid = prediction.get("id")
            if not isinstance(pid, str) or not pid:
                raise ProviderError(
                    f"replicate via the router answered without output or id: {_short(prediction)}"
                )
            self._check_deadline(began, f"replicate prediction still {prediction.get('status') or 'running'}")
            if on_event is not None:
                on_event(
                    WaitEvent("starting", POLL_INTERVAL_S, "replicate is still generating", self.model.key)
                )
            self.policy.sleep(POLL_INTERVAL_S * self.policy.scale)
            url = f"{self.base}/replicate/v1/predictions/{pid}"
            prediction, n = self._json("GET", url, self._target(url, "prediction status"), gate=gate)
            calls += n
        return prediction, calls

    def _check_deadline(self, began: float, what: str) -> None:
        waited = self.policy.clock() - began
        if waited > self.policy.wait_timeout:
            error = ProviderError(
                f"{what} after {waited:.0f} s (wait_timeout {self.policy.wait_timeout:g} s)",
                "run `avatargen retry` later, or wait longer: --wait-timeout SECONDS",
            )
            error.status_code = 504  # type: ignore[attr-defined]
            raise error

    # -------------------------------------------------------- the image
    def _download(self, image_url: str, request: GenerationRequest) -> tuple[bytes, str, int]:
        """The image from the provider's CDN, never with a token. A download that fails is a
        retryable failure of this job (`avatargen retry` redoes it), whatever the CDN answered."""
        host = "a data: URL" if image_url.startswith("data:") else urlsplit(image_url).hostname or "?"
        target = dataclasses.replace(
            self._target(image_url[:64], f"image from {host}", expects="image"),
            expected_size=(request.width, request.height),
        )
        if image_url.startswith("data:"):
            # The checks every downloaded image passes, before anything is written or charged.
            header, _, payload = image_url.partition(",")
            try:
                body = base64.b64decode(payload, validate=True)
            except ValueError:
                raise ProviderError(f"{self.hf_provider} answered a broken data URL for the image") from None
            image, content_type = checked_image(body, target, header[5:].split(";")[0])
            return image, content_type, 0

        def send() -> httpx.Response:
            return send_capped(self.client, "GET", image_url, headers={"Accept": "image/*"})

        try:
            result = self.policy.run(send, target)
        except AvatargenError as exc:
            error = ProviderError(
                f"the result image could not be downloaded from {host} ({exc.message})",
                "run `avatargen retry`: the job is queued again with its credits refunded",
            )
            error.status_code = 502  # type: ignore[attr-defined]  # retryable, never 'can never succeed'
            # The provider's copy is gone: polling that job again would find the same dead link.
            error.provider_job_failed = getattr(exc, "status_code", None) in GONE  # type: ignore[attr-defined]
            raise error from None
        return result.image, result.content_type, result.attempts

    def status(self) -> StatusReport:
        info = self.mapping_info()
        return StatusReport(
            self.name, self.url, info["state"], detail=info["detail"], extra={"mapping": info}
        )


def _image_url(answer: dict, provider: str) -> str:
    """images[0].url (fal-ai), or output / output[0] (replicate)."""
    url: Any = None
    images = answer.get("images")
    if isinstance(images, list) and images and isinstance(images[0], dict):
        url = images[0].get("url")
    elif "output" in answer:
        output = answer["output"]
        url = output[0] if isinstance(output, list) and output else output
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
        raise ProviderError(f"{provider} via the router answered without an image URL: {_short(answer)}")
    return url


def _status(answer: Any, provider: str) -> str | None:
    """The job's `status` field: a string, or None when absent; anything else is the provider's
    mistake, said as one (a dict there once made `status in _FAILED` crash with exit 70)."""
    if not isinstance(answer, dict):
        raise ProviderError(
            f"{provider} via the router answered {_short(answer)} where a JSON object was expected"
        )
    status = answer.get("status")
    if status is not None and not isinstance(status, str):
        error = ProviderError(
            f"{provider} via the router answered a job status that is not a string: {_short(status)}"
        )
        error.status_code = 502  # type: ignore[attr-defined]  # the provider's fault: worth a retry
        raise error
    return status


def _job_failed(provider: str, answer: dict) -> ProviderError:
    detail = answer.get("error") or answer.get("detail") or answer.get("status")
    error = ProviderError(
        f"{provider} failed the job: {_short(detail)}",
        "run `avatargen retry` to try it again; the credits were refunded",
    )
    error.status_code = 500  # type: ignore[attr-defined]  # the provider's failure: worth a retry
    error.provider_job_failed = True  # type: ignore[attr-defined]  # a retry needs a new submit
    return error


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _credits_stop(exc: AvatargenError) -> AvatargenError:
    """402 from the router: the account's HF credits are used up. Every other job would meet the
    same answer, so the batch stops at once (the rest stays queued, this job's credits refunded)."""
    if getattr(exc, "status_code", None) != 402:
        return exc
    error = ProviderError(
        "Hugging Face credits are used up (the router answered 402 Payment Required)",
        f"add credits or pay-as-you-go billing at {BILLING_URL}, then run `avatargen retry`",
    )
    error.status_code = 402  # type: ignore[attr-defined]
    error.stops_batch = True
    return error
