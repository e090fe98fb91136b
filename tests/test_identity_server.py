"""The identity adapter on the server side (issue 12): a tiny random IP-Adapter Plus, loaded with
diffusers' `load_ip_adapter` exactly as the real one, driven by `ip_adapter_image` /
`ip_adapter_scale` in the request, through the pipeline service, `avatargen serve --tiny` and the
endpoint handler.

Same seed everywhere: scale 0 (or no face) must give the very image of a pipeline without the
adapter; a face must change it; another face, or two references, must change it again.
"""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import base64
import dataclasses
import io

import httpx
import numpy as np
import pytest

from avatargen.catalog import load_catalog
from avatargen.serve.pipelines import (
    MAX_IP_ADAPTER_IMAGES,
    ControlNetService,
    ModelSpec,
    RequestError,
    parse_request,
    png_bytes,
)
from avatargen.serve.tiny import TINY_VERSION
from serve_fixtures import (  # noqa: F401 - fixtures
    request_body,
    start_tiny_server,
    tiny_home,
    tiny_models,
    wait_until_ready,
)
from serve_hostile_bodies import b64, huge_png

SD15 = "avatar-generator:controlnet-openpose-sd15"
SDXL = "avatar-generator:controlnet-openpose-sdxl"


def _b64(image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def _faces() -> tuple[str, str]:
    """Two different "faces": the astronaut's head, and a crop of the coffee picture."""
    from PIL import Image
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()[0:220, 140:360])
    coffee = Image.fromarray(data.coffee()[100:300, 200:400])
    return _b64(astronaut), _b64(coffee)


def _pixels(image) -> np.ndarray:
    if isinstance(image, bytes):
        from PIL import Image

        image = Image.open(io.BytesIO(image))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _services(key: str, tiny_models) -> tuple[ControlNetService, ControlNetService]:
    """The tiny model with its tiny adapter, and the same model without one."""
    from avatargen.serve.resolve import model_source

    model = load_catalog().by_key[key]
    spec, _ = model_source(model, tiny=True)
    folder = tiny_models / f"{model.architecture}-controlnet-v{TINY_VERSION}"
    with_adapter = ControlNetService(spec, source=folder)
    without = ControlNetService(dataclasses.replace(spec, ip_adapter_weight_name=""), source=folder)
    return with_adapter, without


def _run(service: ControlNetService, **fields) -> np.ndarray:
    return _pixels(service.generate(parse_request(request_body(**fields), service.spec)))


# ---------------------------------------------------------------- the pipeline
@pytest.mark.slow
def test_sd15_scale_zero_is_no_adapter_and_each_face_changes_the_image(tiny_models):
    face, other = _faces()
    adapter, plain = _services(SD15, tiny_models)
    baseline = _run(plain)
    assert not plain.ip_adapter_loaded and adapter.spec.has_ip_adapter
    assert _run(adapter).tolist() == baseline.tolist()  # loaded, no face: identical
    assert adapter.ip_adapter_loaded
    assert type(adapter.pipe.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    assert _run(adapter, ip_adapter_image=face, ip_adapter_scale=0).tolist() == baseline.tolist()
    with_face = _run(adapter, ip_adapter_image=face)  # the catalog's default scale, 0.6
    assert adapter.spec.ip_adapter_scale == 0.6
    assert np.abs(with_face - baseline).mean() > 1
    assert _run(adapter, ip_adapter_image=face, ip_adapter_scale=0.6).tolist() == with_face.tolist()
    other_face = _run(adapter, ip_adapter_image=other)
    assert np.abs(other_face - with_face).mean() > 1
    both = _run(adapter, ip_adapter_image=[face, other])
    assert np.abs(both - with_face).mean() > 1 and np.abs(both - other_face).mean() > 1
    assert _run(adapter, ip_adapter_image=[face]).tolist() == with_face.tolist()  # a list of one = one
    stronger = _run(adapter, ip_adapter_image=face, ip_adapter_scale=1.5)
    assert np.abs(stronger - with_face).mean() > 1
    # After a face, a request without one is back to the plain image (the scale is reset per call).
    assert _run(adapter).tolist() == baseline.tolist()


@pytest.mark.slow
def test_sdxl_scale_zero_is_no_adapter_and_a_face_changes_the_image(tiny_models):
    face, _ = _faces()
    adapter, plain = _services(SDXL, tiny_models)
    baseline = _run(plain)
    assert _run(adapter, ip_adapter_image=face, ip_adapter_scale=0).tolist() == baseline.tolist()
    assert np.abs(_run(adapter, ip_adapter_image=face) - baseline).mean() > 1


@pytest.mark.slow
def test_identity_works_with_img2img_too(tiny_models):
    face, _ = _faces()
    adapter, plain = _services(SD15, tiny_models)
    from PIL import Image
    from skimage import data

    photo = _b64(Image.fromarray(data.coffee()).resize((64, 64)))
    baseline = _run(plain, init_image=photo, strength=0.8)
    assert _run(adapter, init_image=photo, strength=0.8).tolist() == baseline.tolist()
    with_face = _run(adapter, init_image=photo, strength=0.8, ip_adapter_image=face)
    assert np.abs(with_face - baseline).mean() > 1


# ---------------------------------------------------------------- the wire contract
def _spec(adapter: bool = True) -> ModelSpec:
    fields = {"ip_adapter_repo": "h94/IP-Adapter", "ip_adapter_weight_name": "w.safetensors"}
    return ModelSpec("k", "sd15", "c", "b", ip_adapter_scale=0.6, **(fields if adapter else {}))


BAD_IDENTITY = {
    # name: (fields, status, words)
    "scale too high": ({"ip_adapter_scale": 2.5}, 422, ["'ip_adapter_scale'", "between 0 and 2"]),
    "scale negative": ({"ip_adapter_scale": -0.1}, 422, ["between 0 and 2"]),
    "scale not a number": ({"ip_adapter_scale": "high"}, 422, ["must be a number"]),
    "scale a bool": ({"ip_adapter_scale": True}, 422, ["must be a number"]),
    "scale without a face": ({"ip_adapter_scale": 0.5}, 422, ["no 'ip_adapter_image'"]),
    "too many faces": ({"ip_adapter_image": ["FACE"] * (MAX_IP_ADAPTER_IMAGES + 1)}, 422, ["at most 8"]),
    "not base64": ({"ip_adapter_image": "%%%"}, 400, ["'ip_adapter_image' is not valid base64"]),
    "not an image": ({"ip_adapter_image": base64.b64encode(b"hello").decode()}, 400, ["not a readable"]),
    "a number": ({"ip_adapter_image": 3}, 400, ["'ip_adapter_image' must be a base64"]),
    "one bad in a list": ({"ip_adapter_image": ["FACE", "%%%"]}, 400, ["'ip_adapter_image[1]'"]),
    "a nested list": ({"ip_adapter_image": [["FACE"]]}, 400, ["must be a base64"]),
    # 18 KB of PNG that decodes to 144 million pixels: refused on its header, never decoded.
    "eight bombs": (
        {"ip_adapter_image": [b64(huge_png())] * 8},
        422,
        ["'ip_adapter_image[0]' is 12000x12000"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("problem", list(BAD_IDENTITY))
def test_bad_identity_fields_are_refused_with_the_field_named(problem):
    fields, status, words = BAD_IDENTITY[problem]
    face = _faces()[0]
    if isinstance(fields.get("ip_adapter_image"), list):
        fields = {"ip_adapter_image": [face if v == "FACE" else v for v in fields["ip_adapter_image"]]}
    with pytest.raises(RequestError) as caught:
        parse_request(request_body(**fields), _spec())
    assert caught.value.status == status, str(caught.value)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_a_face_for_a_model_without_an_adapter_is_refused_clearly():
    face = _faces()[0]
    with pytest.raises(RequestError) as caught:
        parse_request(request_body(ip_adapter_image=face), _spec(adapter=False))
    assert caught.value.status == 422 and "has no identity adapter" in str(caught.value)
    # Without a face nothing changes for such a model; scale 0 alone is fine too.
    assert parse_request(request_body(ip_adapter_scale=0), _spec(adapter=False)).ip_adapter_images is None


def test_a_face_too_large_is_refused_on_its_header():
    from PIL import Image

    huge = _b64(Image.new("RGB", (2100, 2100)))
    with pytest.raises(RequestError, match="'ip_adapter_image' is 2100x2100 pixels") as caught:
        parse_request(request_body(ip_adapter_image=huge), _spec())
    assert caught.value.status == 422


def test_identity_fields_in_every_accepted_shape():
    face = _faces()[0]
    spec = _spec()
    ours = parse_request(request_body(ip_adapter_image=face), spec)
    assert len(ours.ip_adapter_images) == 1 and ours.ip_adapter_scale == 0.6
    hub_style = {
        "inputs": "a portrait",
        "parameters": {
            "image": request_body()["inputs"]["image"],
            "ip_adapter_image": [face, face],
            "ip_adapter_scale": 1,
        },
    }
    params = parse_request(hub_style, spec)
    assert len(params.ip_adapter_images) == 2 and params.ip_adapter_scale == 1.0
    assert params.ip_adapter_images[0].mode == "RGB"
    off = parse_request(request_body(ip_adapter_image=face, ip_adapter_scale=0), spec)
    assert off.ip_adapter_images is None and off.ip_adapter_scale == 0
    assert "faces=2" in repr(params) and "base64" not in repr(params)


# ---------------------------------------------------------------- through the real server
@pytest.mark.slow
def test_identity_through_the_real_serve_tiny(tmp_path, tiny_home):
    face, other = _faces()
    server = start_tiny_server(tmp_path, "--model", "controlnet-openpose-sd15", min_load_s=0)
    try:
        wait_until_ready(server.url)
        with httpx.Client(timeout=120) as client:

            def post(**fields) -> httpx.Response:
                return client.post(server.url, json=request_body(**fields), headers={"Accept": "image/png"})

            plain = post()
            assert plain.status_code == 200, plain.text
            off = post(ip_adapter_image=face, ip_adapter_scale=0)
            with_face = post(ip_adapter_image=face, ip_adapter_scale=0.8)
            other_face = post(ip_adapter_image=other, ip_adapter_scale=0.8)
            both = post(ip_adapter_image=[face, other], ip_adapter_scale=0.8)
            assert {r.status_code for r in (off, with_face, other_face, both)} == {200}
            assert _pixels(off.content).tolist() == _pixels(plain.content).tolist()
            images = [_pixels(r.content) for r in (plain, with_face, other_face, both)]
            for i, first in enumerate(images):
                for second in images[i + 1 :]:
                    assert np.abs(first - second).mean() > 1
            for fields, words in (
                ({"ip_adapter_scale": 3}, "between 0 and 2"),
                ({"ip_adapter_scale": 0.5}, "no 'ip_adapter_image'"),
                ({"ip_adapter_image": [face] * 9}, "at most 8"),
            ):
                refused = post(**fields)
                assert refused.status_code == 422, refused.text
                assert words in refused.json()["error"]
            assert post(ip_adapter_image="%%%").status_code == 400
    finally:
        server.stop()


# ---------------------------------------------------------------- through the endpoint handler
@pytest.mark.slow
def test_identity_through_the_handler_of_a_tiny_bundle(cli, tmp_path, tiny_home):
    from avatargen.serve.handler import EndpointHandler

    out = tmp_path / "bundle"
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(out), "--tiny").exit_code == 0
    assert (out / "ip_adapter" / "models" / "ip-adapter-plus-face_sd15.safetensors").is_file()
    assert (out / "ip_adapter" / "models" / "image_encoder" / "config.json").is_file()
    assert "ip_adapter_image" in (out / "README.md").read_text()
    face, other = _faces()
    handler = EndpointHandler(path=str(out))
    assert handler.service.ip_adapter_loaded
    plain = _pixels(handler(request_body()))
    assert (
        _pixels(handler(request_body(ip_adapter_image=face, ip_adapter_scale=0))).tolist() == plain.tolist()
    )
    with_face = _pixels(handler(request_body(ip_adapter_image=face)))
    assert np.abs(with_face - plain).mean() > 1
    assert np.abs(_pixels(handler(request_body(ip_adapter_image=other))) - with_face).mean() > 1
    with pytest.raises(ValueError, match="ip_adapter_scale"):  # the toolkit answers 400 {"error"}
        handler(request_body(ip_adapter_scale=9))


@pytest.mark.slow
def test_a_saved_pipeline_folder_with_an_adapter_is_found_without_a_spec(tiny_models):
    from avatargen.serve.handler import EndpointHandler
    from avatargen.serve.pipelines import spec_for_folder

    folder = tiny_models / f"sdxl-controlnet-v{TINY_VERSION}"
    spec = spec_for_folder(folder)
    assert (spec.ip_adapter_subfolder, spec.ip_adapter_weight_name) == (
        "sdxl_models",
        "ip-adapter-plus-face_sdxl_vit-h.safetensors",
    )
    assert spec.ip_adapter_image_encoder_folder == "models/image_encoder"
    handler = EndpointHandler(path=str(folder))
    face = _faces()[0]
    assert (
        np.abs(
            _pixels(handler(request_body(ip_adapter_image=face))) - _pixels(handler(request_body()))
        ).mean()
        > 1
    )


# ---------------------------------------------------------------- model folders (--model-dir)
@pytest.mark.slow
def test_a_model_dir_holds_its_adapter_in_ip_adapter(tiny_models, tmp_path):
    import shutil

    from avatargen.serve.pipelines import LoadError
    from avatargen.serve.resolve import model_source

    model = load_catalog().by_key[SD15]
    folder = tiny_models / f"sd15-controlnet-v{TINY_VERSION}"
    spec, source = model_source(model, model_dir=folder)  # the catalog's names, the folder's files
    assert spec.ip_adapter_repo == "h94/IP-Adapter" and source == folder
    service = ControlNetService(spec, source=source)
    assert service.adapter_source() == str(folder / "ip_adapter")
    face = _faces()[0]
    assert np.abs(_run(service, ip_adapter_image=face) - _run(service)).mean() > 1

    # A folder whose ip_adapter/ lacks the weight file: a load error naming the file, no download.
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "ip_adapter" / "models" / "ip-adapter-plus-face_sd15.safetensors").unlink()
    with pytest.raises(LoadError, match="could not load the identity adapter .*ip-adapter-plus-face_sd15"):
        ControlNetService(spec, source=broken).load()
