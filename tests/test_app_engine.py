"""The application layer on its own: request -> plan -> quote -> run against the shipped
in-process FakeBackend (no HTTP, no model), with the real SQLite ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from avatargen.app.hooks import Hooks
from avatargen.app.planning import plan_generate
from avatargen.app.quote import DryRun
from avatargen.app.request import GenerateRequest, RunOptions
from avatargen.app.run import run
from avatargen.catalog import load_catalog
from avatargen.config import Config
from avatargen.errors import CreditsError, ProviderError
from avatargen.images import read_metadata
from avatargen.ledger import open_ledger
from avatargen.providers.fake import FakeBackend


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    paths = []
    for i, colour in enumerate([(200, 40, 40), (40, 200, 40)]):
        path = tmp_path / f"p{i}.png"
        Image.new("RGB", (64, 64), colour).save(path)
        paths.append(path)
    return paths


def _request(photos, tmp_path, **fields) -> GenerateRequest:
    fields.setdefault("options", RunOptions(yes=True))
    return GenerateRequest(
        paths=tuple(map(str, photos)), output=tmp_path / "out", identity_scale=0.0, steps=2, **fields
    )


def _run(request, fake, records=None):
    catalog = load_catalog()
    hooks = Hooks(emit=records.append if records is not None else None)
    plan = plan_generate(request, Config(), catalog, hooks)
    return run(plan, Config(), catalog, hooks, provider_factory=fake.factory)


def test_a_pose_set_runs_each_job_once_and_settles_its_credits(photos, tmp_path):
    fake = FakeBackend()
    records: list[dict] = []
    summary = _run(_request(photos, tmp_path, poses=("wave", "sitting")), fake, records)
    assert (summary.done, summary.failed, summary.credits_spent) == (4, 0, 12)
    assert {r["status"] for r in records} == {"done"}
    assert len({req.pose_png for req in fake.requests}) == 2  # each pose drew its own skeleton
    outputs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outputs) == 4
    keys = {read_metadata(str(path))["job_key"] for path in outputs}
    assert len(keys) == 4
    with open_ledger() as ledger:
        assert ledger.balance() == 100 - 12
        assert ledger.verify().ok


def test_the_same_request_again_resumes_and_sends_nothing(photos, tmp_path):
    _run(_request(photos, tmp_path), FakeBackend())
    again = FakeBackend()
    summary = _run(_request(photos, tmp_path), again)
    assert (summary.done, summary.skipped, summary.credits_spent) == (0, 2, 0)
    assert again.requests == []


def test_a_refused_request_is_refunded_and_the_batch_goes_on(photos, tmp_path):
    refused = ProviderError("refused")
    refused.status_code = 400  # as the retry policy tags an HTTP answer
    fake = FakeBackend(script=[refused])
    summary = _run(_request(photos, tmp_path, options=RunOptions(yes=True, concurrency=1)), fake)
    assert (summary.done, summary.failed, summary.credits_spent) == (1, 1, 3)
    with open_ledger() as ledger:
        assert ledger.balance() == 97
        assert ledger.verify().ok
        failed = [row for row in ledger.jobs(limit=None) if row["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["permanent"]  # a 400 can never succeed as it is


def test_a_dry_run_quotes_and_sends_nothing(photos, tmp_path):
    fake = FakeBackend()
    result = _run(_request(photos, tmp_path, poses=("wave", "sitting"), dry_run=True), fake)
    assert isinstance(result, DryRun)
    assert (result.quote.images, result.quote.credits, result.quote.balance) == (4, 12, 100)
    assert len(result.jobs) == 4 and fake.requests == []


def test_a_batch_over_the_balance_is_refused_before_any_request(photos, tmp_path):
    with open_ledger(starter_credits=5) as ledger:
        assert ledger.balance() == 5
    fake = FakeBackend()
    with pytest.raises(CreditsError, match="needs 6 credits"):
        _run(_request(photos, tmp_path), fake)
    assert fake.requests == []
