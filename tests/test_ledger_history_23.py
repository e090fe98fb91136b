"""Issue 23 item 9 [3]: a batch's ledger work does not grow with the ledger's history. Counted,
not timed: SQLite's virtual-machine steps (a row visited costs several; an index seek one) and
statements of the same batch on a fresh ledger and on one holding thousands of past jobs."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from avatargen.ledger import store
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from test_generate_e2e import make_photos

PAST = 3000
STEP = 10  # the progress handler runs every STEP virtual-machine instructions


def _fill(path, past: int) -> None:
    """`past` finished jobs, as the ledger's own calls leave them (straight SQL: quick)."""
    from avatargen.ledger import Ledger

    Ledger(path, starter_credits=100).close()  # both ledgers made before counting starts
    model = "avatar-generator:controlnet-openpose-sd15"
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO movements (kind, amount, note, created_at) VALUES ('grant', ?, 'x', '2026')",
            (past * 3,),
        )
        for i in range(past):
            key, at = f"{i:064x}", f"2026-01-01T00:00:{i % 60:02d}.{i % 1000:03d}+00:00"
            db.execute(
                "INSERT INTO jobs (job_key, batch_id, input_path, input_hash, pose, model, model_used, params, "
                "seed, status, output_path, credits, created_at, finished_at) "
                "VALUES (?, 'past', ?, ?, 'wave', ?, ?, ?, ?, 'done', ?, 3, ?, ?)",
                (
                    key,
                    f"/old/{i}.jpg",
                    key,
                    model,
                    model,
                    json.dumps({"steps": 30}),
                    i,
                    f"/old/out/{i}.png",
                    at,
                    at,
                ),
            )
            db.executemany(
                "INSERT INTO movements (kind, amount, job_key, model, batch_id, note, created_at) "
                "VALUES (?, 3, ?, ?, 'past', 'x', ?)",
                [("reserve", key, model, at), ("settle", key, model, at)],
            )
            db.execute(
                "INSERT INTO reservations (job_key, model, amount, batch_id, pid, state, created_at, closed_at) "
                "VALUES (?, ?, 3, 'past', 1, 'settled', ?, ?)",
                (key, model, at, at),
            )
        db.execute("INSERT INTO requests (day, model, count) VALUES (date('now'), ?, ?)", (model, past))
        db.execute(
            "INSERT INTO batches (id, created_at, argv, cwd, status) VALUES ('past', '2026', '[]', '/', 'done')"
        )


def _batch_work(tmp_path, monkeypatch, capsys, home, past: int) -> tuple[int, Counter]:
    monkeypatch.setenv("AVATARGEN_HOME", str(home))
    path = home / "data" / "ledger.db"
    path.parent.mkdir(parents=True)
    _fill(path, past)
    steps, statements, current = Counter(), Counter(), [""]
    real_connect = store._connect

    def counting_connect(p):
        db = real_connect(p)

        def trace(sql: str) -> None:
            current[0] = sql.split(" (")[0][:60]
            statements[current[0]] += 1

        def progress() -> int:
            steps[current[0]] += 1
            return 0

        db.set_trace_callback(trace)
        db.set_progress_handler(progress, STEP)
        return db

    monkeypatch.setattr(store, "_connect", counting_connect)
    with FakeEndpoint() as endpoint:
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(home / "out"), "--identity-scale", "0", "--concurrency", "2", "--json",
        )  # fmt: skip
    assert code == 0, err
    monkeypatch.setattr(store, "_connect", real_connect)
    return sum(steps.values()), statements


@pytest.mark.slow  # whole seconds of real waiting
def test_a_batch_visits_as_many_rows_with_a_long_history_as_with_none(tmp_path, monkeypatch, capsys):
    make_photos(tmp_path / "photos", 6)
    fresh_steps, fresh = _batch_work(tmp_path, monkeypatch, capsys, tmp_path / "fresh", 0)
    old_steps, old = _batch_work(tmp_path, monkeypatch, capsys, tmp_path / "old", PAST)
    assert sum(old.values()) == sum(fresh.values())  # the same statements, as many of them
    # A scan of the history would add thousands of steps (PAST rows each); seeks add none.
    assert old_steps <= fresh_steps * 1.05 + 20, (fresh_steps, old_steps)
