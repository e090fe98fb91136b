"""Image work a job does not need (issue 15, finding 4): answers keep their bytes (text chunks
added without decoding, the PNG checked instead), each photo is decoded once per batch, and the
photo travels as JPEG when the model does not need it lossless."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import httpx
import pytest
from PIL import Image, PngImagePlugin

from avatargen.errors import InputError, ProviderError
from avatargen.images import read_metadata, sd_parameters, write_output
from avatargen.photo_prep import needs_lossless
from avatargen.pngchunks import PngError, check_png, with_text
from avatargen.providers.retry import RetryPolicy, Target
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from helpers.images import encoded

META = {
    "job_key": "k" * 64,
    "input": "/photos/me.jpg",
    "input_hash": "h" * 64,
    "pose": "wave",
    "model": "avatar-generator:controlnet-openpose-sd15",
    "model_requested": "avatar-generator:controlnet-openpose-sd15",
    "seed": 1234,
    "prompt": "a portrait, café au lait — 笑顔",  # not Latin-1: an iTXt chunk, as Pillow writes it
    "negative_prompt": "blurry",
    "steps": 25,
    "guidance_scale": 7.5,
    "controlnet_conditioning_scale": 1.0,
    "strength": 0.75,
    "width": 64,
    "height": 48,
    "architecture": "sd15",
}


def answer() -> bytes:
    img = Image.radial_gradient("L").resize((64, 48)).convert("RGB")
    return encoded(img, "PNG")


def chunks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def test_text_chunks_are_added_to_the_bytes_received(tmp_path):
    received = answer()
    out = write_output(tmp_path / "a.png", received, META)
    written = out.read_bytes()
    # The image data is the server's, byte for byte: nothing was decoded or re-encoded.
    assert [c for c in chunks_of(written) if c[0] == b"IDAT"] == [
        c for c in chunks_of(received) if c[0] == b"IDAT"
    ]
    check_png(written, 10**6)  # a whole, valid PNG
    with Image.open(out) as img:
        img.load()
        assert img.size == (64, 48) and dict(img.text)["parameters"] == sd_parameters(META)
    assert read_metadata(out) == META


def test_the_text_chunks_are_those_pillow_writes(tmp_path):
    """Readers see exactly what they saw when the answer was re-encoded by Pillow."""
    received = answer()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", sd_parameters(META))
    info.add_text("avatargen", json.dumps(META, sort_keys=True))
    with Image.open(io.BytesIO(received)) as img:
        by_pillow = encoded(img, "PNG", pnginfo=info)
    ours = write_output(tmp_path / "a.png", received, META).read_bytes()
    text = (b"tEXt", b"iTXt", b"zTXt")
    assert [c for c in chunks_of(ours) if c[0] in text] == [c for c in chunks_of(by_pillow) if c[0] in text]
    assert chunks_of(ours)[1][0] == b"iTXt"  # right after IHDR, where Pillow puts them


def test_sd_parsers_reads_the_chunks(tmp_path):
    from sd_parsers import ParserManager

    out = write_output(tmp_path / "a.png", answer(), {**META, "prompt": "a friendly avatar"})
    info = ParserManager().parse(out)
    (sampler,) = info.samplers
    assert [p.value for p in sampler.prompts] == ["a friendly avatar"]
    assert sampler.parameters["seed"] == "1234" and info.metadata["Size"] == "64x48"


def test_text_the_server_put_in_is_replaced_by_ours(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "the server's own words")
    img = Image.new("RGB", (8, 8), (1, 2, 3))
    out = write_output(tmp_path / "a.png", encoded(img, "PNG", pnginfo=info), META)
    with Image.open(out) as written:
        assert written.text["parameters"] == sd_parameters(META)
    assert sum(1 for kind, _ in chunks_of(out.read_bytes()) if kind in (b"tEXt", b"iTXt")) == 2


def corrupt(data: bytes) -> bytes:
    idat = data.index(b"IDAT")
    return data[: idat + 6] + bytes([data[idat + 6] ^ 0xFF]) + data[idat + 7 :]


def oversized() -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    return head + answer()[33:]


BAD_ANSWERS = {
    "corrupt": lambda: corrupt(answer()),  # a flipped byte: the IDAT's CRC no longer matches
    "truncated": lambda: answer()[:-20],
    "no IEND": lambda: answer()[:-12],
    "trailing bytes": lambda: answer() + b"junk",
    "oversized": oversized,
    "html": lambda: b"<html>503 Service Unavailable</html>",
}


@pytest.mark.parametrize("kind", BAD_ANSWERS)
def test_a_bad_answer_is_refused_and_nothing_is_written(tmp_path, kind):
    with pytest.raises(InputError, match="not a readable image|too large"):
        write_output(tmp_path / "a.png", BAD_ANSWERS[kind](), META)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", [k for k in BAD_ANSWERS if k != "oversized"])
def test_a_bad_answer_is_a_bad_image_for_the_retry_policy(kind):
    body = BAD_ANSWERS[kind]()
    sent = []

    def send() -> httpx.Response:
        sent.append(1)
        return httpx.Response(200, content=body, headers={"content-type": "image/png"})

    target = Target("hf-endpoint", "http://127.0.0.1:1/", "m", "endpoint x", "", "", expected_size=(64, 48))
    with pytest.raises(ProviderError, match="not a whole image"):
        RetryPolicy(sleep=lambda _s: None).run(send, target)
    assert len(sent) == 2  # one retry, as for any cut-short answer


def test_a_png_claiming_far_more_pixels_is_refused_by_the_retry_policy():
    target = Target("hf-endpoint", "http://127.0.0.1:1/", "m", "endpoint x", "", "", expected_size=(64, 48))
    with pytest.raises(ProviderError, match="20000x20000"):
        RetryPolicy(sleep=lambda _s: None).run(lambda: httpx.Response(200, content=oversized()), target)


def test_with_text_refuses_a_png_over_the_pixel_cap():
    with pytest.raises(PngError, match="more than"):
        with_text(answer(), [("a", "b")], max_pixels=64 * 48 - 1)


def test_an_answer_the_retry_policy_checked_is_not_walked_again(monkeypatch, tmp_path):
    """The policy walks each chunk once (CRCs included) and hands the offsets on; adding our
    text reuses them, and writes the same file as a fresh walk would."""
    import avatargen.pngchunks as pngchunks

    target = Target("hf-endpoint", "http://127.0.0.1:1/", "m", "endpoint x", "", "", expected_size=(64, 48))
    result = RetryPolicy(sleep=lambda _s: None).run(lambda: httpx.Response(200, content=answer()), target)
    assert result.png_chunks == check_png(answer(), 10**6)[1]
    walks = []
    monkeypatch.setattr(pngchunks, "check_png", lambda *a: walks.append(a) or check_png(*a))
    reused = write_output(tmp_path / "a.png", result.image, META, png_chunks=result.png_chunks)
    assert walks == []
    fresh = write_output(tmp_path / "b.png", answer(), META)
    assert len(walks) == 1 and reused.read_bytes() == fresh.read_bytes()
    with pytest.raises(PngError, match="more than"):  # the pixel cap still holds
        with_text(result.image, [("a", "b")], 64 * 48 - 1, result.png_chunks)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_an_answer_that_is_not_a_png_is_converted(tmp_path, fmt):
    img = Image.new("RGB", (16, 16), (0, 200, 0))
    out = write_output(tmp_path / "a.png", encoded(img, fmt), META)
    with Image.open(out) as written:
        assert written.format == "PNG" and written.mode == "RGB" and written.size == (16, 16)
        assert written.text["parameters"] == sd_parameters(META)


def test_a_palette_png_answer_is_converted_to_rgb(tmp_path):
    img = Image.new("RGB", (16, 16), (0, 200, 0)).convert("P")
    out = write_output(tmp_path / "a.png", encoded(img, "PNG"), META)
    with Image.open(out) as written:
        assert written.mode == "RGB" and read_metadata(out) == META


# ------------------------------------------------------------------ the photo, once, as JPEG
def photo(path, size=(300, 400)):
    Image.radial_gradient("L").resize(size).convert("RGB").save(path, quality=90)
    return path


def sent_photos(endpoint: FakeEndpoint) -> list[bytes]:
    return [
        base64.b64decode(json.loads(r["body"])["inputs"]["init_image"])
        for r in endpoint.requests
        if r["method"] == "POST"
    ]


@pytest.mark.slow
def test_a_photo_is_decoded_once_for_num_3_and_sent_as_jpeg_at_the_models_size(tmp_path, monkeypatch, capsys):
    import avatargen.images

    photo(tmp_path / "me.jpg")
    decoded = []
    real_load = avatargen.images.load_photo

    def counting_load(path, *args, **kwargs):
        decoded.append(path)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(avatargen.images, "load_photo", counting_load)
    with FakeEndpoint() as endpoint:
        code, out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "me.jpg"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--num", "3", "--concurrency", "3", "--strength", "0.75", "--json",
        )  # fmt: skip
        sent = sent_photos(endpoint)
    assert code == 0, err
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["done"] * 3
    assert len(decoded) == 1
    assert len(sent) == 3 and len(set(sent)) == 1  # encoded once too
    with Image.open(io.BytesIO(sent[0])) as img:
        assert img.format == "JPEG" and img.size == (512, 512)


def test_which_architectures_need_the_photo_lossless():
    # SD 3.5's ControlNets read the picture itself (Canny, Depth): no JPEG block edges there.
    assert needs_lossless("sd35")
    # Editing models keep the input's pixels where they do not edit: JPEG artefacts would stay.
    assert needs_lossless("qwen-image") and needs_lossless("flux")
    assert not needs_lossless("sd15") and not needs_lossless("sdxl")


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_still_covering_the_size(tmp_path):
    from avatargen.images import load_photo

    big = photo(tmp_path / "big.jpg", size=(4000, 3000))
    assert load_photo(big, min_side=1024).size == (2000, 1500)  # 1/2: still >= 1024 on each side
    assert load_photo(big, min_side=512).size == (1000, 750)
    assert load_photo(big).size == (4000, 3000)


# ------------------------------------------------------------------ reading our metadata back
def _png_with_texts(texts, after_idat=False, zip_=False) -> bytes:
    img = Image.radial_gradient("L").resize((64, 48)).convert("RGB")
    info = PngImagePlugin.PngInfo()
    for key, value in texts:
        info.add_text(key, value, zip=zip_)
    data = encoded(img, "PNG", pnginfo=info)
    if after_idat:  # move the text chunks between the last IDAT and IEND (PNG allows it)
        parts = chunks_of(data)
        text = [c for c in parts if c[0] in (b"tEXt", b"zTXt", b"iTXt")]
        rest = [c for c in parts if c not in text]
        parts = rest[:-1] + text + rest[-1:]
        data = b"\x89PNG\r\n\x1a\n" + b"".join(
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
            for kind, body in parts
        )
    return data


@pytest.mark.parametrize("zip_", [False, True], ids=["plain", "compressed"])
@pytest.mark.parametrize("after_idat", [False, True], ids=["before-idat", "after-idat"])
@pytest.mark.parametrize("value", ["latin-1 café", "utf-8 笑顔 — json"])
def test_text_is_read_as_pillow_reads_it_without_decoding(value, after_idat, zip_, monkeypatch):
    from avatargen.pngchunks import read_text

    data = _png_with_texts([("other", "x"), ("avatargen", value)], after_idat, zip_)
    with Image.open(io.BytesIO(data)) as img:
        expected = img.text["avatargen"]
    monkeypatch.setattr(Image, "open", None)  # Pillow (which decodes every pixel first) is not used
    assert read_text(data, "avatargen", 10**6) == expected == value
    assert read_text(data, "missing", 10**6) is None


def test_metadata_of_a_damaged_or_foreign_file_is_none(tmp_path, monkeypatch):
    out = write_output(tmp_path / "a.png", answer(), META)
    good = out.read_bytes()
    monkeypatch.setattr(Image, "open", None)  # read without Pillow
    assert read_metadata(out) == META
    monkeypatch.undo()
    idat = good.index(b"IDAT") + 10
    for name, data in {
        "damaged": good[:idat] + bytes([good[idat] ^ 1]) + good[idat + 1 :],  # a bad CRC in the image data
        "cut": good[:-20],
        "json-list": _png_with_texts([("avatargen", "[1, 2]")]),
        "not-json": _png_with_texts([("avatargen", "{nope")]),
        "jpeg": encoded(Image.new("RGB", (8, 8)), "JPEG"),
    }.items():
        (tmp_path / name).write_bytes(data)
        assert read_metadata(tmp_path / name) is None, name
    assert read_metadata(tmp_path / "absent.png") is None


def test_a_text_chunk_that_inflates_past_the_cap_is_not_read(monkeypatch):
    import avatargen.pngchunks as pngchunks

    monkeypatch.setattr(pngchunks, "MAX_TEXT_BYTES", 1000)
    data = _png_with_texts([("avatargen", "x" * 5000)], zip_=True)
    assert pngchunks.read_text(data, "avatargen", 10**6) is None
