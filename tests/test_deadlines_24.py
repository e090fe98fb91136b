"""Issue 24 items 9 and 11: a server that drips its answer a byte at a time never holds a request
past its whole-request deadline: the provider clients (router submit, queue status, CDN image,
endpoint), and the completion webhook."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from drip_server import DripServer
from router_fakes import FakeCDN, FakeRouter
from test_providers_router import make_photos

TOKEN = "hf_routertesttoken123"


@pytest.mark.slow  # whole seconds of real waiting
def test_a_dripping_answer_is_cut_at_the_whole_request_deadline():
    from avatargen.providers import deadline
    from avatargen.providers.http_client import new_client, send_capped

    client = new_client(read_timeout=1.5)
    assert deadline.installed(client)  # the httpx/httpcore in use still take the wrapped backend
    with DripServer(every=0.05) as drip:
        began = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            send_capped(client, "GET", drip.url + "/x")  # 10 s connect + 1.5 s read, whole
        took = time.monotonic() - began
        assert drip.connections == 1
        assert drip.hung_up.wait(5)  # the connection was dropped, not left to drip on
    assert took < 13, took


@pytest.mark.slow  # whole seconds of real waiting
def test_a_deadline_set_by_the_caller_holds_inside():
    from avatargen.providers.deadline import deadline_in
    from avatargen.providers.http_client import new_client, send_capped

    client = new_client(read_timeout=60)
    with DripServer(every=0.05) as drip:
        began = time.monotonic()
        with deadline_in(1.0), pytest.raises(httpx.TimeoutException):
            send_capped(client, "GET", drip.url + "/x")
    assert time.monotonic() - began < 3


def fal_ticket(method: str, path: str):
    """The submit answered as fal-ai's queue does; every status poll then drips."""
    if method != "POST":
        return None
    base = "https://queue.fal.run/fal-ai/qwen-image-edit-plus/requests/req-1"
    return {"request_id": "req-1", "status": "IN_QUEUE", "response_url": base, "status_url": f"{base}/status"}


def run_generate(run_cli, tmp_path, env, *extra):
    make_photos(tmp_path / "photos", 1)
    began = time.monotonic()
    result = run_cli("generate", str(tmp_path / "photos"), "-o", str(tmp_path / "out"), "--json", "--yes",
                     "--wait-timeout", "5", *extra, env={"AVATARGEN_RETRY_SCALE": "0.01", **env},
                     timeout=100)  # fmt: skip
    return result, time.monotonic() - began


@pytest.mark.parametrize("where", ["submit", "status", "image"])
def test_a_dripping_router_route_ends_the_job_within_wait_timeout(tmp_path, run_cli, where):
    plain = fal_ticket if where == "status" else None
    with DripServer(plain=plain) as drip, FakeCDN() as cdn, FakeRouter(cdn, token=TOKEN) as router:
        base = router.url if where == "image" else drip.url
        if where == "image":
            cdn.url = drip.url  # the result's image URL points at the dripping server
        env = {"AVATARGEN_ROUTER_URL": base, "HF_ENDPOINT": router.url, "HF_TOKEN": TOKEN}
        result, took = run_generate(
            run_cli, tmp_path, env, "--model", "qwen-image-edit-pose", "--pose", "wave"
        )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["failed"], result.stderr
    assert drip.connections >= 1
    assert took < 30, took  # before: still running at 40-50 s, and on for minutes


def test_a_dripping_endpoint_ends_the_job_within_wait_timeout(tmp_path, run_cli):
    with DripServer() as drip:
        result, took = run_generate(
            run_cli, tmp_path, {}, "--endpoint", drip.url, "-m", "controlnet-openpose-sd15"
        )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["failed"], result.stderr
    assert took < 30, took


@pytest.mark.slow  # whole seconds of real waiting
def test_a_dripping_webhook_is_given_up_at_its_timeout():
    from avatargen.notify import post_summary

    with DripServer(every=0.05) as drip:
        began = time.monotonic()
        sent = post_summary(drip.url + "/hook", {"batch": "b"}, attempts=2, timeout=1.0, sleep=lambda s: None)
        took = time.monotonic() - began
    assert sent is False
    assert drip.connections == 2
    assert took < 5, took  # before: each attempt dripped on for as long as the server liked
