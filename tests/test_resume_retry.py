"""Resume and retry as people use them: another -o is another output, retry runs the way the
batch ran and does not re-send what can never succeed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from avatargen.images import read_metadata
from fake_endpoint import FakeEndpoint
from test_generate_e2e import credits, db_rows, json_lines, make_photos


@pytest.mark.slow
def test_another_output_folder_gets_the_images_copied_at_no_charge(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 2)
    with FakeEndpoint() as fake:
        first = run_cli(
            "generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(tmp_path / "a")
        )
        assert first.returncode == 0, first.stderr
        second = run_cli(
            "generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(tmp_path / "b"), "--json"
        )
        assert second.returncode == 0, second.stderr
        assert fake.posts == 2  # nothing generated twice
    lines = json_lines(second.stdout)
    assert [line["status"] for line in lines] == ["done", "done"]
    assert {line["credits"] for line in lines} == {0}
    for line in lines:
        copy = Path(line["output"])
        assert copy.parent == tmp_path / "b" and copy.is_file()
        assert Path(line["copied_from"]).parent == tmp_path / "a"
        assert read_metadata(copy)["job_key"] == line["job_key"]
    assert credits(run_cli)["balance"] == 100 - 2 * 3
    # History points at files that exist: where each was generated, and each copy.
    history = json_lines(run_cli("history", "--json").stdout)
    assert all(Path(row["output_path"]).is_file() for row in history)
    assert len(db_rows(avatargen_home, "SELECT path FROM job_outputs")) == 2
    shown = json.loads(run_cli("history", "show", lines[0]["job_key"][:12], "--json").stdout)
    assert shown["outputs"] == [str(Path(lines[0]["copied_from"])), lines[0]["output"]]
    assert lines[0]["output"] in run_cli("history", "show", lines[0]["job_key"][:12]).stdout
    # An image deleted everywhere is made again (and charged again), into the folder asked for.
    for png in [*(tmp_path / "a").glob("*.png"), *(tmp_path / "b").glob("*.png")]:
        png.unlink()
    with FakeEndpoint() as fake:
        third = run_cli(
            "generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(tmp_path / "c"), "--json"
        )
        assert third.returncode == 0, third.stderr
        assert fake.posts == 2
    assert len(list((tmp_path / "c").glob("*.png"))) == 2
    assert credits(run_cli)["balance"] == 100 - 4 * 3


@pytest.mark.slow
def test_retry_skips_jobs_that_can_never_succeed_and_keeps_the_batch_id(tmp_path, run_cli, avatargen_home):
    photos = tmp_path / "photos"
    make_photos(photos, 2)
    (photos / "notes.jpg").write_text("not a photo, despite the name")
    with FakeEndpoint(fail_prompts=("",)) as fake:  # the two real photos fail at first (500)
        first = run_cli(
            "generate", str(photos / "person000.jpg"), str(photos / "person001.jpg"), str(photos / "notes.jpg"),
            "--endpoint", fake.url, "-o", str(tmp_path / "out"), "--json",
            env={"AVATARGEN_RETRY_SCALE": "0.01"},
        )  # fmt: skip
        assert first.returncode == 1, first.stderr  # two different failures: partial
        [(batch_id,)] = db_rows(avatargen_home, "SELECT id FROM batches")
        fake.fail_prompts = ()
        before = fake.posts
        again = run_cli("retry", "--json")
        assert again.returncode == 0, again.stderr
        assert fake.posts - before == 2  # the two photos only: notes.jpg was not re-sent
    lines = json_lines(again.stdout)
    by_status = {}
    for line in lines:
        by_status.setdefault(line["status"], []).append(line)
    assert len(by_status["done"]) == 2
    [hopeless] = by_status["skipped"]
    assert hopeless["input"].endswith("notes.jpg") and "can never succeed" in hopeless["reason"]
    assert "notes.jpg" in again.stderr and "--all" in again.stderr
    listed = [line for line in again.stderr.splitlines() if "notes.jpg" in line]
    assert len(listed) == 1 and listed[0].count("notes.jpg") == 1, listed  # named once
    assert db_rows(avatargen_home, "SELECT id FROM batches") == [(batch_id,)]  # no new batch per retry
    # --all sends it anyway (and it fails again, refunded).
    with FakeEndpoint() as fake:
        forced = run_cli("retry", "--all", "--json", "--endpoint", fake.url)
    assert forced.returncode == 5, forced.stderr
    assert [line["status"] for line in json_lines(forced.stdout)] == ["failed"]
    assert credits(run_cli)["balance"] == 100 - 2 * 3


@pytest.mark.slow
def test_retry_remembers_the_endpoint_and_never_stores_a_token(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 1)
    secret = "hf_RetryMustNotStoreThis0123456789"
    with FakeEndpoint(fail_prompts=("",)) as fake:
        first = run_cli(
            "generate", str(tmp_path / "photos"), "--endpoint", fake.url, "--token", secret,
            "--concurrency", "3", "-o", str(tmp_path / "out"), env={"AVATARGEN_RETRY_SCALE": "0.01"},
        )  # fmt: skip
        assert first.returncode == 9
        fake.fail_prompts = ()
        again = run_cli("retry", "--json")  # no --endpoint: the batch's own is used
        assert again.returncode == 0, again.stderr
        assert fake.posts >= 2
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        argv, settings = db.execute("SELECT argv, settings FROM batches").fetchone()
    assert secret not in argv and secret not in settings
    stored = json.loads(settings)
    assert stored["endpoint"] == fake.url and stored["concurrency"] == 3 and "token" not in stored
