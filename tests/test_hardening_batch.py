"""Hardening of the batch path, through the real CLI: outputs stay inside -o, a user's files are
never swept, unwritable outputs and ledgers stop cleanly with their own code, signals behave
like Ctrl-C, and concurrent runs of the same photos never see a credits problem."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from test_generate_e2e import credits, db_rows, json_lines, make_photos
from unprivileged import run_unprivileged


def generate(run_cli, photos: Path, url: str, out: Path, *extra: str, **kwargs):
    return run_cli("generate", str(photos), "--endpoint", url, "-o", str(out), "--json", *extra, **kwargs)


def one_error_line(stderr: str) -> str:
    """The one error of a run, as a line of text (from the plain or the --json form)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(("error:", '{"error"'))]
    assert len(lines) == 1, stderr
    if lines[0].startswith("{"):
        error = json.loads(lines[0])["error"]
        return f"error: {error['message']} — {error['hint']}"
    return lines[0]


# ------------------------------------------------------------------ 1. outputs stay inside -o
@pytest.mark.slow
@pytest.mark.parametrize("name", ["../../x-{seed}.png", "{stem}/../../x.png", "ABSOLUTE/x-{seed}.png"])
def test_a_name_template_cannot_write_outside_the_output_folder(tmp_path, run_cli, endpoint, name):
    name = name.replace("ABSOLUTE", str(tmp_path))  # an absolute path outside -o
    make_photos(tmp_path / "photos", 1)
    result = generate(
        run_cli, tmp_path / "photos", endpoint.url, tmp_path / "a" / "b" / "out", "--name", name
    )
    assert result.returncode == 2, result.stderr
    assert "outside the output folder" in one_error_line(result.stderr)
    assert endpoint.posts == 0 and credits(run_cli)["balance"] == 100
    assert not list(tmp_path.glob("**/x*.png"))


@pytest.mark.slow
def test_a_photo_named_dots_cannot_climb_out_through_its_stem(tmp_path, run_cli, endpoint):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (64, 64), "red").save(tmp_path / "photos" / "...jpg", format="JPEG")
    out = tmp_path / "deep" / "out"
    result = generate(run_cli, tmp_path / "photos" / "...jpg", endpoint.url, out, "--name", "{stem}/x.png")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    written = Path(line["output"]).resolve()
    assert written.is_file() and out.resolve() in written.parents
    assert not (tmp_path / "deep" / "x.png").exists()


@pytest.mark.slow
def test_a_link_inside_the_output_folder_cannot_lead_outside(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = generate(run_cli, tmp_path / "photos", endpoint.url, out, "--name", "sub/{stem}.png")
    assert result.returncode == 2 and "outside the output folder" in result.stderr
    assert endpoint.posts == 0


# ------------------------------------------------------------------ 2. never delete a user's file
@pytest.mark.slow
def test_the_stale_temp_sweep_removes_only_avatargen_temp_files(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    out.mkdir()
    dead = 2**22 + 12345  # above any PID this machine hands out
    users = [
        out / f".notes.{dead}.tmp",
        out / f".person000.jpg.{dead}.tmp",
        out / f".avatargen-partial-{dead}",
    ]
    for path in users:
        path.write_text("the user's own file")
    ours = out / f".avatargen-partial-{dead}-person000.png.tmp"
    ours.write_bytes(b"half a png")
    alive = out / f".avatargen-partial-{os.getpid()}-other.png.tmp"  # a live process's temp file
    alive.write_bytes(b"being written")
    assert generate(run_cli, tmp_path / "photos", endpoint.url, out).returncode == 0
    assert all(path.read_text() == "the user's own file" for path in users)
    assert not ours.exists() and alive.exists()


# ------------------------------------------------------------------ 3. outputs checked before generating
@pytest.mark.slow
def test_a_file_name_too_long_stops_before_any_request(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 2)
    result = generate(
        run_cli, tmp_path / "photos", endpoint.url, tmp_path / "out", "--name", "x" * 300 + "{seed}.png"
    )
    assert result.returncode == 74, result.stderr
    line = one_error_line(result.stderr)
    assert "File name too long" in line and str(tmp_path / "out") in line
    assert endpoint.posts == 0 and credits(run_cli)["balance"] == 100


@pytest.mark.slow
def test_an_output_folder_that_is_a_file_stops_before_any_request(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 1)
    (tmp_path / "taken").write_text("a file, not a folder")
    result = generate(run_cli, tmp_path / "photos", endpoint.url, tmp_path / "taken" / "out")
    assert result.returncode == 74 and "cannot be written" in one_error_line(result.stderr)
    assert endpoint.posts == 0


@pytest.mark.slow
def test_a_read_only_output_folder_stops_before_any_request(tmp_path, endpoint, avatargen_home):
    make_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    avatargen_home.chmod(0o777)
    result = run_unprivileged(
        "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(out), cwd=tmp_path
    )
    assert result.returncode == 74, result.stderr
    assert "Permission denied" in one_error_line(result.stderr)
    assert endpoint.posts == 0


@pytest.mark.slow
def test_a_full_disk_mid_batch_stops_it_with_the_cause_and_keeps_the_rest(
    tmp_path, monkeypatch, capsys, endpoint, avatargen_home
):
    import avatargen.images

    make_photos(tmp_path / "photos", 4)
    real_write = avatargen.images.write_output
    written = []
    one_at_a_time = threading.Lock()  # outputs of several jobs may be written at once

    def disk_fills_after_one(path, *args, **kwargs):
        with one_at_a_time:
            if written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            written.append(real_write(path, *args, **kwargs))
            return written[-1]

    monkeypatch.setattr(avatargen.images, "write_output", disk_fills_after_one)
    args = ("generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out"))
    code, _out, err = run_main(monkeypatch, capsys, *args, "--concurrency", "1")
    assert code == 74
    line = one_error_line(err)
    assert "No space left on device" in line and str(tmp_path / "out") in line and "avatargen retry" in line
    assert "internal error" not in err
    statuses = sorted(row[0] for row in db_rows(avatargen_home, "SELECT status FROM jobs"))
    assert statuses == ["done", "queued", "queued", "queued"]
    [(balance, open_reservations)] = db_rows(
        avatargen_home,
        "SELECT (SELECT SUM(CASE kind WHEN 'grant' THEN amount WHEN 'reserve' THEN -amount "
        "WHEN 'refund' THEN amount ELSE 0 END) FROM movements), "
        "(SELECT COUNT(*) FROM reservations WHERE state = 'open')",
    )
    assert balance == 97 and open_reservations == 0  # only the one written image is charged


# ------------------------------------------------------------------ 4. SIGTERM / SIGHUP like Ctrl-C
@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_refunds_requeues_marks_the_batch_and_the_printed_command_resumes(
    tmp_path, run_cli, avatargen_home, signum, code
):
    make_photos(tmp_path / "photos", 4)
    out = tmp_path / "out"
    with FakeEndpoint(delay=1.5) as slow:
        args = [sys.executable, "-m", "avatargen", "generate", str(tmp_path / "photos"), "--endpoint", slow.url,
                "-o", str(out), "--concurrency", "2"]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        deadline = time.monotonic() + 60
        while slow.posts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        _stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == code, stderr
        line = one_error_line(stderr)
        assert "in-flight credits were refunded" in line
        resume = line.split("resume with: ", 1)[1].strip()
        assert resume.startswith("avatargen retry ")
        assert db_rows(avatargen_home, "SELECT COUNT(*) FROM reservations WHERE state = 'open'") == [(0,)]
        assert db_rows(avatargen_home, "SELECT status FROM batches") == [("interrupted",)]
        assert credits(run_cli)["balance"] == 100
        # The printed command, as is: it runs against the same endpoint (nothing passed again).
        resumed = run_cli(*resume.split()[1:], "--json")
        assert resumed.returncode == 0, resumed.stderr
    assert len(list(out.glob("*.png"))) == 4
    assert db_rows(avatargen_home, "SELECT COUNT(*), MIN(status) FROM batches") == [(1, "done")]
    assert credits(run_cli)["balance"] == 100 - 4 * 3


# ------------------------------------------------------------------ 5. a ledger that cannot be written
@pytest.mark.slow
def test_a_read_only_ledger_is_one_line_with_the_file(tmp_path, run_cli, avatargen_home):
    assert run_cli("credits").returncode == 0  # creates the ledger
    ledger = avatargen_home / "data" / "ledger.db"
    make_photos(tmp_path / "photos", 1)
    for path in (avatargen_home, avatargen_home / "data", ledger):
        path.chmod(0o555 if path.is_dir() else 0o444)
    result = run_unprivileged(
        "generate", str(tmp_path / "photos"), "--endpoint", "http://127.0.0.1:9/", cwd=tmp_path
    )
    assert result.returncode == 74, result.stderr
    line = one_error_line(result.stderr)
    assert str(ledger) in line and "cannot be written" in line


def test_an_empty_ledger_file_is_not_silently_recreated(tmp_path, run_cli, avatargen_home):
    ledger = avatargen_home / "data" / "ledger.db"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(b"")
    result = run_cli("credits")
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "empty" in line and f"rm '{ledger}'" in line
    assert ledger.stat().st_size == 0  # no starter credits minted into it


def test_a_ledger_that_fills_up_mid_batch_stops_cleanly_and_the_next_run_reconciles(
    tmp_path, monkeypatch, capsys, endpoint, avatargen_home
):
    import avatargen.ledger.store as store

    make_photos(tmp_path / "photos", 6)
    assert run_main(monkeypatch, capsys, "credits")[0] == 0
    real_connect = store._connect

    def nearly_full(path):
        db = real_connect(path)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLITE_FULL a few rows from now
        return db

    monkeypatch.setattr(store, "_connect", nearly_full)
    args = ("generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out"))
    code, _out, err = run_main(monkeypatch, capsys, *args)
    assert code == 74, err
    line = one_error_line(err)
    assert "ledger.db" in line and "full" in line
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        assert not db.in_transaction
    monkeypatch.setattr(store, "_connect", real_connect)
    code, out, err = run_main(monkeypatch, capsys, "credits", "--json")
    assert code == 0, err
    report = json.loads(out)
    pngs = list((tmp_path / "out").glob("*.png"))
    assert report["reserved"] == 0 and report["balance"] == 100 - 3 * len(pngs)


# ------------------------------------------------------------------ 6. concurrent runs of the same photos
@pytest.mark.slow
def test_six_runs_of_the_same_photos_share_them_and_never_ask_for_credits(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 5)
    assert run_cli("config", "set", "credits.starter", "15").returncode == 0  # exactly 5 images
    out = tmp_path / "out"
    with FakeEndpoint(delay=0.4) as slow:
        args = [sys.executable, "-m", "avatargen", "generate", str(tmp_path / "photos"), "--endpoint", slow.url,
                "-o", str(out), "--json", "--concurrency", "2"]  # fmt: skip
        procs = [
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, _stdout, stderr in results:
        assert code == 0, stderr  # never 4 "add credits": another run's job is busy, not a shortfall
    done = [line for _c, stdout, _e in results for line in json_lines(stdout) if line["status"] == "done"]
    assert len(done) == 5 and len({line["job_key"] for line in done}) == 5
    assert len(list(out.glob("*.png"))) == 5
    assert credits(run_cli)["balance"] == 0


# ------------------------------------------------------------------ 8. hostile input: unreadable folder
@pytest.mark.slow
def test_a_folder_without_read_permission_is_an_input_error(tmp_path, avatargen_home):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    avatargen_home.chmod(0o777)
    result = run_unprivileged("generate", str(folder), "--endpoint", "http://127.0.0.1:9/", cwd=tmp_path)
    assert result.returncode == 5, result.stderr
    assert str(folder) in one_error_line(result.stderr) and "cannot be read" in result.stderr


@pytest.mark.slow
def test_a_corrupt_photo_is_named_once_in_the_summary(tmp_path, run_cli, endpoint):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "photos" / "good.jpg", format="JPEG")
    whole = (tmp_path / "photos" / "good.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(whole[: len(whole) // 2])
    result = run_cli(
        "generate", str(tmp_path / "trunc.jpg"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out")
    )
    assert result.returncode == 5, result.stderr  # its only job failed on its input
    assert result.stdout.count("trunc.jpg") == 1, result.stdout
