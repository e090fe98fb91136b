"""Issue 23 item 11: `history` after Ctrl-C, and what "requests today" counts.

A Ctrl-C'd batch leaves done, failed and queued rows whose finish and creation times interleave:
they were listed by COALESCE(finished_at, created_at) and came out as ids 10, 9, 5, 6, 3, ...
Now newest first by the id (the order jobs were planned), a queued row names no PNG that does
not exist, and the credits table says what a request is.
"""

from __future__ import annotations

import json
import time

from avatargen.ledger import open_ledger
from cli_helpers import run_main


def record(key: str, output: str) -> dict:
    return {
        "job_key": key,
        "input_path": f"photos/{key}.jpg",
        "input_hash": key * 64,
        "pose": "wave",
        "model": "avatar-generator:controlnet-openpose-sd15",
        "params": {"steps": 20},
        "seed": 7,
        "output_path": output,
    }


def interrupted_batch(tmp_path) -> None:
    """Jobs a..f planned in that order; b and d finished (later than every creation), e failed,
    the rest left queued by Ctrl-C, with their credits refunded."""
    with open_ledger() as ledger:
        ledger.start_batch("b1", ["generate"], str(tmp_path), str(tmp_path / "avatars"), {})
        for key in "abcdef":
            ledger.enqueue(record(key, str(tmp_path / "avatars" / f"{key}.png")), "b1")
            time.sleep(0.002)
        for key in "bde":
            ledger.reserve(key, "avatar-generator:controlnet-openpose-sd15", 3, "b1")
            ledger.mark_running(key)
        time.sleep(0.01)
        ledger.mark_done("d", "avatar-generator:controlnet-openpose-sd15", attempts=1, seconds=1.0)
        time.sleep(0.002)
        ledger.mark_done("b", "avatar-generator:controlnet-openpose-sd15", attempts=1, seconds=1.0)
        ledger.mark_failed("e", "interrupted", status="queued")


def test_history_is_newest_first_by_a_stable_key(monkeypatch, capsys, tmp_path):
    interrupted_batch(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "history", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids, reverse=True)
    assert [row["job_key"] for row in rows] == list("fedcba")
    again = [
        json.loads(line)["id"] for line in run_main(monkeypatch, capsys, "history", "--json")[1].splitlines()
    ]
    assert again == ids


def test_a_queued_row_shows_no_output_path(monkeypatch, capsys, tmp_path):
    interrupted_batch(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "history")  # not a terminal: tab-separated
    assert code == 0, err
    rows = {cells[2]: cells for cells in (line.split("\t") for line in out.splitlines()[1:])}
    assert rows["photos/f.jpg"][1] == "queued" and rows["photos/f.jpg"][-1] == "(not made yet)"
    assert "f.png" not in out and "a.png" not in out  # queued: their PNGs do not exist
    assert rows["photos/b.jpg"][-1].endswith("b.png")  # a done job still shows where its image is


def test_requests_today_says_what_it_counts(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "credits")
    assert code == 0, err
    assert "requests today (HTTP attempts, retries included)" in out
    _, help_text, _ = run_main(monkeypatch, capsys, "credits", "--help")
    assert "retry" in help_text and "limits.daily_requests" in help_text
