"""What a front door asks the engine for, typed: the CLI's options and the service's form
fields both become a GenerateRequest (a fresh plan) or a RetryRequest (a stored batch again)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_POSE = "portrait"
DEFAULT_OUTPUT = Path("avatars")


@dataclass(frozen=True)
class RunOptions:
    """How the jobs run: where (backend), how many at once, and what may be spent."""

    concurrency: int | str | None = None  # N, 'auto' (follow a deployed endpoint), None: config / 4
    overwrite: bool = False
    regenerate: bool = False  # make done jobs again, charged
    fallback: bool = True
    allow_upgrade: bool = False
    endpoint: str | None = None
    provider: str | None = None
    token: str | None = None
    wait_timeout: float | None = None
    model_dir: str | None = None
    tiny: bool = False
    hf_provider: str | None = None
    endpoint_after: str | None = None
    resume_endpoint: bool = False
    yes: bool = False
    max_credits: int | None = None
    notify_url: str | None = None
    on_complete: str | None = None
    live_progress: bool = False  # a terminal watches: draw the progress bar
    argv: tuple[str, ...] = ()  # the command line, for history (secrets masked there)

    @property
    def local(self) -> str | None:
        """'local' when --tiny or --model-dir make the in-process backend the one meant."""
        return "local" if self.tiny or self.model_dir else None


@dataclass(frozen=True)
class GenerateRequest:
    paths: tuple[str, ...] = ()
    poses: tuple[str, ...] = (DEFAULT_POSE,)
    model: str | None = None
    quality: str | None = None
    tier: str | None = None
    output: Path = DEFAULT_OUTPUT
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    guidance: float | None = None
    control_scale: float | None = None
    strength: float | None = None
    identity_scale: float | None = None
    refs: tuple[Path, ...] = ()
    person: Path | None = None
    seed: int | None = None
    num: int = 1
    recursive: bool = False
    name: str | None = None
    dry_run: bool = False
    options: RunOptions = field(default_factory=RunOptions)

    @property
    def model_asked(self) -> bool:
        return bool(self.model or self.quality or self.tier)


@dataclass(frozen=True)
class RetryRequest:
    batch: str | None = None  # None: the last batch
    include_hopeless: bool = False  # --all: re-send jobs that can never succeed too
    steps: int | None = None  # None: as each job was planned
    identity_scale: float | None = None
    options: RunOptions = field(default_factory=RunOptions)
