"""`avatargen poses list|show|extract` from the command line."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image

from avatargen.errors import MissingExtra, UsageError
from avatargen.poses.keypoints import COLORS
from avatargen.poses.templates import load_templates
from cli_helpers import run_main


def test_list_json_has_every_template(cli):
    result = cli("poses", "list", "--json")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert {r["name"] for r in records} == set(load_templates())
    assert all(r["description"] and r["framing"] in ("full-body", "upper-body") for r in records)


def test_list_table(cli):
    result = cli("poses", "list")
    assert result.exit_code == 0
    assert "hands-on-hips" in result.stdout and "upper-body" in result.stdout


@pytest.mark.slow
def test_show_wave_draws_a_skeleton(run_cli, tmp_path):
    out = tmp_path / "wave.png"
    result = run_cli("poses", "show", "wave", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    with Image.open(out) as im:
        assert im.size == (512, 768) and im.mode == "RGB"
        colours = {c for _, c in im.getcolors(maxcolors=100_000)}
    assert (0, 0, 0) in colours and set(COLORS) <= colours  # every joint of the wave is there


def test_show_size_and_json(cli, tmp_path):
    out = tmp_path / "sub" / "p.png"
    result = cli("poses", "show", "portrait", "-o", str(out), "--size", "768x1024", "--json")
    assert result.exit_code == 0
    record = json.loads(result.stdout)
    assert record == {
        "pose": "portrait",
        "output": str(out),
        "width": 768,
        "height": 1024,
        "framing": "upper-body",
        "description": load_templates()["portrait"].description,
    }
    with Image.open(out) as im:
        assert im.size == (768, 1024)


def test_show_default_output_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli("poses", "show", "portrait").exit_code == 0
    with Image.open(tmp_path / "portrait.png") as im:
        assert im.size == (512, 512)


def test_show_a_pose_json_at_its_canvas(cli, tmp_path):
    src = tmp_path / "mine.json"
    load_templates()["jumping"].pose.save(src)
    out = tmp_path / "mine.png"
    result = cli("poses", "show", str(src), "-o", str(out), "--json")
    record = json.loads(result.stdout)
    pose = load_templates()["jumping"].pose
    assert (record["width"], record["height"]) == (round(pose.canvas_width), round(pose.canvas_height))


@pytest.mark.parametrize("size", ["768", "axb", "10x10", "768x1024x2"])
def test_show_bad_size(cli, size, tmp_path):
    with pytest.raises(UsageError, match="--size"):
        cli("poses", "show", "wave", "-o", str(tmp_path / "x.png"), "--size", size)


@pytest.mark.slow
def test_show_unknown_pose_exit_code(run_cli, tmp_path):
    result = run_cli("poses", "show", "wavy", "-o", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "unknown pose 'wavy'" in result.stderr and "'wave'" in result.stderr
    assert result.stdout == ""


def test_show_auto_is_a_usage_error(cli, tmp_path):
    with pytest.raises(UsageError, match="auto"):
        cli("poses", "show", "auto", "-o", str(tmp_path / "x.png"))


def test_extract_without_mediapipe(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    photo = tmp_path / "me.png"
    Image.new("RGB", (64, 64)).save(photo)
    with pytest.raises(MissingExtra, match="pose extraction"):
        cli("poses", "extract", str(photo), "-o", str(tmp_path / "p.json"))


def test_every_poses_command_takes_json():
    from typer.main import get_command

    from avatargen.cli.poses import app

    group = get_command(app)
    for name, command in group.commands.items():
        assert any("--json" in p.opts for p in command.params), name


# ---------------------------------------------------------------- extract never overwrites by surprise
@pytest.fixture
def astronaut(tmp_path):
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("existing", ["json", "png"])
def test_extract_refuses_to_replace_a_file(monkeypatch, capsys, tmp_path, astronaut, existing):
    out, png = tmp_path / "me.pose.json", tmp_path / "me.png"
    target = out if existing == "json" else png
    target.write_text("keep me")
    args = ["poses", "extract", str(astronaut), "-o", str(out), "--png", str(png)]
    code, stdout, err = run_main(monkeypatch, capsys, *args)
    assert code == 5 and stdout == ""
    assert err == f"error: {target}: already exists — pass --overwrite to replace it\n"
    assert target.read_text() == "keep me"
    assert not (png if existing == "json" else out).exists()  # nothing half-done either

    code, stdout, err = run_main(monkeypatch, capsys, *args, "--overwrite")
    assert code == 0, err
    assert json.loads(out.read_text())["people"] and png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_extract_writes_the_default_name_only_once(monkeypatch, capsys, tmp_path, astronaut):
    monkeypatch.chdir(tmp_path)
    assert run_main(monkeypatch, capsys, "poses", "extract", str(astronaut))[0] == 0
    code, _, err = run_main(monkeypatch, capsys, "poses", "extract", str(astronaut))
    assert code == 5 and "astronaut.pose.json: already exists" in err and "--overwrite" in err


def test_extract_of_a_truncated_photo_names_it_once(monkeypatch, capsys, tmp_path):
    photo = tmp_path / "trunc.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(photo)
    photo.write_bytes(photo.read_bytes()[:300])
    code, _, err = run_main(monkeypatch, capsys, "poses", "extract", str(photo))
    assert code == 5 and err.count("trunc.jpg") == 1, err
