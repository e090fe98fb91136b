"""resolve_pose: every --pose form, checked once before a batch; images at the model's exact size."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from PIL import Image

from avatargen.errors import InputError, MissingExtra, UsageError
from avatargen.poses import sources
from avatargen.poses.keypoints import COLORS
from avatargen.poses.sources import PoseSource, resolve_pose
from avatargen.poses.templates import get_template
from helpers.images import png

RED = (255, 0, 0)


def png_bytes(size=(100, 50), color=RED) -> bytes:
    return png(size, color)


def pose_json_bytes() -> bytes:
    return json.dumps(get_template("standing").pose.to_json()).encode()


def non_black(image: Image.Image) -> int:
    return sum(n for n, c in image.getcolors(maxcolors=100_000) if c != (0, 0, 0))


def test_template_source():
    src = resolve_pose("wave")
    assert isinstance(src, PoseSource)
    assert src.name == "wave" and not src.per_photo
    assert src.description == get_template("wave").description
    image = src.image(768, 1024)
    assert image.size == (768, 1024) and image.mode == "RGB"
    assert non_black(image) > 1000
    assert COLORS[4] in {c for _, c in image.getcolors(maxcolors=100_000)}  # right wrist drawn


def test_template_image_is_cached_per_size_and_handed_out_as_copies(monkeypatch):
    src = resolve_pose("standing")
    calls = []
    real = sources.render_pose
    monkeypatch.setattr(sources, "render_pose", lambda *a, **k: calls.append(a[1:3]) or real(*a, **k))
    first = src.image(512, 512)
    first.putpixel((0, 0), (1, 2, 3))  # a caller scribbling must not change the cache
    second = src.image(512, 512)
    src.image(1024, 1024)
    assert calls == [(512, 512), (1024, 1024)]
    assert second.getpixel((0, 0)) == (0, 0, 0)


def test_unknown_template_names_pose_option_with_suggestions():
    with pytest.raises(UsageError) as err:
        resolve_pose("arms-upp")
    assert "--pose" in err.value.message
    assert "arms-up" in err.value.hint


def test_json_file_source_keeps_its_canvas(tmp_path):
    path = tmp_path / "my-pose.json"
    path.write_bytes(pose_json_bytes())
    src = resolve_pose(str(path))
    assert src.name == "my-pose" and not src.per_photo
    assert "full-body" in src.description
    assert src.image(512, 512).size == (512, 512)
    assert non_black(src.image(512, 512)) > 500


def test_bad_json_file_names_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"people": [{"pose_keypoints_2d": [1,2,3,4]}]}')
    with pytest.raises(InputError, match="broken.json"):
        resolve_pose(str(path))


@pytest.mark.parametrize("name", ["missing.json", "missing.png", "missing.jpg"])
def test_missing_file_names_it(tmp_path, name):
    with pytest.raises(InputError) as err:
        resolve_pose(str(tmp_path / name))
    assert name in err.value.message and err.value.exit_code == 5


def test_image_file_is_letterboxed_to_the_size(tmp_path):
    path = tmp_path / "skeleton.png"
    path.write_bytes(png_bytes((100, 50)))
    src = resolve_pose(str(path))
    assert src.name == "skeleton"
    image = src.image(200, 200)
    assert image.size == (200, 200)
    assert image.getpixel((100, 100)) == RED  # the picture, scaled 2x, centred
    assert image.getpixel((100, 10)) == (0, 0, 0)  # black bands above and below
    assert image.getpixel((100, 190)) == (0, 0, 0)
    assert image.getpixel((0, 51)) == RED and image.getpixel((199, 148)) == RED


def test_not_an_image_file(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("hello")
    with pytest.raises(InputError, match="fake.png is not a readable image"):
        resolve_pose(str(path))


def test_url_png_is_fetched_once(httpx_mock):
    url = "https://example.test/poses/hero.png"
    httpx_mock.add_response(url=url, content=png_bytes((64, 64)), headers={"content-type": "image/png"})
    src = resolve_pose(url)
    assert src.name == "hero"
    src.image(512, 512)
    src.image(256, 256)
    assert len(httpx_mock.get_requests()) == 1
    assert src.image(128, 128).getpixel((64, 64)) == RED


def test_url_json(httpx_mock):
    url = "https://example.test/p/standing.json"
    httpx_mock.add_response(url=url, content=pose_json_bytes())
    src = resolve_pose(url)
    assert src.name == "standing" and non_black(src.image(512, 512)) > 500


def test_url_kind_from_content_type_when_no_suffix(httpx_mock):
    url = "http://example.test/pose?id=3"
    httpx_mock.add_response(url=url, content=png_bytes(), headers={"content-type": "image/png"})
    assert resolve_pose(url).image(100, 100).size == (100, 100)


def test_url_http_error_names_the_url(httpx_mock):
    url = "https://example.test/gone.png"
    httpx_mock.add_response(url=url, status_code=404)
    with pytest.raises(InputError) as err:
        resolve_pose(url)
    assert url in err.value.message and "404" in err.value.message


def test_url_timeout_names_the_url(httpx_mock):
    url = "https://example.test/slow.json"
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), url=url)
    with pytest.raises(InputError) as err:
        resolve_pose(url)
    assert url in err.value.message and "30 s" in err.value.message


def test_url_connection_error_names_the_url(httpx_mock):
    url = "https://example.test/x.png"
    httpx_mock.add_exception(httpx.ConnectError("no route"), url=url)
    with pytest.raises(InputError, match="example.test/x.png"):
        resolve_pose(url)


def test_url_over_the_size_cap(httpx_mock, monkeypatch):
    monkeypatch.setattr(sources, "URL_MAX_BYTES", 1000)
    url = "https://example.test/huge.png"
    httpx_mock.add_response(url=url, content=b"\0" * 5000)
    with pytest.raises(InputError, match="larger than"):
        resolve_pose(url)


def test_url_over_the_cap_without_content_length(httpx_mock, monkeypatch):
    monkeypatch.setattr(sources, "URL_MAX_BYTES", 1000)
    url = "https://example.test/stream.png"
    httpx_mock.add_response(url=url, stream=httpx.ByteStream(b"\0" * 5000), headers={"content-length": ""})
    with pytest.raises(InputError, match="larger than"):
        resolve_pose(url)


def test_url_neither_json_nor_image(httpx_mock):
    url = "https://example.test/page"
    httpx_mock.add_response(url=url, content=b"<html>", headers={"content-type": "text/html"})
    with pytest.raises(InputError, match="neither JSON nor an image"):
        resolve_pose(url)


def test_empty_spec_is_usage_error():
    with pytest.raises(UsageError):
        resolve_pose("  ")


def test_auto_without_mediapipe_is_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(MissingExtra) as err:
        resolve_pose("auto")
    assert err.value.extra == "pose" and err.value.exit_code == 11
    assert "avatargen[pose]" in err.value.hint
