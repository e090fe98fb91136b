"""Issue 25 (2): Ctrl-C or SIGTERM during an in-process (`local`) batch exits 130 / 143 as
documented, never 134 (`terminate called without an active exception`): the pipeline thread is
stopped at its next step and waited for before the interpreter exits. The real CLI in a
subprocess, on the tiny model, with the real signal."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serve_fixtures import tiny_home, tiny_models  # noqa: F401 - fixtures


def _photos(folder: Path, count: int) -> list[str]:
    from PIL import Image

    paths = []
    for i in range(count):
        path = folder / f"p{i}.png"
        Image.new("RGB", (96, 128), (180, 120, 90 + i)).save(path)
        paths.append(str(path))
    return paths


def _env() -> dict[str, str]:
    """This test's environment, with this checkout's source first (the CLI runs from tmp_path)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _ledger_state() -> tuple[int, dict[str, int]]:
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        counts: dict[str, int] = {}
        for row in ledger.jobs(limit=None):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return ledger.balance(), counts


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_local_batch_exits_with_its_documented_code(tiny_home, tmp_path, signum, code):
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        ledger.grant(100)
        start = ledger.balance()
    photos = _photos(tmp_path, 4)
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "avatargen", "generate", *photos, "--tiny", "--steps", "2", "--yes",
             "--json", "-o", str(tmp_path / "out")],
            stdout=subprocess.PIPE, stderr=err, cwd=tmp_path, env=_env(), text=True,
        )  # fmt: skip
        # The first image's result line: the pipeline thread goes straight on to the next one.
        first = process.stdout.readline()
        assert '"status": "done"' in first, (first, err_path.read_text())
        time.sleep(0.3)
        process.send_signal(signum)
        rc = process.wait(timeout=120)
    stderr = err_path.read_text(errors="replace")
    assert rc == code, stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr, stderr
    assert "interrupted:" in stderr and "avatargen retry" in stderr, stderr
    balance, counts = _ledger_state()
    done = counts.get("done", 0)
    assert done < 4, counts  # it was stopped mid-batch
    assert balance == start - 3 * done, (balance, counts)  # in-flight credits refunded exactly
    assert counts.get("running", 0) == 0 and counts.get("failed", 0) == 0, counts


def test_interrupt_cancels_queued_calls_and_asks_the_running_one_to_stop():
    import threading
    from concurrent.futures import CancelledError

    from avatargen.serve.runner import PipelineRunner

    runner = PipelineRunner(name="test-runner")
    started = threading.Event()

    def long_call():
        started.set()
        while not runner.stop_requested():  # as pipelines.py asks after every step
            time.sleep(0.01)
        return "stopped"

    running = runner.submit(long_call)
    queued = runner.submit(lambda: "never")
    assert started.wait(5)
    assert runner.interrupt() == 1
    assert runner.wait_idle(5)
    assert running.result(1) == "stopped"
    with pytest.raises(CancelledError):
        queued.result(1)
    assert runner.call(lambda: "next") == "next"  # a later call is not stopped
