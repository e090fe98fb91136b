"""Issue 25 (1): the weights are part of what a job is. A `--tiny` trial (random weights, noise)
gets its own job key, output name and metadata, so it never stands in for the real avatar: after
it, the real run (offline here) must try, and fail with exit 6, not skip; and a `retry --tiny` of
a real batch that could not load its weights makes tiny jobs beside the real ones."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import json
from pathlib import Path

from avatargen.images import read_metadata
from serve_fixtures import tiny_home, tiny_models  # noqa: F401 - fixtures
from test_generate_e2e import json_lines

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {"PYTHONPATH": SRC}  # the CLI runs from tmp_path: this checkout's source first


def _photo(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "me.png"
    Image.new("RGB", (96, 128), (180, 120, 90)).save(path)
    return path


def _balance(run_cli) -> int:
    return json.loads(run_cli("credits", "--json", env=ENV).stdout)["balance"]


def test_a_tiny_trial_never_stands_in_for_the_real_job(tiny_home, tmp_path, run_cli):
    photo = _photo(tmp_path / "photos")
    out = tmp_path / "avatars"
    start = _balance(run_cli)
    trial = run_cli(
        "generate", str(photo), "--tiny", "--steps", "2", "--yes", "--json", "-o", str(out), env=ENV, timeout=600
    )  # fmt: skip
    assert trial.returncode == 0, trial.stderr
    [line] = json_lines(trial.stdout)
    made = Path(line["output"])
    assert made.name.endswith("-tiny.png"), made  # not the real avatar's name
    meta = read_metadata(made)
    assert meta["weights"].startswith("tiny-v") and "noise" in meta["weights_note"]
    history = run_cli("history", env=ENV).stdout
    assert "(tiny)" in history, history
    # The real job, offline without its weights: it is tried (exit 6), not "skipped 1".
    real = run_cli("generate", str(photo), "--steps", "2", "--yes", "--json", "-o", str(out), env=ENV)
    assert real.returncode == 6, (real.returncode, real.stdout, real.stderr)
    assert "HF_HUB_OFFLINE" in real.stderr and "skipped" not in real.stdout
    assert _balance(run_cli) == start - 3  # the trial's 3 credits; the failed real job refunded
    # The same real command with --overwrite: tried as well, never "already done".
    again = run_cli("generate", str(photo), "--steps", "2", "--yes", "--overwrite", "-o", str(out), env=ENV)
    assert again.returncode == 6, again.stderr
    assert made.is_file()  # the trial's image is not touched by the real job


def test_retry_with_tiny_of_a_real_batch_makes_tiny_jobs_beside_the_real_ones(tiny_home, tmp_path, run_cli):
    photo = _photo(tmp_path / "photos")
    out = tmp_path / "avatars"
    real = run_cli("generate", str(photo), "--steps", "2", "--yes", "-o", str(out), env=ENV)
    assert real.returncode == 6, real.stderr
    assert "avatargen retry" in real.stderr  # the way forward it names
    tried = run_cli("retry", "--tiny", "--steps", "2", "--json", env=ENV, timeout=600)
    assert tried.returncode == 0, tried.stderr
    [line] = [entry for entry in json_lines(tried.stdout) if entry.get("status") == "done"]
    assert Path(line["output"]).name.endswith("-tiny.png")
    assert read_metadata(Path(line["output"]))["steps"] == 2  # retry took --steps
    # The real job is still not done: the real command tries it again (exit 6), never skips it.
    again = run_cli("generate", str(photo), "--steps", "2", "--yes", "--json", "-o", str(out), env=ENV)
    assert again.returncode == 6, (again.stdout, again.stderr)
    assert '"skipped"' not in again.stdout
