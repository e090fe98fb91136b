"""Property tests (hardening item 8): every input parser, fed random bytes or random JSON/TOML,
either succeeds or raises one of avatargen's own errors, which the CLI turns into one line with
its documented exit code. Anything else would reach the user as exit 70 (a bug).

Parsers: pose JSON (parsed and drawn), pose images, photos (images.load_photo), config.toml
(settings.load_config), catalog files (catalog.load_catalog) and .env files (dotenv).
"""

from __future__ import annotations

import io
import json
import os

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from avatargen import catalog, dotenv, images
from avatargen import settings as avatargen_settings
from avatargen.errors import AvatargenError, CatalogError, ConfigError
from avatargen.poses import sources
from cli_helpers import run_main

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Building big keypoint lists and re-reading the shipped catalog cost more per example.
FUZZ_SLOW = settings(FUZZ, max_examples=100)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
# Numbers a keypoint list may hold, including the edge cases real files and attackers produce.
coordinate = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-0.02, max_value=1.02)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, 0.5, -0.001953125, 1e308, 10**400])
)
part_lengths = st.sampled_from([0, 3, 54, 63, 75, 204, 210]) | st.integers(min_value=0, max_value=80)


@st.composite
def keypoint_lists(draw):
    return draw(st.lists(coordinate, min_size=(n := draw(part_lengths)), max_size=n))


pose_people = st.lists(
    st.dictionaries(
        st.sampled_from(
            ["pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d"]
        ),
        keypoint_lists() | json_values,
        max_size=4,
    )
    | json_values,
    max_size=3,
)
canvas_side = st.none() | st.sampled_from([1, 512, 0, -5, 1e300, 100_000, 100_001, True]) | st.floats()
pose_documents = st.builds(
    lambda people, w, h, wrap: (
        [doc] if wrap and (doc := _pose_doc(people, w, h)) else _pose_doc(people, w, h)
    ),
    pose_people,
    canvas_side,
    canvas_side,
    st.booleans(),
)


def _pose_doc(people, width, height) -> dict:
    doc = {"people": people}
    if width is not None:
        doc["canvas_width"] = width
    if height is not None:
        doc["canvas_height"] = height
    return doc


def our_errors_only(fn, *args):
    """fn(*args) succeeds or raises an AvatargenError; anything else fails the test."""
    try:
        return fn(*args)
    except AvatargenError:
        return None


def json_bytes(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def pose_json(data: bytes) -> None:
    source = sources._from_json_bytes(data, "fuzz.json", "fuzz")
    source.image(48, 64)  # drawing takes whatever the parser let through


def pose_image(data: bytes) -> None:
    sources._from_image_bytes(data, "fuzz.png", "fuzz").image(32, 32)


def image_file_bytes() -> st.SearchStrategy[bytes]:
    """Real image files with random damage: Pillow's decoders see more than just their magic bytes."""

    def damaged(fmt_and_cuts):
        fmt, size, cut, flips = fmt_and_cuts
        buf = io.BytesIO()
        Image.new("RGB", size, (120, 30, 200)).save(buf, format=fmt)
        data = bytearray(buf.getvalue())
        for offset, value in flips:
            data[offset % len(data)] = value
        return bytes(data[: max(1, len(data) - cut)])

    return st.tuples(
        st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]),
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        st.integers(0, 64),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    ).map(damaged)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# ---------------------------------------------------------------- pose JSON


@FUZZ
@given(st.binary(max_size=400))
def test_pose_json_random_bytes(data):
    our_errors_only(pose_json, data)


@pytest.mark.slow
@FUZZ
@given(json_values)
def test_pose_json_random_json(value):
    our_errors_only(pose_json, json_bytes(value))


@pytest.mark.slow
@FUZZ_SLOW
@given(pose_documents)
def test_pose_json_pose_shaped_documents(doc):
    our_errors_only(pose_json, json_bytes(doc))


# ---------------------------------------------------------------- pose images and photos


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=400) | image_file_bytes())
def test_pose_image_random_bytes(data):
    our_errors_only(pose_image, data)


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=400) | image_file_bytes())
def test_photo_random_bytes(scratch, data):
    path = scratch / "photo.img"
    path.write_bytes(data)
    our_errors_only(images.load_photo, path)


# ---------------------------------------------------------------- config, catalog, .env

toml_keys = st.text(min_size=1, max_size=12)
toml_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(toml_keys, inner, max_size=4),
    max_leaves=20,
)
toml_tables = st.dictionaries(toml_keys, toml_values, max_size=6)
catalog_fields = st.sampled_from(sorted(catalog._FIELD_TYPES) + ["unknown_field"])
catalog_entries = st.dictionaries(catalog_fields, toml_values, max_size=12)
catalog_documents = st.builds(lambda entries: {"models": entries}, st.lists(catalog_entries, max_size=3))


def toml_bytes(value: dict) -> bytes:
    return tomli_w.dumps(value).encode()


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=400) | toml_tables.map(toml_bytes))
def test_config_random_input(scratch, data):
    path = scratch / "config.toml"
    path.write_bytes(data)
    our_errors_only(avatargen_settings.load_config, path)


@pytest.mark.slow
@FUZZ_SLOW
@given(st.binary(max_size=400) | toml_tables.map(toml_bytes) | catalog_documents.map(toml_bytes))
def test_catalog_random_input(scratch, data):
    path = scratch / "models.toml"
    path.write_bytes(data)
    our_errors_only(catalog.load_catalog, path)


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_dotenv_random_input(scratch, data):
    path = scratch / ".env"
    path.write_bytes(data)
    before = dict(os.environ)
    try:
        our_errors_only(dotenv.load_dotenv_file, path)
    finally:  # the loader sets variables: put the environment back as it was
        for name in set(os.environ) - set(before):
            del os.environ[name]


DEEP_TOML = "a = " + "[" * 100_000 + "]" * 100_000


def test_deep_toml_is_a_config_error(scratch):
    """Nesting that exhausts tomllib's recursion (random input rarely gets there: a fixed example)."""
    path = scratch / "deep.toml"
    path.write_text(DEEP_TOML)
    with pytest.raises(ConfigError, match="nested too deeply"):
        avatargen_settings.load_config(path)
    with pytest.raises(CatalogError, match="nested too deeply"):
        catalog.load_catalog(path)


def test_deep_config_and_catalog_through_the_cli(monkeypatch, capsys, avatargen_home, tmp_path):
    (avatargen_home / "config.toml").write_text(DEEP_TOML)
    code, _, err = run_main(monkeypatch, capsys, "config", "show")
    assert code == 3 and err.count("\n") == 1 and "config.toml: not valid TOML (nested too deeply)" in err
    (avatargen_home / "config.toml").unlink()
    deep = tmp_path / "deep.toml"
    deep.write_text(DEEP_TOML)
    monkeypatch.setenv("AVATARGEN_CATALOG", str(deep))
    code, _, err = run_main(monkeypatch, capsys, "models", "list")
    assert code == 3 and err.count("\n") == 1 and "deep.toml: not valid TOML (nested too deeply)" in err
