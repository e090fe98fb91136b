"""Identity, client side: face crops found offline (MediaPipe), the --identity-scale / --ref /
--person / --strength options, avatar sets of several poses, and what metadata and history keep.

The real CLI runs in-process against tests/fake_endpoint.FakeEndpoint (the endpoint contract on
127.0.0.1), so the bodies it receives can be checked and face detection counted."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest

from avatargen import faces
from avatargen.images import read_metadata
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def identity_default(monkeypatch):
    """These tests see the real default (identity on, from the catalog) and a fresh crop cache."""
    monkeypatch.delenv("AVATARGEN_IDENTITY_SCALE", raising=False)
    monkeypatch.setattr(faces, "_shared", faces.FaceCache())


@pytest.fixture
def crops_made(monkeypatch) -> list[str]:
    """Every face detection + crop the run makes (the source it was made from)."""
    made: list[str] = []
    real = faces.crop_face

    def counting(photo, source):
        made.append(source)
        return real(photo, source)

    monkeypatch.setattr(faces, "crop_face", counting)
    return made


def astronaut(shift: int = 0):
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())  # a real face, shipped with scikit-image
    return img.crop((shift, shift, 512 - 16 + shift, 512 - 16 + shift)) if shift else img


def save(img, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=92)
    return path


def faces_of(count: int, folder: Path) -> list[Path]:
    """`count` different photos (different bytes) of the same face."""
    return [save(astronaut(shift=4 * i), folder / f"p{i}.jpg") for i in range(count)]


def no_face(path: Path) -> Path:
    from PIL import Image
    from skimage import data

    return save(Image.fromarray(data.chelsea()), path)  # a cat


def generate(monkeypatch, capsys, url: str, out: Path, *args: str):
    code, stdout, stderr = run_main(
        monkeypatch, capsys, "generate", *args, "--endpoint", url, "-o", str(out), "--json"
    )
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return code, lines, stderr


def sent_bodies(endpoint) -> list[dict]:
    return [r["inputs"] for r in endpoint.requests if r["method"] == "POST"]


def decode(b64: str):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64)))


def balance(monkeypatch, capsys) -> int:
    code, out, _ = run_main(monkeypatch, capsys, "credits", "--json")
    assert code == 0
    return json.loads(out)["balance"]


# ------------------------------------------------------------------ the face crop
@pytest.mark.slow
def test_the_crop_is_square_and_holds_the_face():
    photo = astronaut()
    (face,) = faces.detect_faces(photo)
    crop = faces.crop_face(photo, "astronaut.png")
    left, top, right, bottom = crop.box
    assert right - left == bottom - top  # square
    fx, fy, fw, fh = face
    assert left <= fx and top <= fy and right >= fx + fw and bottom >= fy + fh  # the face, with margin
    assert right - left > 1.5 * max(fw, fh)
    from PIL import Image

    assert Image.open(io.BytesIO(crop.png)).size == (faces.CROP_SIZE, faces.CROP_SIZE)
    # The crop, not the photo, is what travels: a few dozen KB.
    assert len(crop.png) < 150_000


@pytest.mark.slow
@pytest.mark.parametrize("big_on_the_left", [True, False])
def test_the_largest_of_two_faces_is_taken(big_on_the_left):
    from PIL import Image

    big, small = astronaut(), astronaut().resize((288, 288))
    canvas = Image.new("RGB", (800, 512), (200, 200, 200))
    if big_on_the_left:
        canvas.paste(big, (0, 0))
        canvas.paste(small, (512, 40))
    else:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        canvas.paste(big, (288, 0))
        canvas.paste(small, (0, 40))
    assert len(faces.detect_faces(canvas)) == 2
    left, _, right, _ = faces.crop_face(canvas, "two.png").box
    centre = (left + right) / 2
    assert (centre < 512) if big_on_the_left else (centre > 288)


@pytest.mark.slow
def test_exif_orientation_is_applied_before_looking_for_the_face(tmp_path):
    from PIL import Image

    # Stored on its side, with the EXIF tag that says "rotate 90°": upright, the face is found.
    sideways = astronaut().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 CW to view
    path = tmp_path / "sideways.jpg"
    sideways.save(path, exif=exif, quality=92)
    assert faces.face_crop(path).box  # no InputError


def test_missing_pose_extra_names_the_install_and_the_way_out(monkeypatch, capsys, tmp_path):
    """No MediaPipe here and a handler that cannot find faces either (issue 23: an endpoint that
    can gets the photo instead, tests/test_thin_client_23.py)."""
    from avatargen.errors import MissingExtra

    def missing():
        raise MissingExtra("pose", "pose extraction")

    monkeypatch.setattr("avatargen.poses.extract.require_mediapipe", missing)
    photo = save(astronaut(), tmp_path / "me.jpg")
    with FakeEndpoint(handler="avatargen-no-faces") as endpoint:
        code, _, err = generate(monkeypatch, capsys, endpoint.url, tmp_path / "out", str(photo))
    assert code == 11, err
    assert "pip install 'avatargen[pose]'" in err and "--identity-scale 0" in err
    assert "cannot find faces either" in err
    assert endpoint.posts == 0


# ------------------------------------------------------------------ no face, scale 0
@pytest.mark.slow
def test_no_face_fails_the_job_with_exit_5_naming_the_file(monkeypatch, capsys, tmp_path, endpoint):
    cat = no_face(tmp_path / "cat.jpg")
    code, lines, err = generate(monkeypatch, capsys, endpoint.url, tmp_path / "out", str(cat))
    assert code == 5
    (line,) = lines
    assert line["status"] == "failed" and line["error"] == f"no face found in {cat}"
    assert endpoint.posts == 0
    assert balance(monkeypatch, capsys) == 100  # refunded


def test_a_ref_without_a_face_stops_before_anything_is_spent(monkeypatch, capsys, tmp_path, endpoint):
    photo = save(astronaut(), tmp_path / "me.jpg")
    cat = no_face(tmp_path / "cat.jpg")
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, tmp_path / "out", str(photo), "--ref", str(cat)
    )
    assert code == 5 and lines == [] and endpoint.posts == 0
    assert f"no face found in {cat}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_scale_0_skips_detection_and_sends_no_identity(monkeypatch, capsys, tmp_path, endpoint):
    def never(_photo):
        raise AssertionError("face detection ran with --identity-scale 0")

    monkeypatch.setattr(faces, "detect_faces", never)
    cat = no_face(tmp_path / "cat.jpg")
    code, lines, _ = generate(
        monkeypatch, capsys, endpoint.url, tmp_path / "out", str(cat), "--identity-scale", "0"
    )
    assert code == 0 and lines[0]["status"] == "done"
    (body,) = sent_bodies(endpoint)
    assert "ip_adapter_image" not in body and "ip_adapter_scale" not in body
    assert "identity" not in read_metadata(lines[0]["output"])


@pytest.mark.slow
def test_a_model_without_an_adapter_refuses_a_scale_and_is_off_by_default(
    monkeypatch, capsys, tmp_path, endpoint
):
    catalog = str(REPO / "examples" / "my-models.toml")
    cat = no_face(tmp_path / "cat.jpg")  # no face needed: identity is off for this model
    base = ("--catalog", catalog, "generate", str(cat), "--model", "anime-openpose-sd15")
    code, _, err = run_main(monkeypatch, capsys, *base, "--identity-scale", "0.5", "--endpoint", endpoint.url)
    assert code == 2 and "--identity-scale 0.5" in err and "no identity adapter" in err
    code, out, err = run_main(
        monkeypatch, capsys, *base, "--endpoint", endpoint.url, "-o", str(tmp_path / "o"), "--json"
    )
    assert code == 0, err
    assert "ip_adapter_image" not in sent_bodies(endpoint)[0]


# ------------------------------------------------------------------ avatar sets
@pytest.mark.slow
def test_a_set_of_3_poses_for_4_photos(monkeypatch, capsys, tmp_path, endpoint, crops_made):
    photos = faces_of(4, tmp_path / "photos")
    out = tmp_path / "out"
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, out, str(tmp_path / "photos"), "--pose", "wave,sitting,t-pose"
    )
    assert code == 0, err
    assert [line["status"] for line in lines] == ["done"] * 12
    assert len({line["output"] for line in lines}) == 12 and len(list(out.glob("*.png"))) == 12
    assert {(Path(line["input"]).name, line["pose"]) for line in lines} == {
        (p.name, pose) for p in photos for pose in ("wave", "sitting", "t-pose")
    }
    assert balance(monkeypatch, capsys) == 100 - 12 * 3  # 12 charges
    assert sorted(crops_made) == sorted(str(p) for p in photos)  # each face found once, not per pose
    bodies = sent_bodies(endpoint)
    assert len(bodies) == 12
    for body in bodies:
        assert body["ip_adapter_scale"] == 0.6  # the catalog's default
        assert decode(body["ip_adapter_image"]).size == (224, 224)  # one crop: a plain string

    code, lines, _ = generate(
        monkeypatch, capsys, endpoint.url, out, str(tmp_path / "photos"), "--pose", "wave,sitting,t-pose"
    )
    assert code == 0 and [line["status"] for line in lines] == ["skipped"] * 12
    assert endpoint.posts == 12  # a re-run sends nothing
    assert balance(monkeypatch, capsys) == 64


def test_pose_option_repeated_or_all(monkeypatch, capsys, tmp_path, endpoint):
    from avatargen.plan import pose_specs
    from avatargen.poses.templates import template_names

    assert pose_specs(["wave", "sitting,t-pose", "wave"]) == ["wave", "sitting", "t-pose"]
    assert pose_specs(["all"]) == template_names() and len(template_names()) == 13
    photo = save(astronaut(), tmp_path / "me.jpg")
    code, out, err = run_main(
        monkeypatch, capsys, "generate", str(photo), "-p", "wave", "-p", "all", "--dry-run", "--json"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["images"] == 13 and len({j["output_path"] for j in plan["jobs"]}) == 13


def test_a_name_template_without_pose_gets_it_for_a_set(monkeypatch, capsys, tmp_path):
    photo = save(astronaut(), tmp_path / "me.jpg")
    code, out, err = run_main(
        monkeypatch, capsys, "generate", str(photo), "-p", "wave,sitting", "--name", "{stem}.png",
        "--dry-run", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(Path(j["output_path"]).name for j in json.loads(out)["jobs"]) == [
        "me-sitting.png",
        "me-wave.png",
    ]


# ------------------------------------------------------------------ references
@pytest.mark.slow
def test_ref_adds_its_face_crop_to_every_job(monkeypatch, capsys, tmp_path, endpoint, crops_made):
    photos = faces_of(2, tmp_path / "photos")
    ref = save(astronaut().transpose(0), tmp_path / "refs" / "mirror.jpg")  # mirrored: another crop
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, tmp_path / "out", str(tmp_path / "photos"),
        "--ref", str(ref), "--pose", "wave,sitting",
    )  # fmt: skip
    assert code == 0, err
    assert len(crops_made) == 3  # two photos and the reference, each once
    ref_crop = faces.face_crop(ref).png
    for body in sent_bodies(endpoint):
        own, extra = body["ip_adapter_image"]  # a list: the photo's crop, then the reference's
        assert base64.b64decode(extra) == ref_crop and base64.b64decode(own) != ref_crop
    # The reference is part of the job: without it, it is another job (not "already done").
    _, out, _ = run_main(
        monkeypatch, capsys, "generate", str(photos[0]), "--pose", "wave", "-o", str(tmp_path / "out"),
        "--dry-run", "--json",
    )  # fmt: skip
    quote = json.loads(out)
    assert quote["already_done"] == 0 and quote["exists"] == 1  # same file name, another job


@pytest.mark.slow
def test_person_folders(monkeypatch, capsys, tmp_path, endpoint):
    people = tmp_path / "people"
    alice = faces_of(3, people / "alice")
    bob = faces_of(1, people / "bob")
    (people / "empty").mkdir()
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, tmp_path / "out", "--person", str(people), "--pose", "wave,sitting"
    )
    assert code == 0, err
    assert sorted((Path(line["output"]).name.split("-")[0], line["pose"]) for line in lines) == [
        ("alice", "sitting"),
        ("alice", "wave"),
        ("bob", "sitting"),
        ("bob", "wave"),
    ]
    assert {line["input"] for line in lines} == {str(alice[0]), str(bob[0])}  # the first photo by name
    sizes = sorted(
        len(b["ip_adapter_image"]) if isinstance(b["ip_adapter_image"], list) else 1
        for b in sent_bodies(endpoint)
    )
    assert sizes == [1, 1, 3, 3]  # bob: his photo; alice: hers and her two others


# ------------------------------------------------------------------ metadata and history
@pytest.mark.slow
def test_metadata_and_history_record_the_adapter_scale_and_reference_hashes(
    monkeypatch, capsys, tmp_path, endpoint
):
    photo = save(astronaut(), tmp_path / "me.jpg")
    ref = save(astronaut().transpose(0), tmp_path / "private" / "other.jpg")
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, tmp_path / "out", str(photo), "--ref", str(ref),
        "--identity-scale", "0.8", "--pose", "wave",
    )  # fmt: skip
    assert code == 0, err
    meta = read_metadata(lines[0]["output"])
    identity = meta["identity"]
    assert identity["adapter"] == {
        "repo": "h94/IP-Adapter",
        "subfolder": "models",
        "weight_name": "ip-adapter-plus-face_sd15.safetensors",
        "image_encoder_folder": "models/image_encoder",
    }
    assert identity["scale"] == 0.8
    assert identity["references"] == [hashlib.sha256(ref.read_bytes()).hexdigest()]
    (body,) = sent_bodies(endpoint)
    assert identity["crops"] == [
        hashlib.sha256(base64.b64decode(c)).hexdigest() for c in body["ip_adapter_image"]
    ]
    from PIL import Image

    with Image.open(lines[0]["output"]) as png:
        assert "private" not in json.dumps(png.text)  # the reference's path is never written
    code, out, _ = run_main(monkeypatch, capsys, "history", "--json")
    assert code == 0
    params = json.dumps(json.loads(out.splitlines()[0]))
    assert hashlib.sha256(ref.read_bytes()).hexdigest() in params and "private" not in params
    assert "ip-adapter-plus-face_sd15.safetensors" in params and "0.8" in params


@pytest.mark.slow
def test_img2img_is_opt_in(monkeypatch, capsys, tmp_path, endpoint):
    photo = save(astronaut(), tmp_path / "me.jpg")
    generate(monkeypatch, capsys, endpoint.url, tmp_path / "a", str(photo))
    generate(monkeypatch, capsys, endpoint.url, tmp_path / "b", str(photo), "--strength", "0.5")
    first, second = [r for r in endpoint.requests if r["method"] == "POST"]
    assert not first["has_init_image"] and "strength" not in first["inputs"]
    assert second["has_init_image"] and second["inputs"]["strength"] == 0.5


# ------------------------------------------------------------------ the contact sheet
@pytest.mark.slow
def test_the_contact_sheet_puts_each_persons_set_in_one_row(monkeypatch, capsys, tmp_path, endpoint):
    from avatargen.sheet import GAP, grid_geometry

    faces_of(2, tmp_path / "photos")
    out = tmp_path / "out"
    code, lines, err = generate(
        monkeypatch, capsys, endpoint.url, out, str(tmp_path / "photos"), "--pose", "wave,sitting,t-pose"
    )
    assert code == 0, err
    code, stdout, err = run_main(
        monkeypatch, capsys, "sheet", str(out), "-o", str(tmp_path / "sheet.png"), "--thumb", "64", "--json"
    )
    assert code == 0, err
    sheet = json.loads(stdout)
    geo = grid_geometry(6, 3, 64)
    assert sheet["images"] == 6 and sheet["columns"] == 3
    assert sheet["size"] == [geo["width"], geo["height"]] and geo["rows"] == 2  # a row per photo
    from PIL import Image

    from avatargen.images import read_metadata

    # Each row holds one photo's three poses: the files in reading order, grouped by input.
    by_name = sorted(out.glob("*.png"))
    rows = {}
    for path in by_name:
        rows.setdefault(read_metadata(path)["input_hash"], []).append(path)
    assert sorted(len(r) for r in rows.values()) == [3, 3]
    with Image.open(tmp_path / "sheet.png") as page:
        assert page.size == (GAP + 3 * (64 + GAP), geo["height"])
