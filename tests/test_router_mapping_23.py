"""Issue 23 (3): the catalog's Qwen model is the one that runs (Qwen-Image-Edit-2511 is fal-ai's
`fal-ai/qwen-image-edit-2511`), and the Hub's live inferenceProviderMapping, when reachable, wins
over the catalog's id with a warning. Loopback fakes of the Hub, the router and the CDN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatargen.catalog import load_catalog
from router_fakes import FakeCDN, FakeHub, FakeRouter

TOKEN = "hf_routertesttoken123"
QWEN_KEY = "avatar-generator:qwen-image-edit-pose"
QWEN_HUB_ID = "Qwen/Qwen-Image-Edit-2511"


def test_catalog_name_and_fal_id_agree():
    model = load_catalog().by_key[QWEN_KEY]
    assert model.huggingface_model == QWEN_HUB_ID and "2511" in model.name
    assert list(model.provider_ids) == ["fal-ai=fal-ai/qwen-image-edit-2511"]


def _photo(folder: Path, name: str = "me", red: int = 40) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 128), (red, 90, 160)).save(folder / f"{name}.jpg", quality=90)
    return folder / f"{name}.jpg"


@pytest.fixture
def fakes(monkeypatch):
    with FakeCDN() as cdn, FakeRouter(cdn, token=TOKEN, polls_before_done=1) as router:
        monkeypatch.setenv("AVATARGEN_ROUTER_URL", router.url)
        monkeypatch.setenv("AVATARGEN_RETRY_SCALE", "0.01")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield router


def _run(run_cli, tmp_path, hub_mapping: dict | None, router):
    env = {"HF_HUB_OFFLINE": "0"}
    hub = FakeHub({QWEN_HUB_ID: hub_mapping} if hub_mapping is not None else {})
    with hub:
        env["HF_ENDPOINT"] = hub.url.rstrip("/")
        photos = tmp_path / "photos"
        _photo(photos)
        _photo(photos, "you", 200)
        result = run_cli(
            "generate", str(photos), "--model", "qwen-image-edit-pose", "--pose", "wave", "--yes", "--json",
            "-o", str(tmp_path / "out"), "--concurrency", "2", env=env,
        )  # fmt: skip
        hub_calls = list(hub.requests)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines() if line.strip()] == ["done"] * 2
    return result, [s["path"] for s in router.submits()], hub_calls


def test_the_hubs_live_id_wins_with_a_warning(run_cli, tmp_path, fakes):
    live = {
        "fal-ai": {"status": "live", "providerId": "fal-ai/qwen-image-edit-2511-v2", "task": "image-to-image"}
    }
    result, submits, hub_calls = _run(run_cli, tmp_path, live, fakes)
    assert submits == ["/fal-ai/fal-ai/qwen-image-edit-2511-v2"] * 2
    mapping_calls = [c for c in hub_calls if "inferenceProviderMapping" in c["query"]]
    assert len(mapping_calls) == 1  # looked up once per batch (the pre-flight's answer), not per job
    warnings = [line for line in result.stderr.splitlines() if "the Hub maps" in line]
    assert len(warnings) == 1, result.stderr
    assert "fal-ai/qwen-image-edit-2511-v2, not the catalog's fal-ai/qwen-image-edit-2511" in warnings[0]


def test_an_agreeing_mapping_says_nothing(run_cli, tmp_path, fakes):
    live = {
        "fal-ai": {"status": "live", "providerId": "fal-ai/qwen-image-edit-2511", "task": "image-to-image"}
    }
    result, submits, _ = _run(run_cli, tmp_path, live, fakes)
    assert submits == ["/fal-ai/fal-ai/qwen-image-edit-2511"] * 2
    assert "the Hub maps" not in result.stderr


def test_a_staging_or_missing_mapping_keeps_the_catalog_id(run_cli, tmp_path, fakes):
    staging = {"fal-ai": {"status": "staging", "providerId": "fal-ai/other", "task": "image-to-image"}}
    result, submits, _ = _run(run_cli, tmp_path, staging, fakes)
    assert submits == ["/fal-ai/fal-ai/qwen-image-edit-2511"] * 2
    assert "the Hub maps" not in result.stderr


def test_an_unreachable_hub_keeps_the_catalog_id(run_cli, tmp_path, fakes):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    photos = tmp_path / "photos"
    _photo(photos)
    result = run_cli(
        "generate", str(photos), "--model", "qwen-image-edit-pose", "--pose", "wave", "--yes", "--json",
        "-o", str(tmp_path / "out"), env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [s["path"] for s in fakes.submits()] == ["/fal-ai/fal-ai/qwen-image-edit-2511"]
