"""Issue 23 item 10: a provider job is paid for once. The provider's id of a submitted job is kept
with the job's reservation the moment the submit answers; a killed run's next run, or `retry`,
polls it instead of submitting again, and submits anew only when the provider says it is gone."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avatargen.catalog import load_catalog
from avatargen.errors import ProviderError
from avatargen.ledger import Ledger
from avatargen.providers.resume import RequestJournal, resume_options
from avatargen.providers.retry import RetryPolicy
from router_fakes import FakeCDN, FakeRouter
from test_providers_router import KONTEXT, QWEN, TOKEN, _provider, _request, make_photos

IMAGES = 8
KILLS = 10
QWEN_CREDITS = 7


@pytest.fixture
def fakes(monkeypatch):
    with FakeCDN() as cdn, FakeRouter(cdn, token=TOKEN, polls_before_done=3) as router:
        monkeypatch.setenv("AVATARGEN_ROUTER_URL", router.url)
        monkeypatch.setenv("HF_ENDPOINT", router.url)  # nothing may reach huggingface.co
        monkeypatch.setenv("AVATARGEN_RETRY_SCALE", "0.01")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield router, cdn


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.db", starter_credits=100) as opened:
        yield opened


def _job(ledger, key: str = "job1") -> RequestJournal:
    ledger.reserve(key, QWEN, QWEN_CREDITS)
    return RequestJournal(ledger, key)


def _fresh_run(ledger, key: str = "job1") -> RequestJournal:
    """What a killed run's next run does: the reservation refunded, then reserved again."""
    ledger.refund(key, "reconciled: run was killed")
    return _job(ledger, key)


# ------------------------------------------------------------------ the ledger keeps the request
def test_the_request_outlives_a_refunded_reservation_and_goes_with_the_settled_one(ledger):
    journal = _job(ledger)
    journal.save({"provider": "fal-ai", "model": "m", "request_id": "req-1", "response_url": "u"})
    assert _fresh_run(ledger).load()["request_id"] == "req-1"  # a killed run's job: still there
    assert ledger.verify().ok and ledger.balance() == 100 - QWEN_CREDITS
    ledger.settle("job1")
    assert journal.load() is None  # used up: a requeued finished job submits anew
    assert "m004_provider_requests" in ledger.applied_migrations()


def test_only_a_backend_that_resumes_is_handed_a_journal(ledger, fakes):
    assert "journal" in resume_options(_provider(QWEN), ledger, "k")
    assert resume_options(object(), ledger, "k") == {}


# ------------------------------------------------------------------ the backend polls, not submits
def test_a_job_submitted_before_is_polled_not_submitted_again(ledger, fakes):
    router, _ = fakes
    model = load_catalog().by_key[QWEN]
    journal = _job(ledger)
    short = RetryPolicy(wait_timeout=0.0)  # gives up while the job is still queued (a kill, a timeout)
    with pytest.raises(ProviderError, match="still"):
        _provider(QWEN, policy=short).generate(_request(model), journal=journal)
    assert len(router.submits()) == 1
    saved = _fresh_run(ledger).load()
    assert saved["request_id"] == "req-0000" and saved["provider"] == "fal-ai"
    result = _provider(QWEN).generate(_request(model), journal=journal)
    assert result.image.startswith(b"\x89PNG")
    assert len(router.submits()) == 1  # the same provider job, polled to its end
    assert all("req-0000" in r["path"] for r in router.requests if r["method"] == "GET")


def test_a_job_the_provider_lost_is_submitted_again(ledger, fakes):
    router, _ = fakes
    model = load_catalog().by_key[QWEN]
    journal = _job(ledger)
    journal.save({"provider": "fal-ai", "model": "fal-ai/qwen-image-edit-2511", "request_id": "req-gone",
                  "response_url": "https://queue.fal.run/fal-ai/qwen-image-edit-2511/requests/req-gone"})  # fmt: skip
    _provider(QWEN).generate(_request(model), journal=journal)
    (gone_poll,) = [r for r in router.requests if "req-gone" in r["path"]]  # 404: then one new submit
    assert gone_poll["path"].endswith("/status") and len(router.submits()) == 1
    assert journal.load()["request_id"] == "req-0000"


def test_a_job_the_provider_failed_is_forgotten_so_retry_submits_anew(ledger, fakes):
    router, _ = fakes
    router.failing_submits = (0,)
    model = load_catalog().by_key[QWEN]
    journal = _job(ledger)
    with pytest.raises(ProviderError, match="fal-ai failed the job"):
        _provider(QWEN).generate(_request(model), journal=journal)
    assert journal.load() is None
    _provider(QWEN).generate(_request(model), journal=_fresh_run(ledger))
    assert len(router.submits()) == 2


def test_a_replicate_prediction_is_polled_by_its_id(ledger, fakes):
    router, _ = fakes
    router.replicate_polls_before_done = 3
    model = load_catalog().by_key[KONTEXT]
    journal = _job(ledger)
    with pytest.raises(ProviderError, match="replicate prediction still"):
        _provider(KONTEXT, hf_provider="replicate", policy=RetryPolicy(wait_timeout=0.0)).generate(
            _request(model), journal=journal
        )
    assert journal.load()["request_id"] == "r0"
    _provider(KONTEXT, hf_provider="replicate").generate(_request(model), journal=_fresh_run(ledger))
    assert len(router.submits()) == 1
    assert [r["path"] for r in router.requests if r["method"] == "GET" and "predictions" in r["path"]]
    # The same job sent to another provider is that provider's own new job.
    _provider(KONTEXT, hf_provider="fal-ai").generate(_request(model), journal=_fresh_run(ledger))
    assert len(router.submits()) == 2


# ------------------------------------------------------------------ the real CLI, killed
def _start(photos: Path, out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "avatargen", "generate", str(photos), "--model", "qwen-image-edit-pose",
            "--pose", "wave", "-o", str(out), "--concurrency", "4", "--json", "--yes"]  # fmt: skip
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def _request_id(submit: dict) -> str | None:
    try:
        return json.loads(submit.get("answer") or b"{}").get("request_id")
    except ValueError:
        return None


def test_kill_9_at_random_moments_then_a_full_run_submits_each_image_once(tmp_path, run_cli, monkeypatch):
    seed = int(os.environ.get("AVATARGEN_KILL_SEED") or time.time_ns())  # a failure names its seed
    rng = random.Random(seed)
    make_photos(tmp_path / "photos", IMAGES)
    out = tmp_path / "out"
    # Each provider job waits in the queue for ~8 polls of 0.1 s: kills land mostly while polling.
    with FakeCDN() as cdn, FakeRouter(cdn, token=TOKEN, polls_before_done=8) as router:
        monkeypatch.setenv("AVATARGEN_ROUTER_URL", router.url)
        monkeypatch.setenv("HF_ENDPOINT", router.url)
        monkeypatch.setenv("AVATARGEN_RETRY_SCALE", "0.2")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        kills = []
        for _ in range(KILLS):
            # A random moment of the run's traffic: after a random number of its requests (0: while
            # it starts), plus a random part of a poll interval.
            seen, wanted = len(router.requests), rng.randint(0, 3 * IMAGES)
            proc = _start(tmp_path / "photos", out)
            deadline = time.monotonic() + 60
            while (
                len(router.requests) - seen < wanted and proc.poll() is None and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))
            kills.append(time.monotonic())
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        result = run_cli("generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose",
                         "--pose", "wave", "-o", str(out), "--concurrency", "4", "--json", "--yes")  # fmt: skip
        assert result.returncode == 0, (seed, result.stderr)
        submits = router.submits()
        polled = {r["path"] for r in router.requests if r["method"] == "GET"}
        # The one moment no client can cover: killed after the provider took a submit and before
        # its answer reached the ledger (a commit after the answer). Such a job is never polled by
        # anyone; each must lie in that window of a kill (1 s of grace for a loaded machine).
        lost = [s for s in submits if not any(f"/{_request_id(s)}/" in p + "/" for p in polled)]
        unexplained = [
            s for s in lost if not any(s["received_at"] <= k <= s["finished_at"] + 1.0 for k in kills)
        ]
        assert not unexplained, (seed, len(submits), len(lost))
        assert len(submits) == IMAGES + len(lost), (seed, len(submits), len(lost))
    assert len(list(out.glob("*.png"))) == IMAGES
    verify = run_cli("credits", "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(run_cli("credits", "--json").stdout)
    assert report["balance"] == 100 - IMAGES * QWEN_CREDITS and report["reserved"] == 0
    assert report["spent_today"] == IMAGES * QWEN_CREDITS
    assert report["requests_today"] == len(submits)  # limits.daily_requests counts what was sent
