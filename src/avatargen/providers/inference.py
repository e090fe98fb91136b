"""hf-inference: Hugging Face's serverless router, text-to-image only.

No serverless route takes a ControlNet control image, so the pose travels as words: the pose
template's description is appended to the prompt, and the user is told once per process that
real pose control needs an endpoint. The model sent is the catalog model's base_model.
"""

from __future__ import annotations

import threading

import httpx

from avatargen.catalog import Model
from avatargen.providers.base import GenerationRequest, StatusReport
from avatargen.providers.http_client import TokenScope
from avatargen.providers.http_provider import HttpProvider
from avatargen.providers.hub import hub_model_info
from avatargen.providers.retry import RetryPolicy, Target

ROUTER_URL = "https://router.huggingface.co/hf-inference/models/{model_id}"
READ_TIMEOUT_S = 180.0

_warn_lock = threading.Lock()
_warned = False


def router_url(model_id: str) -> str:
    return ROUTER_URL.format(model_id=model_id)


def pose_prompt(prompt: str, pose_description: str) -> str:
    description = pose_description.strip()
    return f"{prompt}, {description}" if description else prompt


class InferenceProvider(HttpProvider):
    name = "hf-inference"
    read_timeout_s = READ_TIMEOUT_S

    def __init__(
        self,
        model: Model,
        *,
        token: object = None,  # settings.TokenInfo
        wait_timeout: float | None = None,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.model_id = model.base_model
        super().__init__(
            model,
            router_url(self.model_id),
            TokenScope(token),  # type: ignore[arg-type]
            wait_timeout=wait_timeout,
            client=client,
            policy=policy,
        )

    def payload(self, request: GenerationRequest) -> dict:
        return {
            "inputs": pose_prompt(request.prompt, request.pose_description),
            "parameters": {
                "negative_prompt": request.negative_prompt,
                "num_inference_steps": request.steps,
                "guidance_scale": request.guidance_scale,
                "width": request.width,
                "height": request.height,
                "seed": request.seed,
            },
        }

    def headers(self) -> dict[str, str]:
        return {"Accept": "image/png", **self.scope.headers_for(self.url)}

    def target(self) -> Target:
        return Target(
            backend=self.name,
            url=self.url,
            model_key=self.model.key,
            label=f"hf-inference router for {self.model_id}",
            auth_hint=(
                "check the token (HF_TOKEN or `hf auth login`); a fine-grained token needs the "
                "'Make calls to Inference Providers' permission"
            ),
            not_found_hint=(
                f"the router does not serve {self.model_id}; use an endpoint instead: "
                f"avatargen endpoint bundle {self.model.alias} -o DIR, or avatargen serve"
            ),
            secrets=self.scope.secrets(),
        )

    def before_send(self) -> None:
        warn_pose_once()

    def status(self) -> StatusReport:
        info = hub_model_info(self.client, self.model_id, self.scope)
        state = {"warm": "warm", "cold": "cold", "unreachable": "unreachable"}.get(info["state"], "unknown")
        return StatusReport(
            backend=self.name,
            url=self.url,
            state=state,
            detail=info.get("detail", ""),
            round_trip_ms=info.get("round_trip_ms"),
            extra={"hub": info},
        )


def warn_pose_once() -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    from avatargen.output import warn

    warn(
        "hf-inference is text-to-image only: the pose goes into the prompt as words and the photo is not "
        "used. Pose control needs an endpoint (--endpoint URL, `avatargen endpoint bundle`, `avatargen serve`)."
    )
