"""What `endpoint deploy` will do, as data: names, hardware defaults and the calls it makes.

The same plan is printed by --dry-run (no network) and carried out by run.py, so what the dry
run shows is what gets sent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from avatargen.errors import UsageError

TAG = "avatargen"  # every endpoint we create carries it, so `endpoint list` finds ours
SECURITY = ("authenticated", "private", "public")
# Hardware names as the Inference Endpoints API and huggingface_hub's docstrings spell them
# (vendor, region, accelerator, instance type, size): an L4 has 24 GB, a T4 16 GB.
DEFAULT_HARDWARE = {
    "sdxl": ("aws", "us-east-1", "gpu", "nvidia-l4", "x1"),
    "sd15": ("aws", "us-east-1", "gpu", "nvidia-t4", "x1"),
}
NAME_LIMIT = 32  # the API's limit for an endpoint name


# The Inference Endpoints API's rule for a name (lowercase letters, digits and inner hyphens, at most
# 32), and the Hub's for a user or organisation: checked before anything is sent, since a name is
# put into the API's URL paths (`../x`, `x/y` or `x?y` would reach other routes).
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_NAMESPACE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")


def check_name(name: str, source: str = "--name") -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"{source} '{name}' is not a valid endpoint name",
            f"use 1 to {NAME_LIMIT} lowercase letters, digits and hyphens, starting and ending with a letter or digit",
        )
    return name


def check_namespace(namespace: str | None, source: str = "--namespace") -> str | None:
    if namespace is not None and (not _NAMESPACE.fullmatch(namespace) or ".." in namespace):
        raise UsageError(
            f"{source} '{namespace}' is not a valid user or organisation name",
            "use letters, digits, '-', '_' and '.', as on huggingface.co",
        )
    return namespace


def endpoint_name(alias: str) -> str:
    """`avatargen-<alias>`, lowercase; a long alias is cut and given a short hash so two models
    never share a name."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"avatargen-{alias}".lower()).strip("-")
    if len(base) <= NAME_LIMIT:
        return base
    digest = hashlib.sha256(alias.encode()).hexdigest()[:6]
    return f"{base[: NAME_LIMIT - 7].rstrip('-')}-{digest}"


def repo_name(alias: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"avatargen-{alias}")


@dataclass
class DeployOptions:
    vendor: str | None = None
    region: str | None = None
    instance_type: str | None = None
    instance_size: str | None = None
    min_replicas: int = 0
    max_replicas: int = 1
    scale_to_zero_after: int = 15
    security: str = "authenticated"
    namespace: str | None = None
    name: str | None = None


@dataclass
class DeployPlan:
    model_key: str
    alias: str
    architecture: str
    namespace: str | None  # None until whoami answers (a dry run without --namespace)
    name: str
    repo: str  # the repository name without its namespace
    vendor: str
    region: str
    accelerator: str
    instance_type: str
    instance_size: str
    min_replicas: int
    max_replicas: int
    scale_to_zero_after: int | None
    security: str
    files: list[str] = field(default_factory=list)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace or '<your namespace>'}/{self.repo}"

    def endpoint_kwargs(self) -> dict[str, Any]:
        """The arguments of HfApi.create_inference_endpoint (update takes the same, less name and type)."""
        return {
            "repository": self.repo_id,
            # The default container (huggingface inference toolkit, which runs handler.py) is the
            # PyTorch one; task "custom" tells it to load our EndpointHandler.
            "framework": "pytorch",
            "task": "custom",
            "accelerator": self.accelerator,
            "vendor": self.vendor,
            "region": self.region,
            "instance_type": self.instance_type,
            "instance_size": self.instance_size,
            "min_replica": self.min_replicas,
            "max_replica": self.max_replicas,
            "scale_to_zero_timeout": self.scale_to_zero_after,
            "type": self.security,
            "tags": [TAG],
        }

    def calls(self) -> list[dict[str, Any]]:
        """Every call deploy makes, in order (what --dry-run prints)."""
        return [
            {"call": "create_repo", "repo_id": self.repo_id, "private": True, "exist_ok": True},
            {"call": "upload_folder", "repo_id": self.repo_id, "files": list(self.files)},
            {
                "call": "create_inference_endpoint (or update_inference_endpoint if it exists)",
                "name": self.name,
                "namespace": self.namespace or "<your namespace>",
                **self.endpoint_kwargs(),
            },
            {
                "call": "wait until running, probe GET /health, store the URL",
                "config": f"endpoints.{self.model_key}",
            },
        ]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repo_id": self.repo_id}


def make_plan(model: Any, options: DeployOptions, files: list[str]) -> DeployPlan:
    from avatargen.serve.pipelines import ARCHITECTURES

    if model.architecture not in ARCHITECTURES:
        from avatargen.errors import ModelUnavailable

        raise ModelUnavailable(
            f"model '{model.key}' is architecture '{model.architecture}': the handler runs "
            f"{' and '.join(ARCHITECTURES)} ControlNet pipelines only",
            "deploy an OpenPose model, e.g. controlnet-openpose-sd15",
        )
    if options.name is not None:
        check_name(options.name)  # an empty --name is a mistake, not "the default name"
    check_namespace(options.namespace)
    if options.security not in SECURITY:
        hint = (
            "use authenticated (the old name 'protected' means the same)"
            if options.security == "protected"
            else None
        )
        raise UsageError(f"--security must be one of {', '.join(SECURITY)}, got '{options.security}'", hint)
    if options.min_replicas < 0 or options.max_replicas < 1 or options.min_replicas > options.max_replicas:
        raise UsageError(
            f"replicas: need 0 <= --min-replicas <= --max-replicas and --max-replicas >= 1, "
            f"got {options.min_replicas} and {options.max_replicas}"
        )
    if options.scale_to_zero_after < 1:
        raise UsageError(f"--scale-to-zero-after must be 1 minute or more, got {options.scale_to_zero_after}")
    vendor, region, accelerator, instance_type, size = DEFAULT_HARDWARE.get(
        model.architecture, DEFAULT_HARDWARE["sdxl"]
    )
    return DeployPlan(
        model_key=model.key,
        alias=model.alias,
        architecture=model.architecture,
        namespace=options.namespace,
        name=options.name if options.name is not None else endpoint_name(model.alias),
        repo=repo_name(model.alias),
        vendor=options.vendor or vendor,
        region=options.region or region,
        accelerator="cpu" if (options.instance_type or "").startswith(("intel", "amd")) else accelerator,
        instance_type=options.instance_type or instance_type,
        instance_size=options.instance_size or size,
        min_replicas=options.min_replicas,
        max_replicas=options.max_replicas,
        # Only an endpoint that may reach zero replicas takes a scale-to-zero timeout.
        scale_to_zero_after=options.scale_to_zero_after if options.min_replicas == 0 else None,
        security=options.security,
        files=sorted(files),
    )
