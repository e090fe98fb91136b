"""Reading photos safely (orientation, colour modes, bombs, damaged files) and writing outputs
atomically with their parameters as PNG text chunks."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatargen import images
from avatargen.errors import InputError
from avatargen.images import (
    file_hash,
    fit_to,
    load_photo,
    output_has_key,
    read_metadata,
    sd_parameters,
    sniff_image,
    write_output,
)
from helpers.images import encoded


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


META = {
    "prompt": "a friendly avatar, studio light",
    "negative_prompt": "blurry, extra fingers",
    "steps": 25,
    "guidance_scale": 7.5,
    "seed": 1234,
    "width": 64,
    "height": 48,
    "model": "avatar-generator:sd15-openpose",
    "controlnet_conditioning_scale": 1.0,
    "pose": "wave",
    "job_key": "0123456789abcdef0123456789abcdef",
}


def answer(color=(10, 120, 200), size=(64, 48)) -> bytes:
    return encoded(Image.new("RGB", size, color), "PNG")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


# ------------------------------------------------------------------ recognising images by content
@pytest.mark.parametrize(
    ("fmt", "kind", "mode"),
    [
        ("PNG", "png", "RGB"),
        ("JPEG", "jpeg", "RGB"),
        ("GIF", "gif", "P"),
        ("WEBP", "webp", "RGB"),
        ("BMP", "bmp", "RGB"),
        ("TIFF", "tiff", "RGB"),
    ],
)
def test_sniff_recognises_formats_by_content_not_name(tmp_path, fmt, kind, mode):
    path = tmp_path / "holiday.txt"  # the extension lies
    path.write_bytes(encoded(Image.new(mode, (8, 8)), fmt))
    assert sniff_image(path) == kind


def test_sniff_rejects_text_whatever_its_name(tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("just some notes, not a photo\n")
    assert sniff_image(fake) is None
    bmw = tmp_path / "cars.bmp"
    bmw.write_text("BMW 3 series, 2019, blue, low mileage, one owner\n")  # starts with 'BM'
    assert sniff_image(bmw) is None
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert sniff_image(empty) is None
    assert sniff_image(tmp_path / "missing.png") is None
    assert sniff_image(tmp_path) is None  # a folder


def test_file_hash_is_the_sha256_of_the_content(tmp_path):
    path = tmp_path / "a.bin"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert file_hash(path) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ loading photos
def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    img.paste((10, 10, 200), (0, 0, 10, 20))  # a blue band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "sideways.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.size == (20, 40)
    # Rotated clockwise, the left edge is now the top.
    r, g, b = photo.getpixel((10, 2))
    assert b > 150 and r < 80
    r, g, b = photo.getpixel((10, 37))
    assert r > 150 and b < 80


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in ink
    photo = load_photo(path)
    assert photo.mode == "RGB"
    r, g, b = photo.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency_becomes_rgb_on_white(tmp_path):
    img = Image.new("P", (10, 10), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    img.putpixel((1, 1), 1)
    path = tmp_path / "sticker.png"
    img.save(path, transparency=0)  # palette entry 0 (black) is transparent
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, not black
    assert photo.getpixel((1, 1)) == (255, 0, 0)


def test_rgba_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (10, 10), (0, 0, 255, 0))
    img.putpixel((5, 5), (0, 0, 255, 255))
    img.putpixel((6, 6), (0, 0, 255, 128))
    path = tmp_path / "cutout.png"
    img.save(path)
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == (255, 255, 255)
    assert photo.getpixel((5, 5)) == (0, 0, 255)
    r, g, b = photo.getpixel((6, 6))
    assert 120 <= r <= 135 and b == 255  # half see-through blue on white


def test_greyscale_with_alpha_becomes_rgb(tmp_path):
    path = tmp_path / "la.png"
    Image.new("LA", (4, 4), (0, 0)).save(path)
    assert load_photo(path).getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    levels = np.zeros((8, 8), np.uint16)
    levels[0, 0], levels[1, 1], levels[2, 2], levels[3, 3] = 0, 65535, 100 * 256, 32768
    path = tmp_path / "scan16.png"
    Image.fromarray(levels).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "I;16"
    photo = load_photo(path)
    assert photo.mode == "RGB"
    assert photo.getpixel((0, 0)) == (0, 0, 0)
    assert photo.getpixel((1, 1)) == (255, 255, 255)
    assert photo.getpixel((2, 2)) == (100, 100, 100)
    assert photo.getpixel((3, 3)) == (128, 128, 128)


def test_16_bit_big_endian_tiff_is_scaled(tmp_path):
    levels = np.full((8, 8), 50 * 256, dtype=">u2")
    path = tmp_path / "scan16be.tif"
    Image.fromarray(levels).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "I;16B"
    photo = load_photo(path)
    assert photo.getpixel((4, 4)) == (50, 50, 50)


def test_float_greyscale_tiff_is_stretched(tmp_path):
    levels = np.full((8, 8), 0.5, dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(levels).save(path)
    with Image.open(path) as raw:
        assert raw.mode == "F"
    r, g, b = load_photo(path).getpixel((4, 4))
    assert 126 <= r <= 128


def test_plain_rgb_and_greyscale_load_unchanged(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (30, 20), (1, 2, 3)).save(path)
    photo = load_photo(path)
    assert (photo.mode, photo.size, photo.getpixel((0, 0))) == ("RGB", (30, 20), (1, 2, 3))
    grey = tmp_path / "grey.png"
    Image.new("L", (5, 5), 77).save(grey)
    assert load_photo(grey).getpixel((0, 0)) == (77, 77, 77)


@pytest.mark.parametrize("size", [(20000, 20000), (10000, 9500)])
def test_decompression_bombs_are_refused(tmp_path, size):
    # 400 MP trips Pillow's hard limit; 95 MP only its warning, which must refuse too.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(*size))
    with pytest.raises(InputError) as refused:
        load_photo(path)
    assert str(path) in refused.value.message
    assert "bomb" in refused.value.message or "too large" in refused.value.message


def test_our_own_pixel_cap_is_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(InputError) as refused:
        load_photo(path)
    assert "20x20" in refused.value.message and str(path) in refused.value.message


def test_pillow_limit_lowered_refuses_too(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)  # 400 px: over twice the limit
    with pytest.raises(InputError, match="decompression bomb"):
        load_photo(path)


def _png() -> bytes:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return encoded(Image.fromarray(noise), "PNG")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:60] + bytes(x ^ 0xFF for x in b[60:400]) + b[400:], id="scrambled"),
        pytest.param(lambda b: b[:16] + b"\xff" * 17 + b[33:], id="bad-header"),
        pytest.param(lambda b: b[:8], id="signature-only"),
    ],
)
def test_damaged_files_raise_input_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "damaged.png"
    path.write_bytes(damage(_png()))
    with pytest.raises(InputError) as refused:
        load_photo(path)
    assert str(path) in refused.value.message


def test_truncated_jpeg_is_refused(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        load_photo(path)


def test_non_image_and_missing_file_raise_input_error(tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    with pytest.raises(InputError) as refused:
        load_photo(notes)
    assert "notes.jpg" in refused.value.message and "not an image" in refused.value.message
    with pytest.raises(InputError, match="gone.png: file not found"):
        load_photo(tmp_path / "gone.png")


def test_fit_to_crops_to_the_target_size():
    wide = Image.new("RGB", (300, 100))
    assert fit_to(wide, 64, 96).size == (64, 96)


# ------------------------------------------------------------------ writing outputs
def test_parameters_text_is_in_the_common_sd_style():
    text = sd_parameters(META)
    lines = text.split("\n")
    assert lines[0] == META["prompt"]
    assert lines[1] == "Negative prompt: blurry, extra fingers"
    # A1111's own field order, a Sampler (readers need one) and the model without its ':'.
    assert lines[2] == (
        "Steps: 25, Sampler: unknown, CFG scale: 7.5, Seed: 1234, Size: 64x48, Model: sd15-openpose, "
        "ControlNet: openpose, Control scale: 1.0, Pose: wave"
    )


@pytest.mark.parametrize(
    "extra, sampler",
    [
        ({"sampler": "EulerAncestralDiscreteScheduler"}, "Euler a"),  # what the backend reported
        ({"sampler": "DPM++ 2M Karras"}, "DPM++ 2M Karras"),  # already a sampler name
        ({"architecture": "sdxl"}, "Euler"),  # SDXL base 1.0 loads EulerDiscreteScheduler
        ({"architecture": "sd15"}, "PLMS"),  # SD 1.5 loads PNDMScheduler (PLMS steps only)
        ({"model": "avatar-generator:controlnet-openpose-sdxl"}, "Euler"),  # from the catalog
        ({"model": "avatar-generator:controlnet-openpose-sd15"}, "PLMS"),
        ({"sampler": "UniPCMultistepScheduler", "architecture": "sdxl"}, "UniPC"),  # reported wins
    ],
)
def test_parameters_name_the_sampler_that_ran(extra, sampler):
    line = sd_parameters({**META, **extra}).split("\n")[2]
    assert f", Sampler: {sampler}, " in line


def test_parameters_of_img2img_carry_the_denoising_strength():
    assert "Denoising strength: 0.75" in sd_parameters({**META, "strength": 0.75})
    assert "Denoising strength" not in sd_parameters({**META, "strength": None})


def test_parameters_quote_values_that_would_split_the_line():
    line = sd_parameters({**META, "pose": "https://poses.example/a, b.json"}).split("\n")[2]
    assert line.endswith(', Pose: "https://poses.example/a, b.json"')  # A1111's own quoting


def test_write_output_carries_parameters_and_job_key(tmp_path):
    out = tmp_path / "out" / "me-wave-sd15-1234.png"  # the folder is created
    assert write_output(out, answer(), META) == out
    with Image.open(out) as written:
        assert written.format == "PNG"
        assert written.size == (64, 48)
        assert written.getpixel((3, 3)) == (10, 120, 200)
        text = dict(written.text)
    assert text["parameters"] == sd_parameters(META)
    assert "Negative prompt: blurry" in text["parameters"]
    assert "Steps: 25, Sampler: unknown, CFG scale: 7.5, Seed: 1234" in text["parameters"]
    assert json.loads(text["avatargen"])["job_key"] == META["job_key"]
    assert read_metadata(out) == META
    assert output_has_key(str(out), META["job_key"]) is True
    assert output_has_key(str(out), "someone-else") is False
    assert leftovers(out.parent) == []


def test_write_output_converts_a_jpeg_answer_to_png(tmp_path):
    out = tmp_path / "a.png"
    write_output(out, encoded(Image.new("RGB", (16, 16), (0, 200, 0)), "JPEG"), META)
    with Image.open(out) as written:
        assert written.format == "PNG" and written.mode == "RGB"


def test_write_output_scales_a_16_bit_answer(tmp_path):
    out = tmp_path / "grey.png"
    write_output(out, encoded(Image.fromarray(np.full((8, 8), 100 * 256, np.uint16)), "PNG"), META)
    with Image.open(out) as written:
        assert written.convert("RGB").getpixel((1, 1)) == (100, 100, 100)


def test_read_metadata_of_files_we_did_not_write(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (4, 4)).save(jpeg)
    junk = tmp_path / "junk.png"
    junk.write_text("hello")
    for path in (plain, jpeg, junk, tmp_path / "missing.png", tmp_path):
        assert read_metadata(path) is None
        assert output_has_key(str(path), META["job_key"]) is False


def test_bad_answer_bytes_leave_nothing_behind(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(InputError, match="not a readable image"):
        write_output(out, b"<html>503 Service Unavailable</html>", META)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_bomb_from_the_server_is_refused(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(InputError):
        write_output(out, png_claiming(20000, 20000), META)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_never_replaced_without_overwrite(tmp_path):
    out = tmp_path / "mine.png"
    out.write_bytes(b"the user's own file")
    with pytest.raises(InputError) as refused:
        write_output(out, answer(), META)
    assert "already exists" in refused.value.message and str(out) in refused.value.message
    assert "--overwrite" in refused.value.one_line()
    assert out.read_bytes() == b"the user's own file"
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_atomically(tmp_path):
    out = tmp_path / "mine.png"
    out.write_bytes(b"old")
    write_output(out, answer((1, 2, 3)), META, overwrite=True)
    with Image.open(out) as written:
        assert written.getpixel((0, 0)) == (1, 2, 3)
    assert read_metadata(out)["job_key"] == META["job_key"]
    assert leftovers(tmp_path) == []
    write_output(out, answer((4, 5, 6)), {**META, "job_key": "second"}, overwrite=True)
    assert output_has_key(str(out), "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png"]


def test_a_failed_write_removes_its_temporary_file(tmp_path, monkeypatch):
    def broken_link(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(images.os, "link", broken_link)
    out = tmp_path / "x.png"
    with pytest.raises(OSError):
        write_output(out, answer(), META)
    assert list(tmp_path.iterdir()) == []


def test_a_filesystem_without_hard_links_still_gets_the_file(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # what exFAT answers

    monkeypatch.setattr(images.os, "link", no_links)
    out = tmp_path / "x.png"
    write_output(out, answer(), META)
    assert output_has_key(str(out), META["job_key"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
    with pytest.raises(InputError, match="already exists"):
        write_output(out, answer((9, 9, 9)), META)
    with Image.open(out) as kept:
        assert kept.getpixel((0, 0)) == (10, 120, 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]
