"""The retry policy, answer by answer: what is retried, how long each wait is, what the final
error says, and how it plays with the shared ModelGate. A fake clock: no test really waits."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from avatargen.errors import AuthError, ModelUnavailable, NetworkError, ProviderError
from avatargen.providers.endpoint import EndpointProvider
from avatargen.providers.handler_check import HandlerInfo
from avatargen.providers.retry import RetryPolicy
from avatargen.settings import Secret, TokenInfo
from helpers.images import image_bytes
from provider_fakes import HF_ENDPOINT, TOKEN, FakeClock, SpyGate, model, png, policy, request

LOADING = {"error": "Model avatar is currently loading", "estimated_time": 20.0}


class Run:
    """One generate() call through the endpoint backend, with everything recorded."""

    def __init__(self, clock=None, wait_timeout=600.0, gate=None, **kw) -> None:
        self.clock = clock or FakeClock()
        self.events = []
        self.attempts = 0
        self.gate = gate
        self.provider = EndpointProvider(
            model(),
            HF_ENDPOINT,
            token=TokenInfo(Secret(TOKEN), "HF_TOKEN"),
            policy=policy(self.clock, wait_timeout, **kw),
        )
        # These tests are of the retry policy: the URL is known to run our handler, so a 400 is
        # not followed by the handler handshake (tests/test_handler_identity_23.py has that).
        self.provider.handler = HandlerInfo(True, 1, ("face-crop",))

    def on_attempt(self):
        self.attempts += 1

    def __call__(self):
        return self.provider.generate(
            request(), on_event=self.events.append, gate=self.gate, on_attempt=self.on_attempt
        )

    @property
    def slept(self) -> float:
        return sum(self.clock.sleeps)


def add(httpx_mock, status=200, **kw):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", status_code=status, **kw)


# ---------------------------------------------------------------- 503 loading / starting
def test_loading_503_waits_about_estimated_time_then_succeeds(httpx_mock):
    add(httpx_mock, 503, json=LOADING)
    add(httpx_mock, content=png())
    run = Run()
    result = run()
    assert result.attempts == 2 and run.attempts == 2
    assert len(run.clock.sleeps) == 1 and 18.0 <= run.clock.sleeps[0] <= 22.0  # ~20 s with jitter
    [event] = run.events
    assert event.state == "loading" and event.seconds == run.clock.sleeps[0]
    assert event.reason == "model loading, ~20 s" and event.model_key == model().key


def test_loading_wait_is_capped(httpx_mock):
    add(httpx_mock, 503, json={"error": "loading", "estimated_time": 900})
    add(httpx_mock, content=png())
    run = Run()
    run()
    assert run.clock.sleeps[0] <= 66.0  # 60 s cap, +10 % jitter


def test_model_that_stays_loading_past_the_deadline_is_unavailable(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", status_code=503, json=LOADING, is_reusable=True)
    run = Run(wait_timeout=120)
    with pytest.raises(ModelUnavailable) as caught:
        run()
    err = caught.value
    assert "still loading after 120 s" in err.message and "wait_timeout 120 s" in err.message
    assert "--wait-timeout" in err.hint
    assert err.status_code == 503 and err.waited_s == pytest.approx(120, abs=0.1)
    assert run.slept == pytest.approx(120, abs=0.01)  # never slept past the deadline
    assert 6 <= len(httpx_mock.get_requests()) <= 8  # ~one try per estimated_time
    assert {e.state for e in run.events} == {"loading"}


def test_503_without_estimate_backs_off_to_the_deadline(httpx_mock):
    httpx_mock.add_response(
        url=HF_ENDPOINT, method="POST", status_code=503, text="Service Unavailable", is_reusable=True
    )
    run = Run(wait_timeout=300)
    with pytest.raises(ModelUnavailable) as caught:
        run()
    sleeps = run.clock.sleeps
    assert 1.6 <= sleeps[0] <= 2.4 and 3.2 <= sleeps[1] <= 4.8 and 6.4 <= sleeps[2] <= 9.6
    assert max(sleeps) <= 36.0  # capped back-off
    assert run.slept == pytest.approx(300, abs=0.01)
    assert "still starting" in caught.value.message
    assert {e.state for e in run.events} == {"starting"}


def test_503_starting_then_ready(httpx_mock):
    add(httpx_mock, 503, text="")
    add(httpx_mock, 503, text="")
    add(httpx_mock, content=png())
    run = Run()
    assert run().attempts == 3
    assert [e.state for e in run.events] == ["starting", "starting"]


# ---------------------------------------------------------------- 429
def test_429_honours_retry_after_seconds(httpx_mock):
    add(httpx_mock, 429, json={"error": "Too many requests"}, headers={"Retry-After": "7"})
    add(httpx_mock, content=png())
    run = Run()
    run()
    assert run.clock.sleeps == [7.0]
    assert run.events[0].state == "rate-limited" and run.events[0].seconds == 7.0


def test_429_honours_retry_after_http_date(httpx_mock):
    now = 1_800_000_000.0
    when = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    add(httpx_mock, 429, headers={"Retry-After": when})
    add(httpx_mock, content=png())
    run = Run(wall_clock=lambda: now)
    run()
    assert run.clock.sleeps == [pytest.approx(30.0)]


def test_429_honours_ratelimit_t(httpx_mock):
    add(
        httpx_mock,
        429,
        headers={"RateLimit": '"api";r=0;t=12', "RateLimit-Policy": '"fixed window";q=500;w=300'},
    )
    add(httpx_mock, content=png())
    run = Run()
    run()
    assert run.clock.sleeps == [12.0]


def test_429_without_hint_backs_off(httpx_mock):
    add(httpx_mock, 429, text="slow down")
    add(httpx_mock, 429, text="slow down")
    add(httpx_mock, content=png())
    run = Run()
    run()
    assert 1.6 <= run.clock.sleeps[0] <= 2.4 and 3.2 <= run.clock.sleeps[1] <= 4.8


def test_429_asking_longer_than_the_deadline_gives_up_at_once(httpx_mock):
    add(httpx_mock, 429, json={"error": "quota"}, headers={"Retry-After": "3600"})
    run = Run(wait_timeout=600)
    with pytest.raises(ProviderError) as caught:
        run()
    assert "asks to wait 3600 s" in caught.value.message and caught.value.status_code == 429
    assert run.clock.sleeps == [] and len(httpx_mock.get_requests()) == 1


# ---------------------------------------------------------------- 5xx and network faults
@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_gets_three_backed_off_retries_then_fails(httpx_mock, status):
    httpx_mock.add_response(
        url=HF_ENDPOINT, method="POST", status_code=status, json={"error": "boom"}, is_reusable=True
    )
    run = Run()
    with pytest.raises(ProviderError) as caught:
        run()
    assert len(httpx_mock.get_requests()) == 4 and run.attempts == 4
    low_high = [(0.8, 1.2), (1.6, 2.4), (3.2, 4.8)]
    assert all(lo <= s <= hi for s, (lo, hi) in zip(run.clock.sleeps, low_high, strict=True))
    assert caught.value.status_code == status
    assert caught.value.message == f"endpoint {HF_ENDPOINT} failed (HTTP {status}): boom"
    assert [e.state for e in run.events] == ["retrying"] * 3
    assert run.events[0].reason.startswith("retry 1/3: ")


def test_500_then_success(httpx_mock):
    add(httpx_mock, 500, text="oops")
    add(httpx_mock, content=png())
    assert Run()().attempts == 2


@pytest.mark.parametrize(
    "exc, words",
    [
        (httpx.ConnectError("Connection refused"), "could not be reached"),
        (httpx.ConnectTimeout("timed out"), "did not accept a connection in time"),
        (httpx.ReadTimeout("timed out"), "did not answer in time"),
        (httpx.ReadError("Connection reset by peer"), "reset the connection"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "closed the connection",
        ),
    ],
)
def test_network_faults_are_retried_then_a_network_error(httpx_mock, exc, words):
    for _ in range(4):
        httpx_mock.add_exception(exc, url=HF_ENDPOINT)
    run = Run()
    with pytest.raises(NetworkError) as caught:
        run()
    assert words in caught.value.message and HF_ENDPOINT in caught.value.message
    assert len(run.clock.sleeps) == 3 and run.attempts == 4


def test_network_fault_then_success(httpx_mock):
    httpx_mock.add_exception(httpx.ReadError("reset"), url=HF_ENDPOINT)
    add(httpx_mock, content=png())
    assert Run()().attempts == 2


def test_retry_scale_env_shrinks_our_own_backoff(httpx_mock, monkeypatch):
    monkeypatch.setenv("AVATARGEN_RETRY_SCALE", "0.01")
    assert RetryPolicy().scale == 0.01
    add(httpx_mock, 500, text="x")
    add(httpx_mock, content=png())
    clock = FakeClock()
    provider = EndpointProvider(model(), HF_ENDPOINT, policy=RetryPolicy(sleep=clock.sleep, clock=clock))
    provider.generate(request())
    assert clock.sleeps[0] <= 0.012


# ---------------------------------------------------------------- no retry: the server's own words
@pytest.mark.parametrize(
    "status, cls",
    [(400, ProviderError), (401, AuthError), (403, AuthError), (404, ModelUnavailable), (422, ProviderError)],
)
def test_client_errors_are_not_retried(httpx_mock, status, cls):
    add(httpx_mock, status, json={"error": f"  the  reason\n for {status} "})
    run = Run()
    with pytest.raises(cls) as caught:
        run()
    assert len(httpx_mock.get_requests()) == 1 and run.clock.sleeps == [] and run.events == []
    assert caught.value.message.endswith(f"(HTTP {status}): the reason for {status}")
    assert caught.value.status_code == status
    assert caught.value.hint


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (
            {"json": {"error": ["width must be a multiple of 8", "steps too high"]}},
            "width must be a multiple of 8; steps too high",
        ),
        (
            {"json": {"detail": [{"loc": ["body", "inputs", "seed"], "msg": "not an int"}]}},
            "inputs.seed: not an int",
        ),
        ({"text": "Not Found"}, "Not Found"),
        (
            {"text": "", "headers": {"X-Error-Message": "Model not loaded", "X-Error-Code": "x"}},
            "Model not loaded",
        ),
        ({"html": "<!DOCTYPE html><html><body><h1>Bad</h1></body></html>"}, "an HTML page"),
        ({"text": "x" * 1000}, "x" * 299 + "…"),
    ],
)
def test_server_messages_are_cleaned(httpx_mock, kwargs, expected):
    add(httpx_mock, 422, **kwargs)
    with pytest.raises(ProviderError) as caught:
        Run()()
    assert caught.value.message.endswith(f"(HTTP 422): {expected}")


def test_402_says_credits_are_used_up_and_what_to_do(httpx_mock):
    add(httpx_mock, 402, json={"error": "You have exceeded your monthly included credits"})
    run = Run()
    with pytest.raises(ProviderError) as caught:
        run()
    assert caught.value.message.startswith("Hugging Face credits are used up")
    assert "monthly included credits" in caught.value.message
    assert "billing" in caught.value.hint and "avatargen serve" in caught.value.hint
    assert len(httpx_mock.get_requests()) == 1 and caught.value.exit_code == 9


# ---------------------------------------------------------------- 200 that is not an image
@pytest.mark.parametrize(
    "kwargs, what",
    [
        ({"html": "<html>login</html>"}, "text/html"),
        ({"json": {"error": "oops, not an image"}}, "application/json"),
        ({"content": png((64, 64))[:-40], "headers": {"content-type": "image/png"}}, "image/png"),
    ],
)
def test_200_that_is_not_a_whole_image_is_retried_once_then_fails(httpx_mock, kwargs, what):
    add(httpx_mock, **kwargs)
    add(httpx_mock, **kwargs)
    run = Run()
    with pytest.raises(ProviderError) as caught:
        run()
    assert len(httpx_mock.get_requests()) == 2 and len(run.clock.sleeps) == 1
    assert "not a whole image" in caught.value.message and what in caught.value.message
    if what == "application/json":
        assert "oops, not an image" in caught.value.message


def test_bad_image_then_good_image(httpx_mock):
    add(httpx_mock, html="<html></html>")
    add(httpx_mock, content=png())
    assert Run()().attempts == 2


def test_jpeg_answer_reports_its_type(httpx_mock):
    add(
        httpx_mock,
        content=image_bytes((8, 8), "black", "JPEG"),
        headers={"content-type": "application/octet-stream"},
    )
    assert Run()().content_type == "image/jpeg"


# ---------------------------------------------------------------- the shared gate
def test_gate_loading_then_ready(httpx_mock):
    add(httpx_mock, 503, json=LOADING)
    add(httpx_mock, content=png())
    clock = FakeClock()
    gate = SpyGate(clock)
    run = Run(clock=clock, gate=gate)
    order = []
    gate_acquire = gate.acquire
    gate.acquire = lambda deadline=None: (order.append("acquire"), gate_acquire(deadline))[1]
    run.provider.generate(
        request(), on_event=run.events.append, gate=gate, on_attempt=lambda: order.append("attempt")
    )
    assert order == ["acquire", "attempt", "acquire", "attempt"]
    names = gate.names()
    assert names == ["acquire", "mark_loading", "acquire", "mark_ready"]
    waited = gate.calls[1][1]
    assert 18.0 <= waited <= 22.0
    assert sum(clock.sleeps) == 0  # no private sleep: the wait happened at the gate
    assert gate.waited == pytest.approx(waited, abs=0.6)
    assert [e.state for e in run.events] == ["loading"] and run.events[0].seconds == waited
    assert not gate.loading and gate.sent == 2


def test_worker_waiting_behind_another_prober_is_told_why(httpx_mock):
    add(httpx_mock, content=png())
    clock = FakeClock()
    gate = SpyGate(clock)
    gate.mark_loading(15)  # e.g. the batch pre-flight saw the model loading
    run = Run(clock=clock, gate=gate)
    run()
    assert run.events[0].state == "loading" and "another request" in run.events[0].reason
    assert run.events[0].seconds == 15
    assert gate.waited >= 15 and run.attempts == 1


def test_gate_wait_past_the_deadline_sends_nothing(httpx_mock):
    clock = FakeClock()
    gate = SpyGate(clock)
    gate.mark_loading(10_000)
    run = Run(clock=clock, gate=gate, wait_timeout=60)
    with pytest.raises(ModelUnavailable) as caught:
        run()
    assert run.attempts == 0 and httpx_mock.get_requests() == []
    assert "still loading" in caught.value.message


def test_gate_rate_limit_pauses_everyone(httpx_mock):
    add(httpx_mock, 429, headers={"Retry-After": "9"})
    add(httpx_mock, content=png())
    clock = FakeClock()
    gate = SpyGate(clock)
    run = Run(clock=clock, gate=gate)
    run()
    assert ("mark_rate_limited", 9.0) in gate.calls
    assert gate.names().index("mark_ready") < gate.names().index("mark_rate_limited")  # 429 is a real answer
    assert sum(clock.sleeps) == 0 and gate.waited >= 9.0


def test_gate_is_released_when_giving_up(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", status_code=500, is_reusable=True)
    clock = FakeClock()
    gate = SpyGate(clock)
    with pytest.raises(ProviderError):
        Run(clock=clock, gate=gate)()
    assert gate.names()[-1] == "release" and gate.names().count("acquire") == 4


def test_gate_is_released_when_giving_up_on_loading(httpx_mock):
    httpx_mock.add_response(url=HF_ENDPOINT, method="POST", status_code=503, json=LOADING, is_reusable=True)
    clock = FakeClock()
    gate = SpyGate(clock)
    with pytest.raises(ModelUnavailable):
        Run(clock=clock, gate=gate, wait_timeout=100)()
    assert gate.names()[-1] == "release"


def test_gate_is_released_when_on_attempt_refuses(httpx_mock):
    class Refused(Exception):
        pass

    def refuse():
        raise Refused()

    clock = FakeClock()
    gate = SpyGate(clock)
    run = Run(clock=clock, gate=gate)
    with pytest.raises(Refused):
        run.provider.generate(request(), gate=gate, on_attempt=refuse)
    assert gate.names() == ["acquire", "release"] and httpx_mock.get_requests() == []


# ---------------------------------------------------------------- the token never leaks
FAULTS = [
    {"status_code": 400, "json": {"error": f"bad request with token {TOKEN}"}},
    {"status_code": 401, "json": {"error": f"Invalid credentials in Authorization header: Bearer {TOKEN}"}},
    {"status_code": 402, "text": f"credits gone for {TOKEN}"},
    {"status_code": 403, "headers": {"X-Error-Message": f"token {TOKEN} lacks permission"}, "text": ""},
    {"status_code": 404, "text": f"not found {TOKEN}"},
    {"status_code": 422, "json": {"error": [f"echo {TOKEN}"]}},
    {"status_code": 429, "headers": {"Retry-After": "99999"}, "json": {"error": TOKEN}},
    {"status_code": 500, "json": {"error": TOKEN}, "is_reusable": True},
    {"status_code": 503, "json": {"error": TOKEN, "estimated_time": 50}, "is_reusable": True},
    {"status_code": 503, "text": TOKEN, "is_reusable": True},
    {"status_code": 200, "json": {"error": TOKEN}, "is_reusable": True},
    {"status_code": 302, "headers": {"location": f"https://x.example/?t={TOKEN}"}},
    {"exception": httpx.ConnectError(f"refused {TOKEN}")},
    {"exception": httpx.ReadTimeout(f"timeout {TOKEN}")},
]


@pytest.mark.parametrize(
    "fault", FAULTS, ids=lambda f: str(f.get("status_code", type(f.get("exception")).__name__))
)
@pytest.mark.parametrize("with_gate", [False, True])
def test_token_never_appears_in_errors_logs_or_output(
    httpx_mock, monkeypatch, caplog, capsys, fault, with_gate
):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    fault = dict(fault)
    if "exception" in fault:
        for _ in range(4):
            httpx_mock.add_exception(fault["exception"], url=HF_ENDPOINT)
    else:
        httpx_mock.add_response(url=HF_ENDPOINT, method="POST", **fault)
    from avatargen.config import load as current_config
    from avatargen.providers.select import make_provider

    provider = make_provider(
        model(), endpoint=HF_ENDPOINT, provider="hf-endpoint", wait_timeout=120, config=current_config()
    )
    provider.handler = HandlerInfo(True, 1, ("face-crop",))  # known: no handshake after a 400
    clock = FakeClock()
    provider.policy = policy(clock, 120)
    with pytest.raises(Exception) as caught:
        provider.generate(request(), gate=SpyGate(clock) if with_gate else None, on_event=print)
    assert httpx_mock.get_requests()[0].headers.get("authorization") == f"Bearer {TOKEN}"
    exc = caught.value
    texts = [str(exc), repr(exc), exc.one_line(), str(exc.to_dict()), caplog.text, *capsys.readouterr()]
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[3:] not in text
