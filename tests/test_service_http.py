"""`avatargen api` end to end, through the real process with a fake endpoint behind it
(issue 21): the seed's curl example, every route, IDOR between two users, tokens, hostile
uploads (50 MB, a decompression bomb, a wrong type, a slowloris body), webhooks, CORS."""

from __future__ import annotations

import io
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler

import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")

import httpx  # noqa: E402

from fake_endpoint import FakeEndpoint  # noqa: E402
from loopback import LoopbackServer  # noqa: E402
from service_process import ApiProcess, jpeg, write_config  # noqa: E402

B = "/api/apps/avatar-generator"
SECRET = "webhook-test-secret"


class Receiver(LoopbackServer):
    """A webhook receiver: keeps each POST's headers and raw body."""

    def __init__(self) -> None:
        self.got: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

        self.listen(Handler)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from avatargen.service.accounts import Accounts
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate

    home = tmp_path_factory.mktemp("svc")
    write_config(
        home,
        "[service]\nbody_timeout = 2\nrate_per_minute = 40\nuser_concurrency = 1\nmax_pending_per_user = 6\n"
        f'webhooks = true\nwebhook_secret = "{SECRET}"\n',
    )
    db = Database(None, home / "data")
    migrate(db)
    accounts = Accounts(db)
    tokens = {}
    for name, tier, credits in (("alice", "basic", 200), ("bob", "basic", 200), ("freddie", "free", 200),
                                ("poor", "basic", 2), ("rapid", "basic", 10)):  # fmt: skip
        tokens[name] = accounts.add(name, tier, credits)[1]
    tokens["admin"] = accounts.add("root", "enterprise", 0, admin=True)[1]
    with FakeEndpoint(delay=0.3) as fake, Receiver() as receiver, ApiProcess(home, fake.url) as api:
        yield {"api": api, "tokens": tokens, "db": db, "home": home, "fake": fake, "receiver": receiver}
    db.close()


def client(service, who):
    return httpx.Client(
        base_url=service["api"].url, headers={"Authorization": f"Bearer {service['tokens'][who]}"}, timeout=30
    )


def post(c, photo=None, **fields):
    files = {"image": ("photo.jpg", photo if photo is not None else jpeg(), "image/jpeg")}
    return c.post(f"{B}/generate", files=files, data={"poseTemplateId": "wave", "quality": "sd", **fields})


def wait_done(c, gen_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = c.get(f"{B}/generations/{gen_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{gen_id} still {body['status']}")


def test_the_seeds_curl_example_through_the_real_process(service, tmp_path):
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed for the seed's own example")
    token = service["tokens"]["alice"]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(gps=True))  # a phone photo with its location
    out = subprocess.run(
        [curl, "-s", "-H", f"Authorization: Bearer {token}", "-F", f"image=@{photo}", "-F", "poseTemplateId=wave",
         "-F", "quality=sd", f"{service['api'].url}{B}/generate"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    accepted = json.loads(out.stdout)
    assert accepted["status"] == "pending" and accepted["creditCost"] == 3 and accepted["queuePosition"] >= 1
    with client(service, "alice") as c:
        done = wait_done(c, accepted["generationId"])
        assert done["status"] == "completed", done
        assert done["outputUrl"] == f"{B}/generations/{accepted['generationId']}/image"
        assert done["poseTemplateId"] == "wave" and done["modelKey"].endswith("sd15")
        image = c.get(done["outputUrl"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    from PIL import Image

    png = Image.open(io.BytesIO(image.content))
    assert not png.getexif() and "exif" not in png.info  # no EXIF, so no GPS, in the output
    assert b"CameraMaker" not in image.content and b"GPS" not in image.content


def test_a_pose_set_and_the_same_photo_again(service):
    with client(service, "alice") as c:
        before = c.get("/api/credits").json()
        r = post(c, poses="wave,sitting", poseTemplateId="")
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["creditCost"] == 6 and len(body["generations"]) == 2
        again = c.post(
            f"{B}/generate", data={"photoId": body["photoId"], "poseTemplateId": "t-pose", "quality": "sd"}
        )
        assert again.status_code == 202, again.text
        for gen in [*body["generations"], again.json()]:
            assert wait_done(c, gen["generationId"])["status"] == "completed"
        assert c.get(f"{B}/photos/{body['photoId']}").content[:3] == b"\xff\xd8\xff"
        after = c.get("/api/credits").json()
        assert after == {"balance": before["balance"] - 9, "reserved": 0}


def test_no_user_can_reach_another_users_generations_photos_or_images(service):
    with client(service, "alice") as alice, client(service, "bob") as bob:
        gen = post(alice).json()
        gen_id, photo_id = gen["generationId"], gen["photoId"]
        wait_done(alice, gen_id)
        missing = bob.get(f"{B}/generations/{secrets.token_hex(12)}")
        assert missing.status_code == 404
        for method, path in (("GET", f"{B}/generations/{gen_id}"), ("DELETE", f"{B}/generations/{gen_id}"),
                             ("GET", f"{B}/generations/{gen_id}/image"), ("GET", f"{B}/photos/{photo_id}")):  # fmt: skip
            answer = bob.request(method, path)
            assert answer.status_code == 404 and answer.json() == missing.json(), (method, path)
        again = bob.post(
            f"{B}/generate", data={"photoId": photo_id, "poseTemplateId": "wave", "quality": "sd"}
        )
        assert again.status_code == 404 and again.json() == missing.json()
        assert all(
            g["generationId"] != gen_id for g in bob.get(f"{B}/generations?limit=100").json()["generations"]
        )
        for _ in range(30):  # enumerating ids finds nothing
            assert bob.get(f"{B}/generations/{secrets.token_hex(12)}").status_code == 404
        assert alice.get(f"{B}/generations/{gen_id}").status_code == 200  # still there for its owner
        # The admin routes are as absent as any unknown route to a user.
        for path in (
            "/api/admin/users",
            "/api/admin/queue",
            "/api/admin/workers",
            "/api/admin/stats",
            "/api/nothing",
        ):
            assert bob.get(path).status_code == 404 and bob.get(path).json() == missing.json()


def test_listing_is_paginated_and_the_callers_own(service):
    with client(service, "bob") as bob:
        ids = [post(bob).json()["generationId"] for _ in range(3)]
        page = bob.get(f"{B}/generations?limit=2").json()
        assert len(page["generations"]) == 2 and page["nextCursor"]
        rest = bob.get(f"{B}/generations?limit=100&cursor={page['nextCursor']}").json()
        seen = [g["generationId"] for g in page["generations"] + rest["generations"]]
        assert set(ids) <= set(seen) and len(seen) == len(set(seen))
        assert bob.get(f"{B}/generations?limit=0").json()["error"]["code"] == "invalid_limit"


def test_cancel_a_pending_job_refunds_it(service):
    with client(service, "bob") as bob:
        before = bob.get("/api/credits").json()["balance"]
        gens = [post(bob).json()["generationId"] for _ in range(3)]  # one at a time for bob: the last waits
        cancelled = bob.delete(f"{B}/generations/{gens[-1]}")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        for gen_id in gens[:-1]:
            wait_done(bob, gen_id)
        assert bob.get(f"{B}/generations/{gens[-1]}").json()["status"] == "cancelled"
        assert bob.get("/api/credits").json() == {"balance": before - 6, "reserved": 0}
        assert bob.delete(f"{B}/generations/{gens[0]}").json()["status"] == "deleted"
        assert bob.get(f"{B}/generations/{gens[0]}").status_code == 404


def test_errors_have_stable_codes(service):
    url = service["api"].url
    assert httpx.get(f"{url}/api/me").json()["error"]["code"] == "unauthorized"
    bad = httpx.get(f"{url}/api/me", headers={"Authorization": "Bearer avg_wrong"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    with client(service, "freddie") as c:
        r = post(c, quality="hd")
        assert (r.status_code, r.json()["error"]["code"]) == (403, "tier_too_low")
        assert post(c, poseTemplateId="no-such-pose").json()["error"]["code"] == "invalid_pose"
        assert post(c, seed="-1").json()["error"]["code"] == "invalid_seed"
        assert post(c, quality="gigantic").json()["error"]["code"] == "invalid_quality"
        assert post(c, modelKey="nope").json()["error"]["code"] == "invalid_model"
    with client(service, "poor") as c:
        r = post(c)
        assert (r.status_code, r.json()["error"]["code"]) == (402, "insufficient_credits")
    with client(service, "alice") as c:
        r = post(c, poses="wave,sitting,t-pose,walking,jumping,thinking,portrait", poseTemplateId="")
        assert (r.status_code, r.json()["error"]["code"]) == (503, "queue_full") and r.headers["retry-after"]
    with client(service, "rapid") as c:
        codes = [c.post(f"{B}/generate").status_code for _ in range(41)]
        assert codes[:40] == [422] * 40 and codes[40] == 429


def test_catalog_poses_me_health_docs(service):
    with client(service, "freddie") as c:
        models = {m["modelKey"]: m for m in c.get(f"{B}/models").json()}
        assert models["avatar-generator:controlnet-openpose-sd15"]["allowed"] is True
        locked = models["avatar-generator:controlnet-openpose-sdxl"]
        assert locked["allowed"] is False and "basic" in locked["reason"]
        me = c.get("/api/me").json()
        assert me == {
            "name": "freddie",
            "tier": "free",
            "credits": {"balance": 200, "reserved": 0},
            "admin": False,
        }
    poses = httpx.get(f"{service['api'].url}{B}/pose-templates").json()
    wave = next(p for p in poses if p["id"] == "wave")
    thumb = httpx.get(service["api"].url + wave["thumbnailUrl"])
    assert thumb.status_code == 200 and thumb.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(f"{service['api'].url}/health").json() == {"status": "ok"}
    spec = httpx.get(f"{service['api'].url}/openapi.json").json()
    assert f"{B}/generate" in spec["paths"] and "/docs" not in spec["paths"]
    assert "avatargen API" in httpx.get(f"{service['api'].url}/docs").text
    assert httpx.get(f"{service['api'].url}/").status_code == 200


def test_admin_routes(service):
    with client(service, "admin") as c:
        made = c.post("/api/admin/users", json={"name": "newbie", "tier": "basic", "credits": 10})
        assert made.status_code == 201 and made.json()["token"].startswith("avg_")
        assert (
            c.post("/api/admin/users/newbie/credits", json={"amount": 5}).json()["credits"]["balance"] == 15
        )
        assert c.post("/api/admin/users/newbie/tier", json={"tier": "pro"}).json()["tier"] == "pro"
        assert c.post("/api/admin/users/nobody/tier", json={"tier": "pro"}).status_code == 404
        assert "newbie" in {u["name"] for u in c.get("/api/admin/users").json()}
        assert "byStatus" in c.get("/api/admin/queue").json()
        assert c.get("/api/admin/workers").json()[0]["jobsDone"] >= 0
        assert isinstance(c.get("/api/admin/stats").json()["requestsToday"], dict)
    with httpx.Client(
        base_url=service["api"].url, headers={"Authorization": f"Bearer {made.json()['token']}"}
    ) as c:
        assert c.get("/api/me").json()["tier"] == "pro"


def test_tokens_are_hashed_at_rest_and_never_logged(service):
    db_bytes = b"".join(p.read_bytes() for p in (service["home"] / "data").glob("service.db*"))
    output = service["api"].log.read_text(errors="replace")
    for token in service["tokens"].values():
        assert token.encode() not in db_bytes
        assert token not in output
    import hashlib

    assert hashlib.sha256(service["tokens"]["alice"].encode()).hexdigest().encode() in db_bytes


def test_webhook_is_signed(service):
    from avatargen.service.webhooks import SIGNATURE_HEADER, verify

    receiver = service["receiver"]
    with client(service, "alice") as c:
        gen_id = post(c, webhookUrl=receiver.url + "hook").json()["generationId"]
        wait_done(c, gen_id)
    deadline = time.monotonic() + 20
    while not receiver.got and time.monotonic() < deadline:
        time.sleep(0.1)
    headers, body = receiver.got[-1]
    signature = next(v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower())
    assert verify(SECRET, body, signature)
    assert not verify(SECRET, body + b" ", signature) and not verify("other", body, signature)
    payload = json.loads(body)
    assert payload["event"] == "generation.completed" and payload["generation"]["generationId"] == gen_id


def _bomb_png(side=30000) -> bytes:
    """A PNG whose header says side x side pixels: a few KB that would decode to gigabytes."""
    import struct

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00" * (side + 1) * 64, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def test_hostile_uploads_are_refused_without_harming_other_users(service):
    url = service["api"].url
    with client(service, "bob") as bob:
        huge = post(bob, photo=b"\xff\xd8\xff" + b"\0" * (50 * 1024 * 1024))
        assert (huge.status_code, huge.json()["error"]["code"]) == (413, "too_large")

        def chunks():  # no Content-Length: cut off at the cap while streaming
            for _ in range(50):
                yield b"\0" * (1024 * 1024)

        streamed = bob.post(
            f"{B}/generate", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"}
        )
        assert streamed.status_code == 413
        bomb = post(bob, photo=_bomb_png())
        assert (bomb.status_code, bomb.json()["error"]["code"]) == (413, "too_large")
        text = bob.post(f"{B}/generate", files={"image": ("photo.jpg", b"#!/bin/sh\necho hi\n" * 100, "image/jpeg")},
                        data={"poseTemplateId": "wave"})  # fmt: skip
        assert (text.status_code, text.json()["error"]["code"]) == (422, "invalid_image")
        assert (
            bob.post(f"{B}/generate", json={"poseTemplateId": "wave"}).json()["error"]["code"]
            == "invalid_request"
        )
        assert bob.get("/api/credits").json()["reserved"] == 0

    # Slowloris: a body promised and trickled in; meanwhile another user is served at once.
    token = service["tokens"]["bob"]
    host, port = url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    slow.sendall(
        (f"POST {B}/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
         "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n").encode()
    )  # fmt: skip
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.3):
            try:
                slow.sendall(b"x")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    with client(service, "alice") as alice:
        assert alice.get("/api/me").status_code == 200
        assert post(alice).status_code == 202
    assert time.monotonic() - started < 1.5
    slow.settimeout(10)
    answer = ""
    while "request_timeout" not in answer and (piece := slow.recv(4096)):
        answer += piece.decode()
    stop.set()
    slow.close()
    assert answer.startswith("HTTP/1.1 408") and "request_timeout" in answer
    assert time.monotonic() - started < 6


def test_cors_is_off_unless_configured(service):
    r = httpx.options(
        f"{service['api'].url}/api/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{service['api'].url}/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
