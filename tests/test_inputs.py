"""PATH arguments -> photo files: files, folders (by content), globs, '-' for stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from avatargen.errors import InputError
from avatargen.inputs import collect_inputs
from helpers.images import save_photo


def photo(path: Path, fmt: str = "PNG") -> Path:
    return save_photo(path, (8, 8), (90, 30, 200), format=fmt)


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.fixture
def album(tmp_path) -> Path:
    """A folder of photos mixed with things that are not photos."""
    folder = tmp_path / "album"
    photo(folder / "b.jpg", "JPEG")
    photo(folder / "a.png")
    photo(folder / "scan", "TIFF")  # no extension: still a photo by content
    photo(folder / "renamed.txt", "PNG")  # wrong extension: still a photo by content
    (folder / "notes.jpg").write_text("not a photo, despite the name")
    (folder / "readme.md").write_text("# album")
    photo(folder / ".hidden.png")
    photo(folder / ".a.png.1234.tmp")  # one of our temporary outputs
    photo(folder / "sub" / "deep.png")
    photo(folder / "sub" / "deeper" / "deepest.jpg", "JPEG")
    photo(folder / ".thumbnails" / "thumb.png")
    return folder


def test_a_file_is_kept(tmp_path):
    path = photo(tmp_path / "me.jpg", "JPEG")
    assert collect_inputs([str(path)]) == [path]


def test_a_named_non_image_is_kept_to_fail_later(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert collect_inputs([str(notes)]) == [notes]


def test_folder_images_are_recognised_by_content(album):
    found = collect_inputs([str(album)])
    assert names(found) == ["a.png", "b.jpg", "renamed.txt", "scan"]


def test_recursive_walks_subfolders_but_not_hidden_ones(album):
    found = collect_inputs([str(album)], recursive=True)
    assert [str(p.relative_to(album)) for p in found] == [
        "a.png",
        "b.jpg",
        "renamed.txt",
        "scan",
        "sub/deep.png",
        "sub/deeper/deepest.jpg",
    ]


def test_an_empty_folder_gives_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert collect_inputs([str(tmp_path / "empty")]) == []


def test_globs(album):
    assert names(collect_inputs([str(album / "*.jpg")])) == ["b.jpg", "notes.jpg"]  # named by the pattern
    assert names(collect_inputs([str(album / "?.png")])) == ["a.png"]
    assert names(collect_inputs([str(album / "[ab].*")])) == ["a.png", "b.jpg"]


def test_recursive_glob(album):
    found = collect_inputs([str(album / "**" / "*.png")], recursive=True)
    assert names(found) == ["a.png", "deep.png"]


def test_a_glob_matching_a_folder_takes_its_photos(album):
    assert names(collect_inputs([str(album / "su*")])) == ["deep.png"]


def test_a_glob_matching_nothing_names_the_pattern(album):
    pattern = str(album / "*.heic")
    with pytest.raises(InputError) as refused:
        collect_inputs([pattern])
    assert pattern in refused.value.message
    assert "matches no file" in refused.value.message


def test_a_file_whose_name_looks_like_a_glob_is_taken_as_is(tmp_path):
    odd = photo(tmp_path / "me [1].png")
    assert collect_inputs([str(odd)]) == [odd]


def test_a_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "me.jpg"
    with pytest.raises(InputError) as refused:
        collect_inputs([str(missing)])
    assert str(missing) in refused.value.message
    assert "no such file" in refused.value.message


def test_paths_from_stdin(album, tmp_path):
    extra = photo(tmp_path / "extra.png")
    stream = io.StringIO(f"{album / 'a.png'}\n\n  {extra}  \n{album / 'sub'}\n")
    found = collect_inputs(["-"], stdin=stream)
    assert names(found) == ["a.png", "extra.png", "deep.png"]


def test_stdin_mixed_with_arguments_and_a_bad_line(album):
    with pytest.raises(InputError, match="missing.png"):
        collect_inputs([str(album / "b.jpg"), "-"], stdin=io.StringIO(str(album / "missing.png") + "\n"))
    found = collect_inputs([str(album / "b.jpg"), "-"], stdin=io.StringIO(f"{album / '*.png'}\n"))
    assert names(found) == ["b.jpg", "a.png"]


class _UntouchableStdin:
    def __iter__(self):
        raise AssertionError("the real stdin was read")


def test_a_dash_line_in_stdin_does_not_read_the_real_stdin(album, monkeypatch):
    monkeypatch.setattr("sys.stdin", _UntouchableStdin())
    found = collect_inputs(["-"], stdin=io.StringIO(f"-\n{album / 'a.png'}\n"))
    assert names(found) == ["a.png"]


def test_duplicates_are_removed_keeping_the_first_order(album, monkeypatch):
    monkeypatch.chdir(album)
    found = collect_inputs(["b.jpg", str(album), str(album / "b.jpg"), "./a.png", "*.png"])
    assert found[0] == Path("b.jpg")
    assert [p.resolve() for p in found] == [
        album / "b.jpg",
        album / "a.png",
        album / "renamed.txt",
        album / "scan",
    ]


def test_home_is_expanded_in_paths_and_globs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    photo(tmp_path / "pics" / "me.png")
    assert names(collect_inputs(["~/pics/me.png"])) == ["me.png"]
    assert names(collect_inputs(["~/pics/*.png"])) == ["me.png"]
