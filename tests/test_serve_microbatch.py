"""Micro-batching in `avatargen serve` (issue 15): requests already queued with the same size,
steps and settings share one pipeline call, each image following its own seed; the real tiny
pipelines behind the host, a gate call on the runner so requests pile up on purpose."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import asyncio
import base64
import io
import threading
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from avatargen.serve.pipelines import ControlNetService, batch_key, parse_request, spec_for_folder
from avatargen.serve.runner import PipelineRunner
from avatargen.serve.server import ModelHost, create_app
from avatargen.serve.tiny import TINY_VERSION
from helpers.images import b64, encoded
from serve_fixtures import pose_png, request_body, tiny_models  # noqa: F401 - fixtures

# Batched kernels sum in another order than one image's: measured on the tiny sd15 and sdxl
# pipelines (text, img2img, faces), batched images differ from solo ones by 1/255 at most.
ROUNDING = 1


@pytest.fixture(scope="module")
def services(tiny_models):
    """The tiny pipelines, loaded once for this module: {"sd15": service, "sdxl": service}."""
    loaded = {}
    for architecture in ("sd15", "sdxl"):
        folder = tiny_models / f"{architecture}-controlnet-v{TINY_VERSION}"
        loaded[architecture] = ControlNetService(spec_for_folder(folder), source=folder)
        loaded[architecture].load()
    return loaded


class PipeCalls:
    """Counts the diffusers pipeline calls of a service, with how many images each one made;
    `fail` makes a batched call raise."""

    def __init__(self, monkeypatch, service: ControlNetService, fail: bool = False) -> None:
        self.sizes: list[int] = []
        pipe_classes = {type(service.pipe), type(service.img2img_pipe())}
        for cls in pipe_classes:
            real = cls.__call__

            def counted(pipe, *args, _real=real, **kwargs):
                prompt = kwargs["prompt"]
                size = len(prompt) if isinstance(prompt, list) else 1
                self.sizes.append(size)
                if fail and size > 1:
                    raise RuntimeError("CUDA out of memory\nmore")
                return _real(pipe, *args, **kwargs)

            monkeypatch.setattr(cls, "__call__", counted)


def _host(service, max_batch: int = 4) -> ModelHost:
    host = ModelHost(service.spec, lambda: service, runner=PipelineRunner(), max_batch=max_batch)
    host.start().join(10)
    assert host.state == "ready"
    return host


def _params(service, seed: int, **extra):
    body = request_body(64, 64, 2, seed=seed, prompt=f"a portrait {seed}", **extra)
    return parse_request(body, service.spec)


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def _b64_png(image) -> str:
    return b64(encoded(image))


def _gate(runner: PipelineRunner) -> threading.Event:
    """Holds the runner's thread busy until set: what is submitted meanwhile queues."""
    gate, entered = threading.Event(), threading.Event()
    runner.submit(lambda: (entered.set(), gate.wait(30)))
    assert entered.wait(10)
    return gate


async def _until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


def _queued_then_run(host: ModelHost, params: list, cancel: tuple[int, ...] = ()) -> list:
    """Each params submitted while the runner is held, the ones at `cancel` cancelled (a client
    gone), then released: the PNGs (None for a cancelled one)."""

    async def run() -> list:
        gate = _gate(host.runner)
        tasks = [asyncio.ensure_future(host.generate_png_async(p)) for p in params]
        await _until(lambda: host.runner.pending() == len(params))
        for index in cancel:
            tasks[index].cancel()
        await asyncio.sleep(0.05)  # the cancellations reach the runner's futures
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    return [None if isinstance(r, asyncio.CancelledError) else r for r in results]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("architecture", "extra"),
    [
        ("sd15", {}),
        ("sdxl", {}),
        ("sd15", {"init_image": base64.b64encode(pose_png(64, 64)).decode(), "strength": 0.6}),
        ("sdxl", {"ip_adapter_image": base64.b64encode(pose_png(48, 48)).decode(), "ip_adapter_scale": 0.6}),
    ],
    ids=["sd15", "sdxl", "sd15-img2img", "sdxl-face"],
)
def test_queued_compatible_requests_are_one_pipeline_call_each_with_its_own_seed(
    services, monkeypatch, architecture, extra
):
    service = services[architecture]
    params = [_params(service, seed, **extra) for seed in (1, 2, 3)]
    solo = [np.asarray(service.generate(p), dtype=int) for p in params]
    calls = PipeCalls(monkeypatch, service)
    pngs = _queued_then_run(_host(service), params)
    assert calls.sizes == [3]  # one pipeline call for the three requests
    batched = [_pixels(png) for png in pngs]
    assert np.abs(solo[0] - solo[1]).max() > 50  # two seeds, two images
    for alone, together in zip(solo, batched, strict=True):
        assert np.abs(alone - together).max() <= ROUNDING


@pytest.mark.slow
def test_incompatible_requests_never_share_a_call(services, monkeypatch):
    service = services["sd15"]
    a = _params(service, 1)
    other_steps = parse_request(request_body(64, 64, 3, seed=2), service.spec)
    c = _params(service, 3)
    other_size = parse_request(request_body(64, 96, 2, seed=4), service.spec)
    calls = PipeCalls(monkeypatch, service)
    pngs = _queued_then_run(_host(service), [a, other_steps, c, other_size])
    # The oldest first, with its partners from further back; the others each alone.
    assert calls.sizes == [2, 1, 1]
    assert [_pixels(png).shape for png in pngs] == [(64, 64, 3), (64, 64, 3), (64, 64, 3), (96, 64, 3)]


@pytest.mark.parametrize(
    "change",
    [
        {"width": 72},
        {"height": 72},
        {"num_inference_steps": 3},
        {"guidance_scale": 6.0},
        {"controlnet_conditioning_scale": 0.5},
        {"init_image": base64.b64encode(pose_png(64, 64)).decode()},
        {"negative_prompt": ""},
    ],
)
def test_batch_key_tells_apart_what_one_call_cannot_mix(services, change):
    spec = services["sd15"].spec
    base = parse_request(request_body(seed=1), spec)
    assert batch_key(base) == batch_key(parse_request(request_body(seed=2, prompt="other"), spec))
    assert batch_key(base) != batch_key(parse_request(request_body(seed=1, **change), spec))


def test_batch_key_tells_apart_strength_and_faces(services):
    spec = services["sdxl"].spec
    face = base64.b64encode(pose_png(48, 48)).decode()
    photo = {"init_image": base64.b64encode(pose_png(64, 64)).decode()}
    keys = [
        batch_key(parse_request(request_body(**fields), spec))
        for fields in (
            {**photo, "strength": 0.5},
            {**photo, "strength": 0.7},
            {"ip_adapter_image": face, "ip_adapter_scale": 0.6},
            {"ip_adapter_image": face, "ip_adapter_scale": 0.8},
            {"ip_adapter_image": [face, face], "ip_adapter_scale": 0.6},
            {},
        )
    ]
    assert len(set(keys)) == len(keys)


def test_an_error_in_a_batched_call_fails_those_requests_not_the_server(services, monkeypatch):
    service = services["sd15"]
    calls = PipeCalls(monkeypatch, service, fail=True)
    host = _host(service)
    statuses: list[tuple[int, dict]] = []
    with TestClient(create_app(host, queue_size=8)) as client:

        def post(seed: int) -> None:
            response = client.post("/", json=request_body(seed=seed))
            statuses.append((response.status_code, response.json()))

        gate = _gate(host.runner)
        threads = [threading.Thread(target=post, args=(seed,)) for seed in (1, 2)]
        for thread in threads:
            thread.start()
        asyncio.run(_until(lambda: host.runner.pending() == 2))
        gate.set()
        for thread in threads:
            thread.join(30)
        assert statuses == [(500, {"error": "generation failed: CUDA out of memory"})] * 2
        assert calls.sizes == [2]
        # The server goes on: the next request (alone, so not failed by the fake) gets its image.
        assert client.post("/", json=request_body(seed=3)).status_code == 200
    assert calls.sizes == [2, 1]


def test_a_cancelled_request_in_the_queue_is_left_out_of_the_batch(services, monkeypatch):
    service = services["sd15"]
    params = [_params(service, seed) for seed in (1, 2, 3)]
    calls = PipeCalls(monkeypatch, service)
    pngs = _queued_then_run(_host(service), params, cancel=(1,))
    assert calls.sizes == [2]
    assert pngs[1] is None and all(png.startswith(b"\x89PNG") for png in (pngs[0], pngs[2]))


def test_runner_batches_only_what_is_queued_and_never_waits_for_more():
    runner = PipelineRunner()
    batches: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        batches.append(items)
        return [2 * item for item in items]

    # Alone on an idle runner: runs at once, as a batch of one, with nobody else coming.
    started = time.monotonic()
    assert runner.submit_batched(double, 5, key="k", max_batch=4).result(10) == 10
    assert time.monotonic() - started < 2 and batches == [[5]]
    # Queued behind a busy thread: up to max_batch per call, same key only, oldest first.
    gate = _gate(runner)
    futures = [runner.submit_batched(double, i, key=i % 2, max_batch=2) for i in range(5)]
    cancelled = runner.submit_batched(double, 99, key=0, max_batch=2)
    assert cancelled.cancel()
    gate.set()
    assert [f.result(10) for f in futures] == [0, 2, 4, 6, 8]
    assert batches[1:] == [[0, 2], [1, 3], [4]]
    assert cancelled.cancelled()
    # max_batch 1 (batching off) is one call per item.
    gate = _gate(runner)
    futures = [runner.submit_batched(double, i, key="k", max_batch=1) for i in range(2)]
    gate.set()
    assert [f.result(10) for f in futures] == [0, 2] and batches[4:] == [[0], [1]]


def test_a_lone_request_on_a_batching_server_is_not_held(services, monkeypatch):
    service = services["sd15"]
    calls = PipeCalls(monkeypatch, service)
    host = _host(service)
    with TestClient(create_app(host)) as client:
        started = time.monotonic()
        assert client.post("/", json=request_body(seed=1)).status_code == 200
        alone = time.monotonic() - started
    assert calls.sizes == [1]
    assert alone < 10  # no timer anywhere; a generous bound on a loaded 2-core machine


def test_serve_passes_max_batch_and_defaults_to_batching(cli, monkeypatch):
    from avatargen.serve import server as server_mod
    from avatargen.serve.runner import DEFAULT_MAX_BATCH

    seen: list[int] = []
    monkeypatch.setattr(server_mod, "run_server", lambda options, say: seen.append(options.max_batch))
    cli("serve", "--tiny", "--port", "0", "--max-batch", "2")
    cli("serve", "--tiny", "--port", "0")
    assert seen == [2, DEFAULT_MAX_BATCH] and DEFAULT_MAX_BATCH > 1
    from typer.testing import CliRunner

    from avatargen.cli import app

    assert CliRunner().invoke(app, ["serve", "--tiny", "--max-batch", "0"]).exit_code == 2


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["sd15", "sdxl"])
def test_each_request_in_a_batch_keeps_its_own_face(services, monkeypatch, architecture):
    """diffusers' ip_adapter_image would give every image of a call the first request's face."""
    service = services[architecture]
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    faces = [_b64_png(Image.new("RGB", (48, 48), "white")), _b64_png(Image.fromarray(noise))]
    params = [_params(service, 5, ip_adapter_image=face, ip_adapter_scale=2.0) for face in faces]
    solo = [np.asarray(service.generate(p), dtype=int) for p in params]
    assert np.abs(solo[0] - solo[1]).max() > 20  # the same seed: only the face differs
    calls = PipeCalls(monkeypatch, service)
    batched = [_pixels(png) for png in _queued_then_run(_host(service), params)]
    assert calls.sizes == [2]
    for alone, together in zip(solo, batched, strict=True):
        assert np.abs(alone - together).max() <= ROUNDING
