"""hf-providers: image-to-image through the router to fal-ai (queue) and replicate, against loopback
fakes (tests/router_fakes.py); never a public host."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path

import pytest

from avatargen.catalog import load_catalog
from avatargen.errors import AuthError, ProviderError
from avatargen.images import read_metadata
from avatargen.settings import find_token
from helpers.images import save_photo
from router_fakes import FakeCDN, FakeHub, FakeRouter

TOKEN = "hf_routertesttoken123"
QWEN = "avatar-generator:qwen-image-edit-pose"
KONTEXT = "avatar-generator:flux-kontext"


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        save_photo(folder / f"person{i}.jpg", (96, 128), (40 * i, 90, 160), quality=90) for i in range(count)
    ]


def decode_data_url(url: str):
    from PIL import Image

    header, _, payload = url.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


@pytest.fixture
def fakes(monkeypatch):
    with FakeCDN() as cdn, FakeRouter(cdn, token=TOKEN, polls_before_done=3) as router:
        monkeypatch.setenv("AVATARGEN_ROUTER_URL", router.url)
        monkeypatch.setenv("HF_ENDPOINT", router.url)  # nothing may reach huggingface.co
        monkeypatch.setenv("AVATARGEN_RETRY_SCALE", "0.01")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield router, cdn


def gen(run_cli, *args: str):
    result = run_cli("generate", *args, "--json", "--yes")
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, lines


def credits(run_cli) -> dict:
    result = run_cli("credits", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ------------------------------------------------------------------ end to end through the CLI
@pytest.mark.slow
def test_qwen_pose_batch_end_to_end(tmp_path, run_cli, fakes):
    router, cdn = fakes
    make_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    result, lines = gen(run_cli, str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose", "wave",
                        "-o", str(out), "--concurrency", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line["status"] for line in lines] == ["done", "done"]
    assert {line["credits"] for line in lines} == {7}
    submits = router.submits()
    assert len(submits) == 2
    for submit in submits:
        assert (
            submit["path"] == "/fal-ai/fal-ai/qwen-image-edit-2511" and submit["query"] == "_subdomain=queue"
        )
        body = submit["json"]
        photo, pose = (decode_data_url(url) for url in body["image_urls"])  # exactly 2 images
        assert photo.size == pose.size == (1024, 1024)
        assert pose.getpixel((0, 0)) == (0, 0, 0)  # the skeleton on black
        assert body["image_url"] == body["image_urls"][0]
        assert "image 1" in body["prompt"] and "image 2" in body["prompt"] and "waving" in body["prompt"]
        assert body["image_size"] == {"width": 1024, "height": 1024}
        assert (body["num_inference_steps"], body["guidance_scale"]) == (50, 4.0)
    # COMPLETED after 3 polls, each job; the token went to the router, never to the CDN.
    assert len(router.polls()) == 2 * 3
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in router.requests)
    assert len(cdn.requests) == 2 and all("authorization" not in r["headers"] for r in cdn.requests)
    for line in lines:
        output = Path(line["output"])
        assert output.parent == out and output.is_file()
        meta = read_metadata(output)
        assert meta["model"] == QWEN and meta["pose"] == "wave" and meta["job_key"] == line["job_key"]
    report = credits(run_cli)
    assert report["spent_today"] == 14 and report["reserved"] == 0
    assert report["requests_today"] == 2  # the submits; queue polls and downloads are not charged
    assert TOKEN not in result.stdout + result.stderr


@pytest.mark.slow
def test_reference_photos_go_along_as_further_images_to_a_model_that_takes_several(tmp_path, run_cli, fakes):
    router, _ = fakes
    photo, ref = make_photos(tmp_path / "photos", 2)
    result, lines = gen(run_cli, str(photo), "--ref", str(ref), "--model", "qwen-image-edit-pose",
                        "--pose", "wave", "-o", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line["status"] for line in lines] == ["done"]
    (submit,) = router.submits()
    sent = [decode_data_url(url).convert("RGB") for url in submit["json"]["image_urls"]]
    assert len(sent) == 3  # the photo, the pose, the reference: whole photos, no face crop
    assert sent[0].getpixel((5, 5))[0] < 5 and 35 < sent[2].getpixel((5, 5))[0] < 45  # subject, then ref
    assert "image 3" in submit["json"]["prompt"].lower()


@pytest.mark.slow
def test_payment_required_stops_the_batch_and_keeps_the_rest_queued(tmp_path, run_cli, fakes):
    router, _ = fakes
    router.paid_submits = 1
    make_photos(tmp_path / "photos", 4)
    result, lines = gen(run_cli, str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose", "wave",
                        "-o", str(tmp_path / "out"), "--concurrency", "1")  # fmt: skip
    assert result.returncode == 9, result.stderr
    assert "Hugging Face credits are used up" in result.stderr
    assert "https://huggingface.co/settings/billing" in result.stderr
    assert [line["status"] for line in lines] == ["done"]  # no failure per job
    assert len(router.submits()) == 2  # the 402, then nothing more was sent
    report = credits(run_cli)
    assert report["spent_today"] == 7 and report["reserved"] == 0
    history = [json.loads(line) for line in run_cli("history", "--json").stdout.splitlines()]
    assert sorted(row["status"] for row in history) == ["done", "queued", "queued", "queued"]


@pytest.mark.slow
def test_a_failed_job_is_refunded_and_the_batch_goes_on(tmp_path, run_cli, fakes):
    router, _ = fakes
    router.failing_submits = (0,)
    make_photos(tmp_path / "photos", 2)
    result, lines = gen(run_cli, str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose", "wave",
                        "-o", str(tmp_path / "out"), "--concurrency", "1")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert sorted(line["status"] for line in lines) == ["done", "failed"]
    failed = next(line for line in lines if line["status"] == "failed")
    assert "fal-ai failed the job" in failed["error"] and failed["credits"] == 0
    report = credits(run_cli)
    assert report["spent_today"] == 7 and report["reserved"] == 0


@pytest.mark.slow
def test_flux_kontext_on_replicate_sends_the_pose_in_words(tmp_path, run_cli, fakes):
    router, cdn = fakes
    make_photos(tmp_path / "photos", 1)
    result, lines = gen(run_cli, str(tmp_path / "photos"), "--model", "flux-kontext", "--hf-provider", "replicate",
                        "--pose", "t-pose", "-o", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert lines[0]["status"] == "done" and lines[0]["credits"] == 6
    (submit,) = router.submits()
    assert submit["path"] == "/replicate/v1/models/black-forest-labs/flux-kontext-dev/predictions"
    assert submit["headers"]["prefer"] == "wait"
    sent = submit["json"]["input"]
    assert "image_urls" not in sent  # one image: the photo; the pose is words
    assert decode_data_url(sent["input_image"]).size == (1024, 1024)
    assert "Change the pose" in sent["prompt"] and "arms" in sent["prompt"]
    assert all("authorization" not in r["headers"] for r in cdn.requests)


@pytest.mark.slow
def test_retry_goes_back_to_the_provider_the_batch_ran_on(tmp_path, run_cli, fakes):
    """--hf-provider replicate, stopped by a 402: `retry` sends the rest to replicate again, not
    to the catalog's provider (fal-ai)."""
    router, _ = fakes
    router.paid_submits = 1
    make_photos(tmp_path / "photos", 3)
    result, _ = gen(run_cli, str(tmp_path / "photos"), "--model", "flux-kontext", "--hf-provider", "replicate",
                    "--pose", "wave", "-o", str(tmp_path / "out"), "--concurrency", "1")  # fmt: skip
    assert result.returncode == 9, result.stderr
    router.paid_submits = None
    retried = run_cli("retry", "--json", "--yes")
    assert retried.returncode == 0, retried.stderr
    paths = [submit["path"] for submit in router.submits()]
    assert len(paths) == 4 and all(path.startswith("/replicate/") for path in paths), paths
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


@pytest.mark.slow
def test_a_token_alone_runs_the_provider_model_by_default(tmp_path, run_cli, fakes):
    make_photos(tmp_path / "photos", 1)
    env = {"AVATARGEN_NO_LOCAL": "1"}
    result = run_cli("generate", str(tmp_path / "photos" / "person0.jpg"), "--pose", "wave", "--json",
                     "-o", str(tmp_path / "out"), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("running qwen-image-edit-pose on Hugging Face Inference Providers") == 1
    assert "7 credits per image" in result.stderr
    assert json.loads(result.stdout)["model"] == QWEN
    # An explicit model still wins: the ControlNet model needs an endpoint (exit 6).
    explicit = run_cli("generate", str(tmp_path / "photos"), "--model", "controlnet-openpose-sd15",
                       "-o", str(tmp_path / "out2"), env=env)  # fmt: skip
    assert explicit.returncode == 6, explicit.stderr


@pytest.mark.slow
def test_without_a_token_the_exit_6_message_names_the_token_path_first(tmp_path, run_cli, monkeypatch):
    make_photos(tmp_path / "photos", 1)
    result = run_cli("generate", str(tmp_path / "photos"), env={"AVATARGEN_NO_LOCAL": "1"})
    assert result.returncode == 6
    hint = result.stderr.split("—", 1)[1]
    assert hint.index("HF_TOKEN") < hint.index("avatargen[serve]")
    assert "Inference Providers" in hint


# ------------------------------------------------------------------ status: the live mapping
@pytest.mark.slow
def test_status_shows_the_live_mapping_and_the_token(run_cli, monkeypatch):
    mappings = {
        "Qwen/Qwen-Image-Edit-2511": {
            "fal-ai": {
                "status": "live",
                "providerId": "fal-ai/qwen-image-edit-2511",
                "task": "image-to-image",
            }
        },
        "black-forest-labs/FLUX.1-Kontext-dev": {
            "replicate": {
                "status": "staging",
                "providerId": "black-forest-labs/flux-kontext-dev",
                "task": "image-to-image",
            },  # fmt: skip
        },
    }
    with FakeHub(mappings) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
        live = json.loads(run_cli("status", "qwen-image-edit-pose", "--json", env=env).stdout)
        staging = json.loads(
            run_cli("status", "flux-kontext", "--hf-provider", "replicate", "--json", env=env).stdout
        )
        absent = json.loads(run_cli("status", "flux-kontext", "--json", env=env).stdout)
        text = run_cli("status", "qwen-image-edit-pose", env=env).stdout
    assert live["backend"] == "hf-providers" and live["state"] == "live"
    assert live["token"]["found"] is True and live["token"]["source"] == "HF_TOKEN"
    assert staging["state"] == "staging"
    assert absent["state"] == "absent" and "replicate (staging)" in absent["detail"]
    assert "state     live: fal-ai serves it as fal-ai/qwen-image-edit-2511" in text
    assert all(r["path"].startswith("/api/models/") for r in hub.requests)
    assert all("authorization" not in r["headers"] for r in hub.requests)


@pytest.mark.slow
def test_models_list_shows_how_the_pose_travels(run_cli):
    result = run_cli("models", "list")
    rows = {line.split("\t")[0]: line.split("\t") for line in result.stdout.splitlines()[1:]}
    header = result.stdout.splitlines()[0].split("\t")
    pose = header.index("pose")
    assert rows[QWEN][pose] == "image" and rows[KONTEXT][pose] == "words"
    assert rows["avatar-generator:controlnet-openpose-sd15"][pose] == "image"


# ------------------------------------------------------------------ the backend in-process
def _request(model, **kw):
    from PIL import Image

    from avatargen.images import png_bytes
    from avatargen.providers.base import GenerationRequest

    values = dict(
        model=model, prompt="studio portrait", negative_prompt="blurry", width=64, height=64, steps=8,
        guidance_scale=3.5, controlnet_conditioning_scale=1.0, seed=42,
        pose_png=png_bytes(Image.new("RGB", (64, 64))), pose_description="waving with the right hand",
        init_image_png=png_bytes(Image.new("RGB", (64, 64), (200, 150, 120))), strength=0.75,
    )  # fmt: skip
    values.update(kw)
    return GenerationRequest(**values)


def _provider(key: str, **kw):
    from avatargen.providers.router import RouterProvider

    return RouterProvider(load_catalog().by_key[key], token=find_token(), **kw)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "hf_provider"), [(QWEN, "fal-ai"), (KONTEXT, "fal-ai"), (KONTEXT, "replicate")]
)
def test_each_provider_receives_what_huggingface_hubs_own_client_sends(fakes, monkeypatch, key, hf_provider):
    """The same image_to_image call made by huggingface_hub's InferenceClient (its router
    pointed at the same fake) and by our backend: identical route, headers that matter, body."""
    import huggingface_hub.constants as hub_constants
    from huggingface_hub import InferenceClient
    from huggingface_hub.hf_api import InferenceProviderMapping
    from huggingface_hub.inference._providers import _common

    from avatargen.providers.router import call_arguments, resolve_hf_provider

    router, _ = fakes
    model = load_catalog().by_key[key]
    provider = _provider(key, hf_provider=hf_provider)
    request = _request(model)
    provider.generate(request)
    ours = router.submits()[-1]

    _, provider_id = resolve_hf_provider(model, hf_provider)
    mapping = InferenceProviderMapping(provider=hf_provider, hf_model_id=model.huggingface_model,
                                       providerId=provider_id, status="live", task="image-to-image")  # fmt: skip
    monkeypatch.setitem(
        _common.HARDCODED_MODEL_INFERENCE_MAPPING[hf_provider], model.huggingface_model, mapping
    )
    monkeypatch.setattr(hub_constants, "INFERENCE_PROXY_TEMPLATE", router.url + "/{provider}")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    image, parameters = call_arguments(request, model)
    client = InferenceClient(provider=hf_provider, api_key=TOKEN)
    # Only its submit matters (its fal-ai polling assumes the public router's host).
    with contextlib.suppress(Exception):
        client.image_to_image(image, model=model.huggingface_model, **parameters)
    theirs = [r for r in router.submits() if r is not ours][-1]
    assert (ours["path"], ours["query"], ours["json"]) == (theirs["path"], theirs["query"], theirs["json"])
    for header in ("authorization", "content-type", "prefer"):
        assert ours["headers"].get(header) == theirs["headers"].get(header)
    if key == QWEN:
        assert len(ours["json"]["image_urls"]) == 2


@pytest.mark.slow
def test_unauthorized_names_the_inference_providers_permission(fakes):
    router, _ = fakes
    router.token = "hf_someoneelse"
    with pytest.raises(AuthError) as caught:
        _provider(QWEN).generate(_request(load_catalog().by_key[QWEN]))
    assert "Make calls to Inference Providers" in caught.value.hint
    assert TOKEN not in caught.value.one_line()


@pytest.mark.slow
def test_no_token_stops_before_sending(fakes, monkeypatch):
    router, _ = fakes
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(AuthError) as caught:
        _provider(QWEN).generate(_request(load_catalog().by_key[QWEN]))
    assert caught.value.stops_batch and not router.requests


@pytest.mark.slow
def test_a_result_image_that_cannot_be_downloaded_is_a_retryable_failure(fakes):
    from avatargen.batch import _never_succeeds

    router, cdn = fakes
    cdn.broken = True
    with pytest.raises(ProviderError) as caught:
        _provider(QWEN).generate(_request(load_catalog().by_key[QWEN]))
    assert "could not be downloaded" in caught.value.message
    assert not _never_succeeds(caught.value) and not caught.value.stops_batch
    assert len(cdn.requests) == 4  # the policy's 3 retries of a 500
    assert all("authorization" not in r["headers"] for r in cdn.requests)


def test_missing_hub_extra_names_the_install_command(monkeypatch):
    import builtins

    from avatargen.errors import MissingExtra
    from avatargen.providers import router as router_mod

    real_import = builtins.__import__

    def no_hub(name, *args, **kw):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(MissingExtra) as caught:
        router_mod.submit_url("fal-ai", "fal-ai/qwen-image-edit-2511")
    assert "pip install 'avatargen[hub]'" in caught.value.hint
