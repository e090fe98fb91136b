"""Issue 23 items 11 and 12: what PATH, -o and `sheet` say about the files a new user gives.

`sheet DIR` says where it wrote; `-o file.txt` is "a file, not a folder" (not "File exists ...
free disk space"); a folder of broken .jpg files names them instead of "no photos found"; a FIFO
given as PATH is named as one (it was "no such file or folder"); --steps/--guidance show their
default in --help.
"""

from __future__ import annotations

import os
import socket

import pytest
from PIL import Image

from cli_helpers import run_main


@pytest.fixture
def photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AVATARGEN_NO_LOCAL", "1")
    path = tmp_path / "me.jpg"
    Image.new("RGB", (64, 64), "red").save(path)
    return path


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def error_line(err: str) -> str:
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize("output", ["file.txt", "file.txt/sub"])
def test_output_that_is_a_file(monkeypatch, capsys, photo, output):
    (photo.parent / "file.txt").write_text("mine")
    code, _, err = run_main(
        monkeypatch, capsys, "generate", str(photo), "-o", output, "--endpoint", closed_port_url()
    )
    assert code == 74, err  # the output folder cannot be written (errors.IO_ERROR)
    line = error_line(err)
    assert "file.txt is a file, not a folder" in line and "-o" in line
    assert "disk space" not in line
    assert (photo.parent / "file.txt").read_text() == "mine"


def test_folder_of_broken_jpgs_names_them(monkeypatch, capsys, photo, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"not a jpeg at all")
    (folder / "b.jpeg").write_bytes(b"")
    code, _, err = run_main(monkeypatch, capsys, "generate", str(folder), "--endpoint", closed_port_url())
    assert code == 5, err
    line = error_line(err)
    assert "a.jpg" in line and "b.jpeg" in line and "not an image" in line
    assert "no photos found" not in line


def test_an_empty_folder_still_says_no_photos(monkeypatch, capsys, photo, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(
        monkeypatch, capsys, "generate", str(tmp_path / "empty"), "--endpoint", closed_port_url()
    )
    assert code == 5, err
    assert "no photos found" in error_line(err)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_as_path_is_named(monkeypatch, capsys, photo, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run_main(monkeypatch, capsys, "generate", str(fifo), "--endpoint", closed_port_url())
    assert code == 5, err
    line = error_line(err)
    assert "named pipe" in line and "no such file" not in line


def test_sheet_says_where_it_wrote(monkeypatch, capsys, photo, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    Image.new("RGB", (32, 32), "blue").save(folder / "one.png")
    code, out, err = run_main(monkeypatch, capsys, "sheet", str(folder))
    assert code == 0, err
    assert (tmp_path / "sheet.jpg").is_file()
    assert f"written to {tmp_path}{os.sep}" in err
    assert out.strip() == "sheet.jpg"


def test_steps_and_guidance_show_their_default(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run_main(monkeypatch, capsys, "generate", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "Inference steps (default: the model's: 30 for SD 1.5" in flat
    assert "Guidance scale (default: the model's: 7.5" in flat
