"""A photo already at the model's size travels as its own JPEG data (issue 15, finding 4): no
decode, no re-encode, and none of its metadata (EXIF with GPS, comments) leaves the machine."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from avatargen.jpegsend import stripped_jpeg
from avatargen.photo_prep import PhotoCache
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _picture(size=(512, 512)):
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    ImageDraw.Draw(img).ellipse((40, 60, size[0] - 50, size[1] - 30), fill=(200, 40, 90))
    return img


def _jpeg(img, orientation: int | None = None, gps: bool = True, **options) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    if orientation is not None:
        exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90, exif=exif.tobytes(), comment=b"my secret note", **options)
    return buffer.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


# ------------------------------------------------------------------ the segment walk
@pytest.mark.parametrize("progressive", [False, True])
def test_stripping_keeps_every_pixel_and_drops_exif_and_comments(progressive):
    original = _jpeg(_picture(), progressive=progressive)
    assert b"Exif" in original and b"my secret note" in original and b"PhoneMaker" in original
    stripped = stripped_jpeg(original)
    assert stripped is not None
    assert b"Exif" not in stripped and b"my secret note" not in stripped and b"PhoneMaker" not in stripped
    assert np.array_equal(_pixels(stripped), _pixels(original))
    assert len(stripped) < len(original)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # cut short: no EOI
        lambda d: d + b"trailing video of a motion photo",  # bytes after EOI
        lambda d: b"\x89PNG" + d[4:],  # not a JPEG
        lambda d: d[:2] + b"\xff\xe1\xff\xff" + d[6:],  # a segment longer than the file
        lambda d: d[:2] + b"\x00\x00" + d[4:],  # no marker where one must be
    ],
)
def test_a_jpeg_the_walk_cannot_vouch_for_is_not_sent_as_is(damage):
    assert stripped_jpeg(damage(_jpeg(_picture()))) is None


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_walk_never_raises(data):
    for candidate in (data, b"\xff\xd8" + data + b"\xff\xd9"):
        result = stripped_jpeg(candidate)
        assert result is None or (result[:2] == b"\xff\xd8" and result[-2:] == b"\xff\xd9")


# ------------------------------------------------------------------ which photos go as they are
def test_a_photo_at_the_models_size_is_sent_without_decoding(tmp_path):
    path = tmp_path / "p.jpg"
    path.write_bytes(_jpeg(_picture()))
    cache = PhotoCache()
    sent = cache.init_image(path, "k", 512, 512, lossless=False)
    assert sent == stripped_jpeg(path.read_bytes())
    assert cache.decoded == 0 and cache.sent_whole == 1 and cache.sent_as_is("k", 512, 512)


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: _jpeg(_picture(), orientation=6), "rotated by EXIF"),
        (lambda: _jpeg(_picture((512, 640))), "another size"),
        (lambda: _jpeg(_picture().convert("L")), "greyscale"),
        (lambda: _jpeg(_picture(), gps=False)[:-2], "no EOI"),
    ],
)
def test_other_photos_are_decoded_and_fitted(tmp_path, make, why):
    path = tmp_path / "p.jpg"
    path.write_bytes(make())
    cache = PhotoCache()
    try:
        sent = cache.init_image(path, "k", 512, 512, lossless=False)
    except Exception:  # the cut-short file: decoding says what is wrong (the batch's job error)
        assert why == "no EOI"
    else:
        assert Image.open(io.BytesIO(sent)).size == (512, 512)
        assert b"Exif" not in sent
    assert cache.decoded == 1 and cache.sent_whole == 0, why


def test_a_rotated_photo_is_sent_upright(tmp_path):
    """EXIF orientation 6 (turn 90 degrees clockwise): the sent image is the turned one."""
    img = _picture((512, 512))
    path = tmp_path / "p.jpg"
    path.write_bytes(_jpeg(img, orientation=6))
    sent = PhotoCache().init_image(path, "k", 512, 512, lossless=False)
    upright = np.asarray(img.transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(_pixels(sent).astype(int) - upright).mean() < 3


# ------------------------------------------------------------------ through the real engine
def _init_images(endpoint) -> list[bytes]:
    posts = [r for r in endpoint.requests if r["method"] == "POST"]
    return [base64.b64decode(json.loads(r["body"])["inputs"]["init_image"]) for r in posts]


def _generate_one(tmp_path, monkeypatch, capsys, name: str, data: bytes):
    """`generate` of one photo with img2img against a fake endpoint: (exit code, stdout, stderr,
    the init images the endpoint received)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / name).write_bytes(data)
    assert run_main(monkeypatch, capsys, "credits", "add", "20")[0] == 0
    with FakeEndpoint() as endpoint:
        code, out, err = run_main(
            monkeypatch, capsys, "generate", str(photos), "--endpoint", endpoint.url, "-o", str(tmp_path / "out"),
            "--model", "controlnet-openpose-sd15", "--strength", "0.6", "--identity-scale", "0", "--json",
        )  # fmt: skip
        return code, out, err, _init_images(endpoint)


@pytest.mark.slow
def test_a_batch_sends_the_photos_own_data_without_its_gps(tmp_path, monkeypatch, capsys):
    data = _jpeg(_picture())
    code, _out, err, sent = _generate_one(tmp_path, monkeypatch, capsys, "me.jpg", data)
    assert code == 0, err
    assert sent == [stripped_jpeg(data)]
    assert b"Exif" not in sent[0] and b"my secret note" not in sent[0]
    assert np.array_equal(_pixels(sent[0]), _pixels(data))


@pytest.mark.slow
def test_a_cut_short_photo_at_the_models_size_fails_its_job_unsent(tmp_path, monkeypatch, capsys):
    data = _jpeg(_picture())
    code, out, err, sent = _generate_one(tmp_path, monkeypatch, capsys, "cut.jpg", data[: len(data) * 2 // 3])
    assert sent == [] and code == 5, err
    (line,) = [json.loads(x) for x in out.splitlines() if x.startswith("{") and '"status"' in x]
    assert line["status"] == "failed" and "cut.jpg" in line["error"] and "truncated" in line["error"]
