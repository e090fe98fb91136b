"""End to end: the real CLI in a subprocess -> a loopback server speaking the endpoint
contract -> files with metadata, and a real SQLite ledger that stays exact."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avatargen.images import read_metadata
from fake_endpoint import FakeEndpoint
from helpers.images import save_photo


def make_photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        save_photo(
            folder / f"person{i:03d}.jpg",
            (96, 128),
            ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256),
            quality=90,
        )
        for i in range(start, start + count)
    ]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def credits(run_cli) -> dict:
    result = run_cli("credits", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def db_rows(home: Path, query: str, args=()) -> list[tuple]:
    with sqlite3.connect(home / "data" / "ledger.db") as db:
        return db.execute(query, args).fetchall()


def start_generate(photos: Path, url: str, out: Path) -> subprocess.Popen:
    """`avatargen generate PHOTOS --json` running in the background (to kill or interrupt)."""
    args = [sys.executable, "-m", "avatargen", "generate", str(photos), "--endpoint", url, "-o", str(out),
            "--concurrency", "2", "--json"]  # fmt: skip
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


@pytest.mark.slow
def test_folder_becomes_avatars_with_metadata_and_charges(tmp_path, run_cli, endpoint, avatargen_home):
    make_photos(tmp_path / "photos", 3)
    out = tmp_path / "out"
    result = run_cli(
        "generate",
        str(tmp_path / "photos"),
        "--pose",
        "wave",
        "--endpoint",
        endpoint.url,
        "-o",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["status"] for line in lines] == ["done"] * 3
    assert {line["credits"] for line in lines} == {3}
    for line in lines:
        output = Path(line["output"])
        assert output.parent == out and output.is_file()
        assert output.name == f"{Path(line['input']).stem}-wave-controlnet-openpose-sd15-{line['seed']}.png"
        meta = read_metadata(output)
        assert meta["job_key"] == line["job_key"] and meta["pose"] == "wave" and meta["seed"] == line["seed"]
        from PIL import Image

        with Image.open(output) as img:
            assert img.text["parameters"].startswith("professional portrait, high quality, detailed face\n")
            assert f"Seed: {line['seed']}" in img.text["parameters"]
    assert not list(out.glob(".*.tmp"))
    # The wire format, field by field.
    posts = [r for r in endpoint.requests if r["method"] == "POST"]
    assert len(posts) == 3
    sent = posts[0]["inputs"]
    assert sent["prompt"] == "professional portrait, high quality, detailed face"
    assert sent["negative_prompt"] == "ugly, blurry, low quality, distorted"
    assert (sent["num_inference_steps"], sent["guidance_scale"], sent["controlnet_conditioning_scale"]) == (
        30,
        7.5,
        1.0,
    )
    assert (sent["width"], sent["height"]) == (512, 512)
    # img2img is opt-in (--strength): by default the photo itself is not sent.
    assert not posts[0]["has_init_image"] and "strength" not in sent
    assert posts[0]["pose_bytes"] > 100
    assert posts[0]["headers"]["Accept"] == "image/png"
    # The ledger: 3 images x 3 credits, nothing left reserved.
    report = credits(run_cli)
    assert report["balance"] == 100 - 9 and report["reserved"] == 0 and report["spent_today"] == 9

    # `status` now knows this model's record from the history.
    status = run_cli("status", "controlnet-openpose-sd15", "--endpoint", endpoint.url, "--json")
    assert status.returncode == 0, status.stderr
    history = json.loads(status.stdout)["history"]
    assert history["success_rate"] == 1.0 and history["jobs"] == 3 and history["median_seconds"] is not None
    assert history["requests_today"] == 3

    # Same command again: everything is skipped, nothing is sent or charged (resume).
    again = run_cli(
        "generate",
        str(tmp_path / "photos"),
        "--pose",
        "wave",
        "--endpoint",
        endpoint.url,
        "-o",
        str(out),
        "--json",
    )
    assert again.returncode == 0, again.stderr
    assert [line["status"] for line in json_lines(again.stdout)] == ["skipped"] * 3
    assert len([r for r in endpoint.requests if r["method"] == "POST"]) == 3
    assert credits(run_cli)["balance"] == 91


@pytest.mark.slow
def test_bad_inputs_fail_alone_and_refund(tmp_path, run_cli, endpoint):
    photos = make_photos(tmp_path / "photos", 2)
    corrupt = tmp_path / "photos" / "broken.jpg"
    corrupt.write_bytes(photos[0].read_bytes()[:200])  # a JPEG cut short
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    out = tmp_path / "out"
    result = run_cli(
        "generate",
        str(tmp_path / "photos"),
        str(not_image),
        "--endpoint",
        endpoint.url,
        "-o",
        str(out),
        "--json",
    )
    assert result.returncode == 1, result.stderr
    lines = {Path(line["input"]).name: line for line in json_lines(result.stdout)}
    assert lines["person000.jpg"]["status"] == lines["person001.jpg"]["status"] == "done"
    assert lines["broken.jpg"]["status"] == "failed" and "broken.jpg" in lines["broken.jpg"]["error"]
    assert lines["notes.png"]["status"] == "failed" and "notes.png" in lines["notes.png"]["error"]
    assert "2 job(s) failed" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        Path(lines[n]["output"]).name for n in ("person000.jpg", "person001.jpg")
    )
    assert credits(run_cli)["balance"] == 100 - 6  # the failed two were refunded
    failed = run_cli("history", "--status", "failed", "--json")
    assert {Path(r["input_path"]).name for r in json_lines(failed.stdout)} == {"broken.jpg", "notes.png"}


@pytest.mark.slow
def test_cold_start_is_waited_through_by_one_prober(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 4)
    with FakeEndpoint(loading_for=2.0, estimated_time=0.5) as fake:
        result = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--endpoint",
            fake.url,
            "-o",
            str(tmp_path / "out"),
            "--concurrency",
            "4",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        assert [line["status"] for line in json_lines(result.stdout)] == ["done"] * 4
        # Pre-flight: announced once before any job is sent.
        assert "model loading, ~" in result.stderr
        first_post = min(r["time"] for r in fake.requests if r["method"] == "POST")
        first_get = min(r["time"] for r in fake.requests if r["method"] == "GET")
        assert first_get < first_post
        loading_posts = [r for r in fake.requests if r["method"] == "POST" and "inputs" not in r]
        # One prober at a time while loading: about one request per estimated_time, not one per worker.
        assert 1 <= len(loading_posts) <= 4 + 2.0 / 0.5


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume_charges_once(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 6)
    out = tmp_path / "out"
    with FakeEndpoint(delay=0.4) as fake:
        proc = start_generate(tmp_path / "photos", fake.url, out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(out.glob("*.png"))) < 2:
            time.sleep(0.05)
        time.sleep(0.2)  # let requests be in flight
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        done_before = len(list(out.glob("*.png")))
        assert 2 <= done_before < 6
        result = run_cli(
            "generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(out), "--json"
        )
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("*.png"))) == 6
    assert not list(out.glob(".*.tmp"))
    for png in out.glob("*.png"):
        assert read_metadata(png)["job_key"]  # every file whole, with its key
    report = credits(run_cli)
    assert report["balance"] == 100 - 6 * 3 and report["reserved"] == 0
    settles = db_rows(
        avatargen_home, "SELECT job_key, COUNT(*) FROM movements WHERE kind = 'settle' GROUP BY job_key"
    )
    assert len(settles) == 6 and all(count == 1 for _, count in settles)


@pytest.mark.slow
def test_two_clis_share_a_balance_for_exactly_k_images(tmp_path, run_cli, avatargen_home):
    k = 5
    assert run_cli("config", "set", "credits.starter", str(k * 3)).returncode == 0
    make_photos(tmp_path / "a", 4, start=0)
    make_photos(tmp_path / "b", 4, start=10)
    # Each run quotes (15 credits free, 12 asked), then probes the endpoint, then reserves job by
    # job: the fake answers the probes only when both runs have probed, so both are past their
    # quote before either reserves, and they race for the same 15 credits. (A cold start alone
    # did not ensure it: reservations come before the loading wait, so a run that started a
    # moment earlier could reserve 12 before the other quoted, and that one stopped with 4 done.)
    with FakeEndpoint(delay=0.1, loading_for=2.0, estimated_time=0.2, probes_together=2) as fake:
        procs = [start_generate(tmp_path / name, fake.url, tmp_path / f"out-{name}") for name in ("a", "b")]
        outputs = [proc.communicate(timeout=120) for proc in procs]
    codes = [proc.returncode for proc in procs]
    done = sum(1 for stdout, _ in outputs for line in json_lines(stdout) if line["status"] == "done")
    assert done == k, (codes, outputs)
    assert set(codes) <= {0, 4} and 4 in codes  # the one that ran out stopped with the credits code
    report = credits(run_cli)
    assert report["balance"] == 0 and report["reserved"] == 0
    pngs = list((tmp_path / "out-a").glob("*.png")) + list((tmp_path / "out-b").glob("*.png"))
    assert len(pngs) == k


@pytest.mark.slow
def test_quote_refusals_run_nothing(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 3)
    base = ["generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out")]
    over = run_cli(*base, "--max-credits", "8")
    assert over.returncode == 4 and "--max-credits 8" in over.stderr
    assert run_cli("config", "set", "confirm_above", "2").returncode == 0
    ask = run_cli(*base)  # no terminal: must not hang, must name --yes
    assert ask.returncode == 2 and "--yes" in ask.stderr
    dry = run_cli(*base, "--dry-run", "--json")
    assert dry.returncode == 0
    plan = json.loads(dry.stdout)
    assert plan["images"] == 3 and plan["credits"] == 9 and len(plan["jobs"]) == 3
    assert endpoint.posts == 0
    assert run_cli("config", "set", "confirm_above", "100").returncode == 0
    many = make_photos(tmp_path / "many", 40)
    short = run_cli(
        "generate", str(tmp_path / "many"), "--endpoint", endpoint.url, "-o", str(tmp_path / "o2")
    )
    assert short.returncode == 4 and "120 credits" in short.stderr and "credits add" in short.stderr
    assert endpoint.posts == 0 and len(many) == 40
    assert credits(run_cli)["balance"] == 100


@pytest.mark.slow
def test_retry_redoes_failed_jobs(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 3)
    with FakeEndpoint(fail_prompts=("",)) as fake:  # every prompt fails at first
        first = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--endpoint",
            fake.url,
            "-o",
            str(tmp_path / "out"),
            "--json",
            env={"AVATARGEN_RETRY_SCALE": "0.01"},
        )
        assert first.returncode == 9  # nothing done, every job failed alike (5xx): that code, not 1
        assert credits(run_cli)["balance"] == 100
        fake.fail_prompts = ()
        again = run_cli("retry", "--json", "--endpoint", fake.url)
    assert again.returncode == 0, again.stderr
    assert [line["status"] for line in json_lines(again.stdout)] == ["done"] * 3
    assert credits(run_cli)["balance"] == 91


@pytest.mark.slow
def test_daily_limit_stops_cleanly_and_resumes_next_day(tmp_path, run_cli, avatargen_home, endpoint):
    make_photos(tmp_path / "photos", 5)
    assert run_cli("config", "set", "limits.daily_requests", "2").returncode == 0
    cmd = [
        "generate",
        str(tmp_path / "photos"),
        "--endpoint",
        endpoint.url,
        "-o",
        str(tmp_path / "out"),
        "--json",
        "--concurrency",
        "1",
    ]
    first = run_cli(*cmd)
    assert first.returncode == 10 and "limits.daily_requests" in first.stderr
    assert [line["status"] for line in json_lines(first.stdout)] == ["done", "done"]
    assert endpoint.posts == 2
    queued = json_lines(run_cli("history", "--status", "queued", "--json").stdout)
    assert len(queued) == 3
    assert credits(run_cli)["requests_today"] == 2
    # Tomorrow: yesterday's count no longer applies.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        db.execute("UPDATE requests SET day = ?", (yesterday,))
    second = run_cli(*cmd)
    assert second.returncode == 10  # two more today, one still left
    third_day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    with sqlite3.connect(avatargen_home / "data" / "ledger.db") as db:
        db.execute(
            "UPDATE requests SET day = ? WHERE day = ?", (third_day, datetime.now(UTC).date().isoformat())
        )
    third = run_cli(*cmd)
    assert third.returncode == 0, third.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 5
    assert credits(run_cli)["balance"] == 100 - 15


@pytest.mark.slow
def test_fallback_taken_recorded_and_charged_at_its_cost(tmp_path, run_cli, avatargen_home):
    catalog = tmp_path / "fallbacks.toml"
    catalog.write_text(
        '[[models]]\nkey = "avatar-generator:controlnet-openpose-sdxl-ultra"\n'
        'fallbacks = ["avatar-generator:controlnet-openpose-sdxl", "avatar-generator:controlnet-openpose-sd15"]\n'
    )
    make_photos(tmp_path / "photos", 2)
    with FakeEndpoint(fail_prompts=("",)) as broken, FakeEndpoint() as good:
        env = {"AVATARGEN_CATALOG": str(catalog), "AVATARGEN_RETRY_SCALE": "0.01"}
        assert (
            run_cli(
                "config", "set", "endpoints.avatar-generator:controlnet-openpose-sdxl", good.url
            ).returncode
            == 0
        )
        result = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--model",
            "controlnet-openpose-sdxl-ultra",
            "--endpoint",
            broken.url,
            "-o",
            str(tmp_path / "out"),
            "--json",
            env=env,
        )
        assert result.returncode == 0, result.stderr
        lines = json_lines(result.stdout)
        assert {line["model_used"] for line in lines} == {"avatar-generator:controlnet-openpose-sdxl"}
        assert {line["fallback_from"] for line in lines} == {
            "avatar-generator:controlnet-openpose-sdxl-ultra"
        }
        assert {line["credits"] for line in lines} == {5}
        for line in lines:
            assert read_metadata(line["output"])["model"] == "avatar-generator:controlnet-openpose-sdxl"
        assert good.posts == 2 and broken.posts >= 2
        assert credits(run_cli)["balance"] == 100 - 10
        history = json_lines(run_cli("history", "--json").stdout)
        assert {row["model_used"] for row in history} == {"avatar-generator:controlnet-openpose-sdxl"}
        # --no-fallback: the failure stands and is refunded.
        make_photos(tmp_path / "more", 1, start=50)
        strict = run_cli(
            "generate",
            str(tmp_path / "more"),
            "--model",
            "controlnet-openpose-sdxl-ultra",
            "--endpoint",
            broken.url,
            "-o",
            str(tmp_path / "out"),
            "--json",
            "--no-fallback",
            env=env,
        )
        assert strict.returncode == 9  # its only job failed on 5xx: the provider's code, not 1
        assert credits(run_cli)["balance"] == 90
        # A fallback runs only where the asked-for model runs: without its own endpoint, SDXL
        # (and SD 1.5, which has none) are not tried in-process; the job fails and is refunded.
        assert (
            run_cli("config", "unset", "endpoints.avatar-generator:controlnet-openpose-sdxl").returncode == 0
        )
        make_photos(tmp_path / "last", 1, start=60)
        alone = run_cli("generate", str(tmp_path / "last"), "--model", "controlnet-openpose-sdxl-ultra",
                        "--endpoint", broken.url, "-o", str(tmp_path / "out"), "--json", env=env)  # fmt: skip
        assert alone.returncode == 9  # its only job failed on 5xx
        assert "local backend" not in alone.stderr and good.posts == 2
        failed = json.loads(alone.stdout)
        assert failed["status"] == "failed" and "HTTP 500" in failed["error"]  # the model asked for
        assert credits(run_cli)["balance"] == 90


@pytest.mark.slow
def test_interrupt_refunds_in_flight_and_prints_resume(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 6)
    out = tmp_path / "out"
    with FakeEndpoint(delay=1.0) as fake:
        proc = start_generate(tmp_path / "photos", fake.url, out)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and fake.posts < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "avatargen retry" in stderr
    done = sum(1 for line in json_lines(stdout) if line["status"] == "done")
    report = credits(run_cli)
    assert report["reserved"] == 0 and report["balance"] == 100 - 3 * done


@pytest.mark.slow
def test_completion_notice_posted_and_command_run(tmp_path, run_cli, endpoint):
    make_photos(tmp_path / "photos", 2)
    with FakeEndpoint() as receiver:
        marker = tmp_path / "summary-copy.json"
        hook = f"{sys.executable} -c \"import shutil,sys; shutil.copy(sys.argv[1], r'{marker}')\""
        result = run_cli(
            "generate",
            str(tmp_path / "photos"),
            "--endpoint",
            endpoint.url,
            "-o",
            str(tmp_path / "out"),
            "--notify-url",
            receiver.url,
            "--on-complete",
            hook,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(marker.read_text())
        assert summary["done"] == 2 and summary["failed"] == 0 and summary["credits_spent"] == 6
        assert summary["output_dir"] == str(tmp_path / "out")
        notices = [json.loads(r["body"]) for r in receiver.requests if r["method"] == "POST"]
        assert len(notices) == 1
        assert notices[0]["done"] == 2 and notices[0]["batch_id"] == summary["batch_id"]
