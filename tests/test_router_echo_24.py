"""Issue 24 item 5: a router that echoes the caller's token back in its JSON must never get it
stored or printed: every provider error is redacted where it is made (errors.AvatargenError)."""

from __future__ import annotations

import json

import pytest

from router_fakes import FakeCDN, FakeRouter, _json
from test_providers_router import make_photos

# Not HF-shaped, so only the remembered secret (not the hf_ pattern) can mask it.
TOKEN = "sk-EchoedRouterSecret-9Zq"


class EchoingRouter(FakeRouter):
    """Answers with the Authorization header it received, in the field each mode names."""

    def __init__(self, cdn, mode: str) -> None:
        super().__init__(cdn, token=TOKEN)
        self.mode = mode

    def answer(self, record):
        auth = record["headers"].get("authorization", "")
        if self.mode == "submit" and record["method"] == "POST":
            return _json(200, {"status": "IN_QUEUE", "echo": auth})  # no request_id
        if self.mode == "failed" and record["path"].endswith("/status"):
            return _json(200, {"status": "FAILED", "error": f"bad key {auth}"})
        if self.mode == "image" and record["method"] == "GET" and not record["path"].endswith("/status"):
            return _json(200, {"images": [{"url": f"ftp://x/{auth}"}]})
        if self.mode == "http" and record["method"] == "POST":
            return _json(400, {"error": f"rejected {auth}"})
        return super().answer(record)


@pytest.mark.parametrize("mode", ["submit", "failed", "image", "http"])
def test_a_token_echoed_by_the_router_is_stored_and_printed_redacted(
    tmp_path, run_cli, monkeypatch, avatargen_home, mode
):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with FakeCDN() as cdn, EchoingRouter(cdn, mode) as router:
        env = {
            "AVATARGEN_ROUTER_URL": router.url,
            "HF_ENDPOINT": router.url,
            "AVATARGEN_RETRY_SCALE": "0.01",
            "HF_TOKEN_PATH": str(token_file),  # not in the environment: only avatargen knows it
        }
        make_photos(tmp_path / "photos", 1)
        args = ["generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose", "wave"]
        results = [run_cli(*args, "-o", str(tmp_path / "out"), "--json", "--yes", env=env)]
        assert results[0].returncode in (1, 9), results[0].stderr
        assert router.submits(), "the router was reached"
        assert any("Bearer" in r["headers"].get("authorization", "") for r in router.requests)
        for extra in (("history", "--json"), ("history",), ("credits", "history", "--json")):
            results.append(run_cli(*extra, env=env))
    lines = [json.loads(line) for line in results[0].stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["failed"]
    assert "[redacted]" in lines[0]["error"]
    for result in results:
        assert TOKEN not in result.stdout + result.stderr
    for path in (avatargen_home / "data").glob("ledger.db*"):
        assert TOKEN.encode() not in path.read_bytes(), path.name


class PrefixedRouter(FakeRouter):
    """The router behind a path prefix (a proxy at http://host/prefix), answering a ticket whose
    response_url walks out of it with dot segments."""

    def __init__(self, cdn, response_url: str) -> None:
        super().__init__(cdn, token=TOKEN)
        self.response_url = response_url

    def answer(self, record):
        if record["method"] == "POST" and record["path"].startswith("/prefix/fal-ai/"):
            if record["headers"].get("authorization") != f"Bearer {TOKEN}":
                return _json(401, {"error": "no"})
            return _json(
                200, {"request_id": "req-1", "status": "IN_QUEUE", "response_url": self.response_url}
            )
        return _json(404, {"error": "Not Found"})


@pytest.mark.parametrize(
    "response_url",
    [
        "https://queue.fal.run/../../../evil/requests/req-1",
        "https://queue.fal.run/%2e%2e/%2E%2E/evil/requests/req-1",
    ],
)
def test_dot_segments_in_response_url_never_take_the_token_out_of_the_router_base(
    tmp_path, run_cli, response_url
):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    with FakeCDN() as cdn, PrefixedRouter(cdn, response_url) as router:
        env = {"AVATARGEN_ROUTER_URL": router.url + "/prefix", "HF_ENDPOINT": router.url,
               "AVATARGEN_RETRY_SCALE": "0.01", "HF_TOKEN_PATH": str(token_file)}  # fmt: skip
        make_photos(tmp_path / "photos", 1)
        result = run_cli("generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose",
                         "wave", "-o", str(tmp_path / "out"), "--json", "--yes", env=env)  # fmt: skip
    assert result.returncode == 9, result.stderr
    assert len(router.submits()) == 1
    outside = [r for r in router.requests if not r["path"].startswith("/prefix/")]
    assert all("authorization" not in r["headers"] for r in outside), outside
    assert not outside  # the job stops at the ticket: nothing is asked outside the base
