"""Issue 24 items 6, 7 and 14 (redirects): credentials inside a pose URL are never stored or
printed; URL credentials (`user:pass@`) are never sent as Basic auth, on --endpoint (where the
endpoint token must still go) or on --notify-url; a pose URL never redirects to another host."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from fake_endpoint import FakeEndpoint
from loopback import LoopbackServer
from router_fakes import png
from test_generate_e2e import make_photos

PASSWORD = "PosePass-HHHH8888"
QUERY_TOKEN = "PoseTok-IIII9999"
ENDPOINT_TOKEN = "endpoint-Secret-JJJJ0000"


class PoseServer(LoopbackServer):
    """Serves /pose.png; /away answers a redirect to `redirect_to`. Records every request's headers."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.redirect_to = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
                )
                if self.path.startswith("/away"):
                    self.send_response(302)
                    self.send_header("Location", owner.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = png(64, 64, (255, 0, 0))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.listen(Handler, url_suffix="")


def with_credentials(url: str, path: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://poseuser:{PASSWORD}@{rest}{path}?token={QUERY_TOKEN}&X-Amz-Signature={QUERY_TOKEN}"


def test_pose_url_credentials_are_neither_stored_nor_printed_nor_sent(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 1)
    with PoseServer() as poses, FakeEndpoint() as endpoint:
        pose = with_credentials(poses.url, "/pose.png")
        args = ["generate", str(tmp_path / "photos"), "--pose", pose, "--endpoint", endpoint.url]
        results = [run_cli(*args, "-o", str(tmp_path / "out"), "--json")]
        assert results[0].returncode == 0, results[0].stderr
        missing = with_credentials(poses.url, "/missing/pose.json").replace("/missing", "/away")
        poses.redirect_to = "http://127.0.0.1:9/elsewhere.png"  # closed port: never reached anyway
        results.append(run_cli(*args[:3], missing, *args[4:], "-o", str(tmp_path / "out2"), "--json"))
        assert results[-1].returncode == 5, results[-1].stderr
        assert "redirects to another host" in results[-1].stderr
        results += [run_cli("history", "--json"), run_cli("history", "show", "1"), run_cli("retry", "--json")]
    for result in results:
        text = result.stdout + result.stderr
        assert PASSWORD not in text and QUERY_TOKEN not in text, text
    for path in (avatargen_home / "data").glob("ledger.db*"):
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and QUERY_TOKEN.encode() not in data, path.name
    assert all("authorization" not in r["headers"] for r in poses.requests)  # no Basic auth from userinfo
    assert [r["path"].split("?")[0] for r in poses.requests] == ["/pose.png", "/away/pose.json"]


def test_userinfo_in_endpoint_never_replaces_the_endpoint_token(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 1)
    with FakeEndpoint() as endpoint:
        scheme, rest = endpoint.url.split("://", 1)
        url = f"{scheme}://user:{PASSWORD}@{rest}"
        result = run_cli("generate", str(tmp_path / "photos"), "--endpoint", url, "-o", str(tmp_path / "out"),
                         "--json", env={"AVATARGEN_ENDPOINT_TOKEN": ENDPOINT_TOKEN})  # fmt: skip
    assert result.returncode == 0, result.stderr
    posts = [r for r in endpoint.requests if r["method"] == "POST"]
    sent = [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in posts]
    assert sent and sent == [f"Bearer {ENDPOINT_TOKEN}"] * len(posts), sent


def test_userinfo_in_notify_url_is_not_sent_as_basic_auth():
    from avatargen.notify import post_summary

    with PoseServer() as hook:
        scheme, rest = hook.url.split("://", 1)
        assert post_summary(f"{scheme}://user:{PASSWORD}@{rest}/hook", {"batch": "b"}, attempts=1)
    assert [r["path"] for r in hook.requests] == ["/hook"]
    assert "authorization" not in hook.requests[0]["headers"]
