"""What the HTTP backends share: a lazily opened client, the retry policy, one `generate`.

A backend says what to send (`payload`, `headers`, `target`) and how to report its status; the
sending, retrying and gate handling live here once. A backend with its own exchange (the router's
submit, poll and download) shares the client and the policy only (`PolicyClient`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx

from avatargen.catalog import Model
from avatargen.providers.base import EventSink, GenerationRequest, GenerationResult
from avatargen.providers.gate import ModelGate
from avatargen.providers.http_client import TokenScope, new_client, send_capped
from avatargen.providers.retry import DEFAULT_WAIT_TIMEOUT, RetryPolicy, Target


class PolicyClient:
    """The retry policy and a client opened on first use with `read_timeout_s`; close() closes the
    client only when it was opened here (a caller's or a test's client stays theirs)."""

    read_timeout_s = 180.0

    def __init__(
        self,
        *,
        wait_timeout: float | None = None,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy(wait_timeout=wait_timeout or DEFAULT_WAIT_TIMEOUT)
        self._client = client
        self._own_client = client is None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = new_client(read_timeout=self.read_timeout_s)
        return self._client

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None


class HttpProvider(PolicyClient):
    name = ""

    def __init__(
        self,
        model: Model,
        url: str,
        scope: TokenScope,
        *,
        wait_timeout: float | None = None,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(wait_timeout=wait_timeout, client=client, policy=policy)
        self.model = model
        self.url = url
        self.scope = scope

    def payload(self, request: GenerationRequest) -> dict:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def target(self) -> Target:
        raise NotImplementedError

    def before_send(self) -> None:
        """Called once per generate() before anything is sent (e.g. a one-time warning)."""

    def generate(
        self,
        request: GenerationRequest,
        on_event: EventSink | None = None,
        gate: ModelGate | None = None,
        on_attempt: Callable[[], None] | None = None,
    ) -> GenerationResult:
        self.before_send()
        body = self.payload(request)
        headers = self.headers()

        def send() -> httpx.Response:
            return send_capped(self.client, "POST", self.url, json=body, headers=headers)

        # The size asked for bounds the image taken (checked before it is decoded).
        target = dataclasses.replace(self.target(), expected_size=(request.width, request.height))
        return self.policy.run(send, target, on_event=on_event, gate=gate, on_attempt=on_attempt)
