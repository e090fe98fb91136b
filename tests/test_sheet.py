"""`avatargen sheet`: the grid's geometry, its labels from PNG text chunks, pages, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from avatargen.errors import InputError, UsageError
from avatargen.images import sd_parameters
from avatargen.sheet import GAP, grid_geometry, label_for, make_sheet, parse_parameters

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (240, 220, 30), (200, 60, 200)]


def _meta(i: int) -> dict:
    return {
        "job_key": f"job{i}",
        "model": "avatar-generator:controlnet-openpose-sdxl",
        "pose": ["wave", "t-pose", "/poses/custom.json"][i % 3],
        "seed": 100 + i,
        "input": f"photo{i}.jpg",
        "prompt": "portrait",
        "negative_prompt": "blurry",
        "steps": 30,
        "guidance_scale": 7.5,
        "width": 512,
        "height": 512,
        "controlnet_conditioning_scale": 1.0,
    }


def _write_png(path: Path, colour, size=(512, 512), chunks: dict | None = None) -> None:
    info = PngImagePlugin.PngInfo()
    for key, value in (chunks or {}).items():
        info.add_text(key, value)
    Image.new("RGB", size, colour).save(path, pnginfo=info)


@pytest.fixture
def batch(tmp_path) -> Path:
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, colour in enumerate(COLOURS):
        meta = _meta(i)
        _write_png(
            folder / f"photo{i}-out.png",
            colour,
            chunks={"parameters": sd_parameters(meta), "avatargen": json.dumps(meta)},
        )
    (folder / "notes.txt").write_text("not an image")
    return folder


def _cell_origin(index: int, geo: dict) -> tuple[int, int]:
    row, col = divmod(index, geo["columns"])
    return GAP + col * (geo["cell_w"] + GAP), GAP + row * (geo["cell_h"] + GAP)


@pytest.mark.slow
def test_sheet_matches_the_grid_and_shows_every_image(run_cli, batch, tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("sheet", str(batch), "-o", str(out), "--columns", "2", "--thumb", "64", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pages"] == [str(out)] and report["images"] == 5 and report["unreadable"] == []

    geo = grid_geometry(5, 2, 64)
    assert (geo["columns"], geo["rows"]) == (2, 3)
    with Image.open(out) as sheet:
        sheet = sheet.convert("RGB")
    assert sheet.size == (geo["width"], geo["height"]) == tuple(report["size"])
    for index, colour in enumerate(COLOURS):  # files sort photo0..photo4
        x, y = _cell_origin(index, geo)
        assert sheet.getpixel((x + 32, y + 32)) == colour
        # The label area under the thumbnail holds text: some light pixels.
        label = sheet.crop((x, y + 64, x + geo["cell_w"], y + geo["cell_h"]))
        assert max(hi for _lo, hi in label.getextrema()) > 150
    # The sixth cell of the 2x3 grid is empty background.
    x, y = _cell_origin(5, geo)
    assert sheet.getpixel((x + 32, y + 32)) == (24, 24, 24)


@pytest.mark.slow
def test_plain_output_lists_the_pages_on_stdout(run_cli, batch, tmp_path):
    out = tmp_path / "sheet.jpg"
    result = run_cli("sheet", str(batch), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert "5 images on 1 page" in result.stderr
    with Image.open(out) as img:
        assert img.format == "JPEG"
    assert not list(tmp_path.glob(".*.tmp"))


def test_labels_from_avatargen_chunk_then_parameters_then_name(tmp_path):
    meta = _meta(2)
    path = tmp_path / "x.png"
    both = label_for(path, {"avatargen": json.dumps(meta), "parameters": "ignored"})
    assert (both.name, both.pose, both.model, both.seed) == (
        "x.png",
        "custom.json",
        "controlnet-openpose-sdxl",
        "102",
    )

    only_params = label_for(path, {"parameters": sd_parameters(_meta(1))})
    assert (only_params.pose, only_params.model, only_params.seed) == (
        "t-pose",
        "controlnet-openpose-sdxl",
        "101",
    )

    bare = label_for(path, {})
    assert bare.lines() == ["x.png", "", ""]
    broken = label_for(path, {"avatargen": "{not json"})
    assert broken.lines() == ["x.png", "", ""]


def test_parse_parameters_reads_the_a1111_line():
    text = "a prompt, Seed: 9 in the prompt\nNegative prompt: x\nSteps: 30, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: m:k, Pose: wave"
    assert parse_parameters(text) == {"seed": "123", "model": "m:k", "pose": "wave"}
    assert parse_parameters("") == {}


def test_labels_come_from_the_files_on_the_sheet(batch, tmp_path, monkeypatch):
    seen = []
    import avatargen.sheet as sheet_mod

    real = sheet_mod.label_for
    monkeypatch.setattr(sheet_mod, "label_for", lambda p, t: seen.append(real(p, t)) or seen[-1])
    make_sheet(batch, tmp_path / "s.png", thumb=32)
    assert [(label.name, label.pose, label.seed) for label in seen] == [
        (f"photo{i}-out.png", ["wave", "t-pose", "custom.json"][i % 3], str(100 + i)) for i in range(5)
    ]


def test_pages_split_and_earlier_sheets_are_not_included(batch, tmp_path):
    out = batch / "sheet.png"  # written into the folder it reads, twice
    first = make_sheet(batch, out, columns=2, thumb=32, per_page=2)
    assert [p.name for p in first.pages] == ["sheet-1.png", "sheet-2.png", "sheet-3.png"]
    second = make_sheet(batch, out, columns=2, thumb=32, per_page=2)
    assert second.images == 5  # its own pages from the first run were skipped
    with Image.open(batch / "sheet-3.png") as last:
        assert last.size == (grid_geometry(1, 2, 32)["width"], grid_geometry(1, 2, 32)["height"])


def test_odd_sizes_transparency_and_unreadable_files(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    _write_png(folder / "a-wide.png", (10, 200, 10), size=(400, 100))
    Image.new("RGBA", (50, 50), (255, 0, 0, 0)).save(folder / "b-clear.png")
    (folder / "c-broken.png").write_bytes(b"\x89PNG not really")
    result = make_sheet(folder, tmp_path / "s.png", columns=3, thumb=64)
    assert result.images == 3
    assert [p.name for p in result.unreadable] == ["c-broken.png"]
    geo = grid_geometry(3, 3, 64)
    with Image.open(tmp_path / "s.png") as sheet:
        sheet = sheet.convert("RGB")
        x, y = _cell_origin(0, geo)
        assert sheet.getpixel((x + 32, y + 32)) == (10, 200, 10)  # 400x100 fitted to 64x16, centred
        assert sheet.getpixel((x + 32, y + 5)) == (40, 40, 40)  # letterbox
        x, y = _cell_origin(1, geo)
        assert sheet.getpixel((x + 32, y + 32)) == (40, 40, 40)  # fully transparent: cell colour


@pytest.mark.slow
def test_empty_folder_is_an_input_error_naming_it(run_cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match=str(empty)):
        make_sheet(empty, tmp_path / "s.jpg")
    result = run_cli("sheet", str(empty), "-o", str(tmp_path / "s.jpg"))
    assert result.returncode == 5
    assert str(empty) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s.jpg").exists()


def test_missing_folder_and_bad_options(tmp_path, batch):
    with pytest.raises(InputError, match="not a folder"):
        make_sheet(tmp_path / "nope", tmp_path / "s.jpg")
    with pytest.raises(UsageError, match="-o"):
        make_sheet(batch, tmp_path / "s.gif")
    with pytest.raises(UsageError, match="--thumb"):
        make_sheet(batch, tmp_path / "s.jpg", thumb=5000)
    with pytest.raises(UsageError, match="--columns"):
        make_sheet(batch, tmp_path / "s.jpg", columns=0)
