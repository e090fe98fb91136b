"""Several servers for one model, used as one provider by a batch.

Each URL (endpoints.<key> as a list: self-hosted servers, endpoints in several regions) has its
own provider and its own gate, so one cold or rate-limited server holds only its own workers.
A job goes to the least-loaded URL still in use; a URL that fails `SET_ASIDE_AFTER` times in a
row is set aside for the rest of the batch and its job tries another. A capacity function (the
running replicas of a deployed endpoint times slots per replica) can cap the requests in flight
while the batch runs, so concurrency follows the replica count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avatargen.errors import AuthError, AvatargenError, NetworkError, ProviderError

SET_ASIDE_AFTER = 3  # failures in a row
# Errors that say something about the server, not the job: worth another URL.
SERVER_ERRORS = (NetworkError, ProviderError, AuthError)


class Capacity:
    """A cap on requests in flight that may change while they run."""

    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.in_flight >= max(1, self.limit()):
                self._cond.wait(timeout=0.1)  # the limit is re-read: replicas come and go
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()


@dataclass
class Member:
    provider: Any
    gate: Any
    url: str
    in_flight: int = 0
    failures: int = 0  # in a row
    set_aside: bool = False
    done: int = 0
    errors: list[str] = field(default_factory=list)


class EndpointPool:
    name = "hf-endpoint"

    def __init__(
        self,
        providers: list[Any],
        *,
        capacity: Capacity | None = None,
        say: Callable[[str], None] = lambda _m: None,
    ) -> None:
        from avatargen.providers.gate import ModelGate

        self.members = [
            Member(p, ModelGate(), getattr(p, "shown_url", getattr(p, "url", "?"))) for p in providers
        ]
        self.capacity = capacity
        self.say = say
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.members[0].url

    def _pick(self, tried: set[int]) -> Member | None:
        with self._lock:
            usable = [m for i, m in enumerate(self.members) if not m.set_aside and i not in tried]
            if not usable:
                return None
            member = min(usable, key=lambda m: (m.in_flight, m.failures))
            member.in_flight += 1
            return member

    def _settle(self, member: Member, error: AvatargenError | None) -> None:
        with self._lock:
            member.in_flight -= 1
            if error is None:
                member.failures = 0
                member.done += 1
                return
            member.failures += 1
            member.errors.append(error.message)
            others = [m for m in self.members if m is not member and not m.set_aside]
            if member.failures >= SET_ASIDE_AFTER and others and not member.set_aside:
                member.set_aside = True
                self.say(f"{member.url} failed {member.failures} times in a row: set aside for this batch")

    def generate(self, request, on_event=None, gate=None, on_attempt=None):
        if self.capacity is not None:
            self.capacity.acquire()
        try:
            tried: set[int] = set()
            last: AvatargenError | None = None
            while True:
                member = self._pick(tried)
                if member is None:
                    assert last is not None
                    raise last
                tried.add(self.members.index(member))
                try:
                    result = member.provider.generate(
                        request, on_event=on_event, gate=member.gate, on_attempt=on_attempt
                    )
                except SERVER_ERRORS as exc:
                    self._settle(member, exc)
                    last = exc
                    continue
                except BaseException:  # the job's own error (bad input) or a stop: not the server's fault
                    with self._lock:
                        member.in_flight -= 1
                    raise
                self._settle(member, None)
                return result
        finally:
            if self.capacity is not None:
                self.capacity.release()

    def status(self):
        """The first usable server's report (a batch's pre-flight look)."""
        usable = [m for m in self.members if not m.set_aside] or self.members
        return usable[0].provider.status()

    def close(self) -> None:
        for member in self.members:
            member.provider.close()
