"""Issue 24 item 3: an image that arrives as a data: URL in the router's JSON passes the same
checks as a downloaded one: a 'bomb' (a huge canvas in a few bytes) or a cut-short PNG is
refused, with nothing written and no credit charged."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest

from router_fakes import FakeCDN, FakeRouter, _json, png
from test_providers_router import make_photos

TOKEN = "hf_routertesttoken123"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 9000, height: int = 9000) -> bytes:
    """A PNG header promising width x height pixels, in a few hundred bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width * 3 + 1) * 4)  # a few rows: the header is what is checked
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class DataUrlRouter(FakeRouter):
    def __init__(self, cdn, image: bytes) -> None:
        super().__init__(cdn, token=TOKEN)
        self.image = image

    def _fal_get(self, path):
        if path.endswith("/status"):
            return super()._fal_get(path)
        url = "data:image/png;base64," + base64.b64encode(self.image).decode()
        return _json(200, {"images": [{"url": url}], "seed": 1})


@pytest.mark.parametrize("image", [png_bomb(), png(1024, 1024)[:-40]], ids=["bomb", "cut-short"])
def test_a_data_url_image_is_checked_like_a_download(tmp_path, run_cli, monkeypatch, image):
    with FakeCDN() as cdn, DataUrlRouter(cdn, image) as router:
        env = {
            "AVATARGEN_ROUTER_URL": router.url,
            "HF_ENDPOINT": router.url,
            "AVATARGEN_RETRY_SCALE": "0.01",
            "HF_TOKEN": TOKEN,
        }
        make_photos(tmp_path / "photos", 2)
        out = tmp_path / "out"
        result = run_cli("generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose",
                         "--pose", "wave", "-o", str(out), "--json", "--yes", env=env)  # fmt: skip
        report = json.loads(run_cli("credits", "--json", env=env).stdout)
    assert result.returncode == 9, result.stderr  # every job failed
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["status"] for line in lines] == ["failed", "failed"]
    assert all("data: URL" in line["error"] for line in lines), lines
    assert not out.exists() or not list(out.iterdir())
    assert report["spent_today"] == 0 and report["reserved"] == 0


def test_a_good_data_url_image_is_kept(tmp_path, run_cli):
    with FakeCDN() as cdn, DataUrlRouter(cdn, png(1024, 1024)) as router:
        env = {"AVATARGEN_ROUTER_URL": router.url, "HF_ENDPOINT": router.url, "HF_TOKEN": TOKEN}
        make_photos(tmp_path / "photos", 1)
        result = run_cli("generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose",
                         "--pose", "wave", "-o", str(tmp_path / "out"), "--json", "--yes", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
