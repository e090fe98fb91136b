"""How the engine talks back to its front door: lines for a person, results as they finish,
and the question before a large batch. The CLI prints them; the service logs and records them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _quiet(_message: str) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    say: Callable[[str], None] = _quiet  # progress and hints for a person
    warn: Callable[[str], None] = _quiet  # something the person should know is off
    emit: Callable[[dict[str, Any]], None] | None = None  # one result record per finished job
    # Asked before a batch over config confirm_above (count, credits); raises to refuse.
    confirm: Callable[[int, int], None] | None = None
