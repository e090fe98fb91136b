"""The one pipeline module: the wire contract's checks, and real diffusers pipelines on tiny models."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import base64
import json

import pytest

from avatargen.catalog import load_catalog
from avatargen.serve.pipelines import (
    ControlNetService,
    LoadError,
    ModelSpec,
    RequestError,
    parse_request,
    png_bytes,
    spec_for_folder,
)
from avatargen.serve.tiny import TINY_VERSION, ensure_tiny, write_tiny_tokenizer
from helpers.images import b64, image_bytes, png
from serve_fixtures import pose_png, request_body, tiny_models  # noqa: F401 - fixture
from serve_hostile_bodies import b64, header_only_png

SPEC = ModelSpec(
    key="k",
    architecture="sd15",
    controlnet="c",
    base_model="b",
    width=512,
    height=512,
    steps=30,
    guidance_scale=7.5,
    controlnet_conditioning_scale=0.9,
    negative_prompt="ugly",
)
POSE_B64 = base64.b64encode(pose_png(64, 64)).decode("ascii")


# ---------------------------------------------------------------- the request
def test_our_shape_gives_every_field():
    params = parse_request(request_body(width=128, height=96, steps=3, seed=11, strength=0.5), SPEC)
    assert (params.prompt, params.negative_prompt) == ("a portrait", "blurry")
    assert (params.width, params.height, params.steps, params.seed) == (128, 96, 3, 11)
    assert (params.guidance_scale, params.controlnet_conditioning_scale) == (5.0, 1.0)
    assert params.pose.size == (128, 96)  # the pose is brought to the asked size
    assert params.init_image is None


def test_hf_style_and_public_handler_style_read_the_same():
    ours = parse_request(
        {"inputs": {"prompt": "p", "image": POSE_B64, "seed": 3, "width": 64, "height": 64}}, SPEC
    )
    hf = parse_request(
        {"inputs": "p", "parameters": {"image": POSE_B64, "seed": 3, "width": 64, "height": 64}}, SPEC
    )
    public = parse_request({"inputs": "p", "image": POSE_B64, "seed": 3, "width": 64, "height": 64}, SPEC)
    for other in (hf, public):
        assert (other.prompt, other.seed, other.width, other.steps) == (
            ours.prompt,
            ours.seed,
            ours.width,
            ours.steps,
        )
        assert other.pose.tobytes() == ours.pose.tobytes()


def test_missing_values_come_from_the_model_and_seed_is_drawn():
    params = parse_request({"inputs": {"prompt": "p", "image": POSE_B64}}, SPEC)
    assert (params.width, params.height, params.steps) == (512, 512, 30)
    assert (params.guidance_scale, params.controlnet_conditioning_scale, params.negative_prompt) == (
        7.5,
        0.9,
        "ugly",
    )
    seeds = {parse_request({"inputs": {"prompt": "p", "image": POSE_B64}}, SPEC).seed for _ in range(5)}
    assert len(seeds) > 1


def test_data_uri_and_raw_bytes_are_accepted():
    uri = parse_request({"inputs": {"prompt": "p", "image": "data:image/png;base64," + POSE_B64}}, SPEC)
    raw = parse_request({"inputs": {"prompt": "p", "image": pose_png(64, 64)}}, SPEC)
    assert uri.pose.tobytes() == raw.pose.tobytes()


def _jpeg_b64() -> str:
    return b64(image_bytes((40, 30), "red", "JPEG"))


def test_init_image_and_strength():
    params = parse_request(request_body(init_image=_jpeg_b64(), strength=0.6), SPEC)
    assert params.init_image.size == (64, 64) and params.strength == 0.6


BAD = [
    ("not an object", [1, 2], 400, "JSON object"),
    ("no inputs", {"prompt": "p"}, 400, "'inputs'"),
    ("inputs a number", {"inputs": 5}, 400, "'inputs'"),
    ("parameters a list", {"inputs": "p", "parameters": [1]}, 400, "'parameters'"),
    ("no prompt", {"inputs": {"image": POSE_B64}}, 422, "'prompt'"),
    ("blank prompt", {"inputs": {"prompt": "  ", "image": POSE_B64}}, 422, "'prompt'"),
    ("no image", {"inputs": {"prompt": "p"}}, 422, "'image'"),
    ("bad base64", {"inputs": {"prompt": "p", "image": "not*base64"}}, 400, "base64"),
    (
        "not an image",
        {"inputs": {"prompt": "p", "image": base64.b64encode(b"hello").decode()}},
        400,
        "readable image",
    ),
    ("image a number", {"inputs": {"prompt": "p", "image": 3}}, 400, "'image'"),
    ("width not /8", {"inputs": {"prompt": "p", "image": POSE_B64, "width": 100}}, 422, "multiple of 8"),
    ("width too big", {"inputs": {"prompt": "p", "image": POSE_B64, "width": 4096}}, 422, "'width'"),
    ("height too small", {"inputs": {"prompt": "p", "image": POSE_B64, "height": 32}}, 422, "'height'"),
    (
        "steps 0",
        {"inputs": {"prompt": "p", "image": POSE_B64, "num_inference_steps": 0}},
        422,
        "num_inference_steps",
    ),
    (
        "steps 151",
        {"inputs": {"prompt": "p", "image": POSE_B64, "num_inference_steps": 151}},
        422,
        "between 1 and 150",
    ),
    (
        "steps 2.5",
        {"inputs": {"prompt": "p", "image": POSE_B64, "num_inference_steps": 2.5}},
        422,
        "whole number",
    ),
    (
        "steps text",
        {"inputs": {"prompt": "p", "image": POSE_B64, "num_inference_steps": "20"}},
        422,
        "a number",
    ),
    ("width bool", {"inputs": {"prompt": "p", "image": POSE_B64, "width": True}}, 422, "a number"),
    ("negative seed", {"inputs": {"prompt": "p", "image": POSE_B64, "seed": -1}}, 422, "'seed'"),
    (
        "strength 0 with init",
        {"inputs": {"prompt": "p", "image": POSE_B64, "init_image": POSE_B64, "strength": 0}},
        422,
        "'strength'",
    ),
    (
        "bad init_image",
        {"inputs": {"prompt": "p", "image": POSE_B64, "init_image": "@@"}},
        400,
        "'init_image'",
    ),
]


@pytest.mark.parametrize(("body", "status", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_are_refused_with_status_and_field(body, status, words):
    with pytest.raises(RequestError) as caught:
        parse_request(body, SPEC)
    assert caught.value.status == status
    assert words in str(caught.value)


def _png_b64(width: int, height: int) -> str:
    return b64(png((width, height), "gray"))


def test_image_sizes_are_checked_on_the_header_before_decoding():
    small = {"prompt": "p", "width": 64, "height": 64}
    # 4x the requested pixels is the most an image may have: 128x128 for 64x64 passes ...
    assert parse_request({"inputs": {**small, "image": _png_b64(128, 128)}}, SPEC).pose.size == (64, 64)
    # ... one row more does not, for the pose or the photo.
    for name in ("image", "init_image"):
        body = {"inputs": {**small, "image": POSE_B64, name: _png_b64(128, 129)}}
        with pytest.raises(RequestError, match=f"'{name}' is 128x129 pixels") as caught:
            parse_request(body, SPEC)
        assert caught.value.status == 422
    # A header claiming 12000x12000 with no pixel data: refused for its size, not as unreadable
    # (the size is read before decoding; decoding it would have needed 432 MB).
    bomb = b64(header_only_png(12000, 12000))
    with pytest.raises(RequestError, match="12000x12000 pixels") as caught:
        parse_request({"inputs": {"prompt": "p", "image": bomb}}, SPEC)
    assert caught.value.status == 422
    # And an absolute cap whatever the requested size (2048x2048 asks allow 4096x4096 at most).
    big = {"prompt": "p", "width": 2048, "height": 2048, "image": b64(header_only_png(4096, 4097))}
    with pytest.raises(RequestError, match="4096x4097"):
        parse_request({"inputs": big}, SPEC)


def test_prompts_are_capped_in_length():
    assert len(parse_request(request_body(prompt="a" * 2000), SPEC).prompt) == 2000
    for name in ("prompt", "negative_prompt"):
        with pytest.raises(RequestError, match=f"'{name}' is 2,001 characters") as caught:
            parse_request(request_body(**{name: "a" * 2001}), SPEC)
        assert caught.value.status == 422
    with pytest.raises(RequestError, match="'prompt' is 5,000 characters"):  # the HF shape too
        parse_request({"inputs": "b" * 5000, "parameters": {"image": POSE_B64}}, SPEC)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", ["seed", "num_inference_steps", "guidance_scale", "strength"])
def test_non_finite_numbers_are_422_not_a_crash(name, value):
    # The endpoint toolkit hands parse_request whatever its JSON parser made of NaN or 1e309.
    with pytest.raises(RequestError, match="finite") as caught:
        parse_request(request_body(**{name: value}), SPEC)
    assert caught.value.status == 422


# huggingface_hub's InferenceClient.image_to_image(photo, prompt=..., control_image=pose) sends the
# photo as `inputs` and everything else in `parameters` (see tests/test_hf_client_interop.py).
PHOTO_B64 = _jpeg_b64()


@pytest.mark.parametrize("pose_key", ["image", "control_image"])
def test_a_base64_photo_in_inputs_is_the_init_image_not_the_prompt(pose_key):
    body = {"inputs": PHOTO_B64, "parameters": {"prompt": "p", pose_key: POSE_B64, "width": 64, "height": 64}}
    params = parse_request(body, SPEC)
    assert params.prompt == "p"
    assert params.init_image is not None and params.init_image.getpixel((32, 32)) == (254, 0, 0)
    assert params.pose.tobytes() == parse_request(request_body(), SPEC).pose.tobytes()


def test_photo_in_inputs_edge_cases():
    # target_size is how image_to_image asks for a size.
    sized = {"inputs": PHOTO_B64, "parameters": {"prompt": "p", "control_image": POSE_B64}}
    sized["parameters"]["target_size"] = {"width": 96, "height": 64}
    assert parse_request(sized, SPEC).init_image.size == (96, 64)
    # A data: URI photo counts as an image too.
    uri = {"inputs": "data:image/jpeg;base64," + PHOTO_B64, "parameters": {"prompt": "p", "image": POSE_B64}}
    assert parse_request(uri, SPEC).init_image is not None
    # A plain prompt in inputs with parameters but no prompt there: still the prompt.
    plain = parse_request({"inputs": "a portrait", "parameters": {"control_image": POSE_B64}}, SPEC)
    assert plain.prompt == "a portrait" and plain.init_image is None


PHOTO_BAD = [
    ("photo, no prompt", {"inputs": PHOTO_B64, "parameters": {"image": POSE_B64}}, 422, "in 'parameters'"),
    (
        "photo twice",
        {"inputs": PHOTO_B64, "parameters": {"prompt": "p", "image": POSE_B64, "init_image": PHOTO_B64}},
        422,
        "two photos",
    ),
    (
        "pose twice",
        {"inputs": "p", "parameters": {"image": POSE_B64, "control_image": POSE_B64}},
        422,
        "pose once",
    ),
    ("prompt twice", {"inputs": "p", "parameters": {"prompt": "q", "image": POSE_B64}}, 400, "'inputs'"),
    ("photo, no pose", {"inputs": PHOTO_B64, "parameters": {"prompt": "p"}}, 422, "'control_image'"),
]


@pytest.mark.parametrize(
    ("body", "status", "words"), [b[1:] for b in PHOTO_BAD], ids=[b[0] for b in PHOTO_BAD]
)
def test_photo_in_inputs_refusals(body, status, words):
    with pytest.raises(RequestError) as caught:
        parse_request(body, SPEC)
    assert caught.value.status == status
    assert words in str(caught.value)


# ---------------------------------------------------------------- the model
def test_spec_from_catalog_models():
    catalog = load_catalog()
    sd15 = ModelSpec.from_catalog(catalog.lookup("controlnet-openpose-sd15"))
    assert (sd15.architecture, sd15.controlnet, sd15.base_model) == (
        "sd15",
        "lllyasviel/control_v11p_sd15_openpose",
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
    )
    assert (sd15.width, sd15.height, sd15.steps) == (512, 512, 30)
    xl = ModelSpec.from_catalog(catalog.lookup("controlnet-openpose-sdxl-ultra"))
    assert (xl.architecture, xl.controlnet, xl.width) == ("sdxl", "xinsir/controlnet-openpose-sdxl-1.0", 1024)
    assert ModelSpec.from_dict(json.loads(json.dumps(xl.to_dict()))) == xl
    with pytest.raises(LoadError, match="sd35"):
        ModelSpec.from_catalog(catalog.lookup("sd35-controlnet-canny"))


@pytest.mark.slow
def test_spec_is_guessed_from_a_saved_pipeline(tiny_models):
    sd15 = spec_for_folder(tiny_models / f"sd15-controlnet-v{TINY_VERSION}")
    sdxl = spec_for_folder(tiny_models / f"sdxl-controlnet-v{TINY_VERSION}")
    assert (sd15.architecture, sd15.width, sd15.tiny) == ("sd15", 512, True)
    assert (sdxl.architecture, sdxl.width, sdxl.tiny) == ("sdxl", 1024, True)


@pytest.mark.slow
def test_a_folder_without_a_pipeline_is_a_load_error(tmp_path):
    with pytest.raises(LoadError, match="model_index.json"):
        ControlNetService(SPEC, source=tmp_path).load()
    with pytest.raises(LoadError):
        spec_for_folder(tmp_path)


def test_tiny_tokenizer_covers_every_byte(tmp_path):
    from transformers import CLIPTokenizer

    folder = write_tiny_tokenizer(tmp_path / "tok")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    ids = tokenizer("Portrait, ÉTÉ ✨ 42!")["input_ids"]
    assert ids[0] == 512 and ids[-1] == 513  # <|startoftext|> ... <|endoftext|>
    assert tokenizer.unk_token_id not in ids[1:-1]
    assert len(ids) > 10


def test_ensure_tiny_reuses_the_cached_folder(tiny_models):
    folder = ensure_tiny("sd15", tiny_models)
    before = (folder / "model_index.json").stat().st_mtime_ns
    assert ensure_tiny("sd15", tiny_models) == folder
    assert (folder / "model_index.json").stat().st_mtime_ns == before
    assert (folder / "TINY.txt").is_file() and (folder / "controlnet" / "config.json").is_file()


# ---------------------------------------------------------------- real pipelines, tiny weights
@pytest.fixture(scope="module")
def services(tiny_models):
    out = {}
    for architecture in ("sd15", "sdxl"):
        folder = tiny_models / f"{architecture}-controlnet-v{TINY_VERSION}"
        service = ControlNetService(spec_for_folder(folder), source=folder)
        service.load()
        out[architecture] = service
    return out


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["sd15", "sdxl"])
def test_tiny_pipeline_generates_at_the_asked_size_and_reproduces_seeds(services, architecture):
    service = services[architecture]
    import diffusers

    expected = {
        "sd15": diffusers.StableDiffusionControlNetPipeline,
        "sdxl": diffusers.StableDiffusionXLControlNetPipeline,
    }[architecture]
    assert type(service.pipe) is expected
    assert (service.device, service.dtype_name) == ("cpu", "float32")
    first = service.generate(parse_request(request_body(width=64, height=64, seed=5), service.spec))
    again = service.generate(parse_request(request_body(width=64, height=64, seed=5), service.spec))
    other = service.generate(parse_request(request_body(width=64, height=64, seed=6), service.spec))
    assert first.size == (64, 64) and first.mode == "RGB"
    assert png_bytes(first) == png_bytes(again)
    assert png_bytes(first) != png_bytes(other)
    wide = service.generate(parse_request(request_body(width=96, height=64), service.spec))
    assert wide.size == (96, 64)


@pytest.mark.parametrize("architecture", ["sd15", "sdxl"])
def test_init_image_uses_img2img_over_the_same_weights(services, architecture):
    service = services[architecture]
    import diffusers

    body = request_body(init_image=_jpeg_b64(), strength=0.5)
    image = service.generate(parse_request(body, service.spec))
    assert image.size == (64, 64)
    img2img = service.img2img_pipe()
    expected = {
        "sd15": diffusers.StableDiffusionControlNetImg2ImgPipeline,
        "sdxl": diffusers.StableDiffusionXLControlNetImg2ImgPipeline,
    }[architecture]
    assert type(img2img) is expected
    assert img2img.unet is service.pipe.unet and img2img.controlnet is service.pipe.controlnet  # no reload
    plain = service.generate(parse_request(request_body(), service.spec))
    assert png_bytes(plain) != png_bytes(image)


def test_hub_loading_prefers_fp16_files_and_falls_back():
    from avatargen.serve.pipelines import _from_hub

    calls = []

    class Repo:
        @classmethod
        def from_pretrained(cls, repo_id, **kwargs):
            calls.append(kwargs.get("variant"))
            if kwargs.get("variant") == "fp16":
                raise OSError("no file named diffusion_pytorch_model.fp16.safetensors")
            return "loaded"

    assert _from_hub(Repo, "org/cn", "fp16", torch_dtype="half") == "loaded"
    assert calls == ["fp16", None]
    calls.clear()
    assert _from_hub(Repo, "org/cn", None) == "loaded" and calls == [None]
