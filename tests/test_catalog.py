"""The model catalog: the four seed models field for field, validation that names file, model and
field (exit 3), merging by key across the shipped file, the config folder, AVATARGEN_CATALOG and
--catalog, and the catalog travelling inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from avatargen import errors
from avatargen.catalog import IdentityAdapter, load_catalog, shipped_catalog_path
from avatargen.errors import CatalogError
from cli_helpers import run_main

REPO = Path(__file__).resolve().parents[1]
SD15 = "avatar-generator:controlnet-openpose-sd15"
SDXL = "avatar-generator:controlnet-openpose-sdxl"
ULTRA = "avatar-generator:controlnet-openpose-sdxl-ultra"
SD35 = "avatar-generator:sd35-controlnet-canny"
PROVIDER_MODELS = [
    "avatar-generator:qwen-image-edit-pose",
    "avatar-generator:flux-kontext",
]  # Inference Providers
PROMPT = "professional portrait, high quality, detailed face"
NEGATIVE = "ugly, blurry, low quality, distorted"

# The table, in the seed's field names (what `--json` speaks).
EXPECTED = {
    SD15: {
        "name": "ControlNet OpenPose SD 1.5 (Free)",
        "huggingface_model": "lllyasviel/control_v11p_sd15_openpose",
        "base_model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "baseModelOriginal": "runwayml/stable-diffusion-v1-5",
        "tier": "free",
        "creditCost": 3,
        "resolution": "512x512",
        "quality": "sd",
        "processingTime": "~15-30s",
        "enabled": True,
        "comingSoon": False,
        "sota": False,
        "priorityQueue": False,
        "steps": 30,
    },
    SDXL: {
        "name": "ControlNet OpenPose SDXL",
        "huggingface_model": "thibaud/controlnet-openpose-sdxl-1.0",
        "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
        "tier": "basic",
        "creditCost": 5,
        "resolution": "1024x1024",
        "quality": "hd",
        "processingTime": "~30-60s",
        "enabled": True,
        "comingSoon": False,
        "sota": False,
        "priorityQueue": False,
        "steps": 50,
    },
    ULTRA: {
        "name": "ControlNet OpenPose SDXL Ultra",
        "huggingface_model": "xinsir/controlnet-openpose-sdxl-1.0",
        "base_model": "stabilityai/stable-diffusion-xl-base-1.0",
        "tier": "pro",
        "creditCost": 8,
        "resolution": "1024x1024",
        "quality": "ultra",
        "processingTime": "~30-60s",
        "enabled": True,
        "comingSoon": False,
        "sota": True,
        "priorityQueue": True,
        "steps": 50,
    },
    SD35: {
        "name": "SD 3.5 ControlNet Canny (Coming Soon)",
        "huggingface_model": "stabilityai/stable-diffusion-3.5-controlnets",
        "base_model": "stabilityai/stable-diffusion-3.5-large",
        "tier": "enterprise",
        "creditCost": 12,
        "resolution": "1024x1024",
        "quality": "premium",
        "processingTime": "~60-90s",
        "enabled": False,
        "comingSoon": True,
        "disabledReason": "no OpenPose ControlNet for SD 3.5 yet (Canny, Depth, Blur only)",
        "sota": False,
        "priorityQueue": False,
        "steps": 60,
    },
}


def _check_seed_records(records: list[dict]) -> None:
    by_key = {r["modelKey"]: r for r in records}
    assert len(by_key) == len(records), "a key listed twice"
    for key, record in by_key.items():
        if key in PROVIDER_MODELS:
            continue  # not the seed's: tests/test_providers_router.py covers them
        want = dict(EXPECTED[key])
        steps = want.pop("steps")
        for field, value in want.items():
            assert record[field] == value, (key, field, record[field])
        assert record["appId"] == "avatar-generator"
        assert record["modelId"] == key.removeprefix("avatar-generator:")
        assert record["defaults"] == {
            "num_inference_steps": steps,
            "guidance_scale": 7.5,
            "controlnet_conditioning_scale": 1.0,
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
        }
        # snake_case names that have a seed spelling never leak into --json
        for snake in ("key", "credit_cost", "processing_time", "coming_soon", "priority_queue", "source"):
            assert snake not in record, (key, snake)
    # Only sd15 keeps an original base model on record (the repo was removed from the Hub).
    assert by_key.get(SDXL, {}).get("baseModelOriginal", "") == ""
    if SD35 in by_key:
        assert by_key[SD35]["status"] == "coming soon"
        assert by_key[SD35]["poseControl"] is False


# ---------------------------------------------------------------- the seed models
def test_models_list_json_gives_the_four_seed_models(cli):
    result = cli("models", "list", "--json")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    # Every model, in catalog order; the coming-soon one is there, marked by its fields.
    assert [r["modelKey"] for r in records] == [SD15, SDXL, ULTRA, SD35, *PROVIDER_MODELS]
    assert [r["enabled"] for r in records] == [True, True, True, False, True, True]
    _check_seed_records(records)
    table = cli("models", "list").stdout
    assert SD35 not in table  # the human table shows what can run; --all adds the rest


def test_models_list_all_adds_the_coming_soon_model(cli):
    records = json.loads(cli("models", "list", "--all", "--json").stdout)
    assert [r["modelKey"] for r in records] == [SD15, SDXL, ULTRA, SD35, *PROVIDER_MODELS]
    _check_seed_records(records)


def test_models_list_json_through_the_real_command(run_cli, cli):
    result = run_cli("models", "list", "--all", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = json.loads(result.stdout)
    _check_seed_records(records)
    assert len(records) == 6
    assert records == json.loads(cli("models", "list", "--all", "--json").stdout)


@pytest.mark.slow
def test_models_list_table_and_filters(cli):
    table = cli("models", "list").stdout
    for word in ("key", "credits", "typical", "free", "basic", "pro", "512x512", "~30-60s", "beta"):
        assert word in table, word
    assert "enterprise" not in table and "Coming" not in table
    # On a narrow (80-column) output the long keys fold over lines; they never end in '…'.
    assert "avatar-" in table and "avatar-…" not in table and "avatar-g…" not in table
    everything = cli("models", "list", "--all").stdout
    assert "no OpenPose ControlNet for SD 3.5 yet" in everything
    assert cli("models", "list", "-q").stdout.split() == [SD15, SDXL, ULTRA, *PROVIDER_MODELS]
    assert cli("models", "list", "-q", "--tier", "pro").stdout.split() == [ULTRA, *PROVIDER_MODELS]
    assert cli("models", "list", "-q", "--quality", "hd").stdout.split() == [SDXL, *PROVIDER_MODELS]
    assert cli("models", "list", "-q", "--all", "--quality", "premium").stdout.split() == [SD35]
    assert cli("models", "list", "-q", "--quality", "premium").stdout.split() == []


def test_models_show_by_alias(cli):
    record = json.loads(cli("models", "show", "controlnet-openpose-sdxl-ultra", "--json").stdout)
    assert record["modelKey"] == ULTRA and record["sota"] is True and record["priorityQueue"] is True


def test_library_view_of_the_seed_models():
    catalog = load_catalog()
    sd15 = catalog.by_key[SD15]
    assert sd15.architecture == "sd15" and sd15.size == (512, 512)
    assert catalog.by_key[SDXL].size == (1024, 1024) and catalog.by_key[SDXL].architecture == "sdxl"
    assert catalog.by_key[SD35].architecture == "sd35"
    assert [m.steps for m in catalog] == [30, 50, 50, 60, 50, 28]
    seed = [m for m in catalog if m.key not in PROVIDER_MODELS]
    assert {m.guidance_scale for m in seed} == {7.5}
    assert {m.controlnet_conditioning_scale for m in catalog} == {1.0}
    assert {m.prompt for m in seed} == {PROMPT} and {m.negative_prompt for m in seed} == {NEGATIVE}
    assert all(m.source == str(shipped_catalog_path()) for m in catalog)


# ---------------------------------------------------------------- validation
NEW = """
[[models]]
key = "avatar-generator:mine"
name = "Mine"
huggingface_model = "me/controlnet"
base_model = "me/base"
architecture = "sd15"
tier = "free"
credit_cost = 2
resolution = "512x512"
quality = "sd"
processing_time = "~10s"
"""

BAD_CATALOGS = {
    # name: (file text, model key, field, words the message or hint must hold)
    "unknown field": (
        f'[[models]]\nkey = "{SDXL}"\ncredit_cots = 4\n',
        SDXL,
        "credit_cots",
        ["unknown field", "did you mean 'credit_cost'"],
    ),
    "wrong type": (f'[[models]]\nkey = "{SDXL}"\ncredit_cost = "4"\n', SDXL, "credit_cost", ["expected int"]),
    "wrong type bool": (f'[[models]]\nkey = "{SDXL}"\nenabled = "no"\n', SDXL, "enabled", ["expected bool"]),
    "duplicate key": (
        f'[[models]]\nkey = "{SDXL}"\ncredit_cost = 4\n[[models]]\nkey = "{SDXL}"\ncredit_cost = 6\n',
        SDXL,
        "key",
        ["duplicate"],
    ),
    "unknown tier": (f'[[models]]\nkey = "{SDXL}"\ntier = "gold"\n', SDXL, "tier", ["gold", "free, basic"]),
    "unknown quality": (f'[[models]]\nkey = "{SDXL}"\nquality = "4k"\n', SDXL, "quality", ["4k", "premium"]),
    "bad resolution": (f'[[models]]\nkey = "{SDXL}"\nresolution = "1024x"\n', SDXL, "resolution", ["1024x"]),
    "resolution not a multiple of 8": (
        f'[[models]]\nkey = "{SDXL}"\nresolution = "1000x1001"\n',
        SDXL,
        "resolution",
        ["multiples of 8"],
    ),
    "unknown architecture": (
        f'[[models]]\nkey = "{SDXL}"\narchitecture = "dalle"\n',
        SDXL,
        "architecture",
        ["dalle"],
    ),
    "negative credits": (
        f'[[models]]\nkey = "{SDXL}"\ncredit_cost = -1\n',
        SDXL,
        "credit_cost",
        ["negative"],
    ),
    "missing required field": (
        NEW.replace('quality = "sd"\n', ""),
        "avatar-generator:mine",
        "quality",
        ["missing"],
    ),
    "unknown fallback": (
        f'[[models]]\nkey = "{SDXL}"\nfallbacks = ["avatar-generator:nope"]\n',
        SDXL,
        "fallbacks",
        ["avatar-generator:nope"],
    ),
    "adapter not a table": (
        f'[[models]]\nkey = "{SDXL}"\nidentity_adapter = "h94/IP-Adapter"\n',
        SDXL,
        "identity_adapter",
        ["expected a table"],
    ),
    "adapter unknown field": (
        f'[[models]]\nkey = "{SDXL}"\n[models.identity_adapter]\nweights = "x"\n',
        SDXL,
        "identity_adapter.weights",
        ["unknown field", "weight_name"],
    ),
    "adapter scale out of range": (
        f'[[models]]\nkey = "{SDXL}"\n[models.identity_adapter]\nscale = 3\n',
        SDXL,
        "identity_adapter.scale",
        ["between 0 and 2"],
    ),
    "adapter scale wrong type": (
        f'[[models]]\nkey = "{SDXL}"\n[models.identity_adapter]\nscale = "high"\n',
        SDXL,
        "identity_adapter.scale",
        ["expected float"],
    ),
    "adapter empty repo": (
        f'[[models]]\nkey = "{SDXL}"\n[models.identity_adapter]\nrepo = " "\n',
        SDXL,
        "identity_adapter.repo",
        ["empty"],
    ),
    "new adapter without weight file": (
        NEW + '[models.identity_adapter]\nrepo = "me/adapter"\n',
        "avatar-generator:mine",
        "identity_adapter.weight_name",
        ["missing"],
    ),
    "fallbacks not a list": (
        f'[[models]]\nkey = "{SDXL}"\nfallbacks = "{SD15}"\n',
        SDXL,
        "fallbacks",
        ["list"],
    ),
}


@pytest.mark.parametrize("problem", list(BAD_CATALOGS))
def test_each_catalog_problem_names_file_model_and_field(problem, tmp_path, monkeypatch, capsys):
    text, key, field, words = BAD_CATALOGS[problem]
    path = tmp_path / "bad-models.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    line = caught.value.one_line()
    assert str(path) in line and f"'{key}'" in line and f"'{field}'" in line, line
    for word in words:
        assert word in line, (word, line)
    assert caught.value.exit_code == errors.CONFIG == 3

    code, out, err = run_main(monkeypatch, capsys, "--catalog", str(path), "models", "list")
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err and key in err
    assert "Traceback" not in err


def test_bad_toml_names_the_file_and_the_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "broken.toml"
    path.write_text('[[models]]\nkey = "avatar-generator:x\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid TOML") as caught:
        load_catalog(path)
    assert str(path) in caught.value.message and "line 2" in caught.value.message
    code, _, err = run_main(monkeypatch, capsys, "--catalog", str(path), "models", "list", "--json")
    assert code == 3
    assert json.loads(err)["error"]["type"] == "CatalogError"


@pytest.mark.parametrize(
    "content, words",
    [
        ("models = 3\n", ["array of tables"]),
        ('[extra]\nx = 1\n[[models]]\nkey = "a"\n', ["unknown top-level", "extra"]),
        ("[[models]]\nname = 'no key'\n", ["model #1", "'key'"]),
        (b"\xff\xfe[[models]]\n", ["not UTF-8"]),
    ],
)
def test_malformed_catalog_files(tmp_path, content, words):
    path = tmp_path / "odd.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(path) in caught.value.message
    for word in words:
        assert word in caught.value.one_line()


def test_missing_or_unreadable_catalog_path(tmp_path, monkeypatch, capsys):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.toml")
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path)  # a folder
    code, _, err = run_main(monkeypatch, capsys, "--catalog", str(tmp_path / "nope.toml"), "models", "list")
    assert code == 3 and "nope.toml" in err


def test_the_three_controlnet_models_carry_the_plus_face_adapter():
    catalog = load_catalog()
    sd15, sdxl, ultra = (catalog.by_key[k].identity_adapter for k in (SD15, SDXL, ULTRA))
    assert sd15 == IdentityAdapter(
        repo="h94/IP-Adapter",
        subfolder="models",
        weight_name="ip-adapter-plus-face_sd15.safetensors",
        image_encoder_folder="models/image_encoder",
        scale=0.6,
    )
    # SDXL keeps the ViT-H encoder: the repo's default for sdxl_models is the 1.8B bigG one.
    assert sdxl == ultra and sdxl.subfolder == "sdxl_models"
    assert sdxl.weight_name == "ip-adapter-plus-face_sdxl_vit-h.safetensors"
    assert sdxl.image_encoder_folder == "models/image_encoder"
    assert catalog.by_key[SD35].identity_adapter is None
    record = catalog.by_key[SD15].to_seed()
    assert record["identity_adapter"]["weight_name"] == sd15.weight_name
    json.dumps(record)  # --json and `models export` can still write it


def test_a_user_file_changes_one_adapter_field_or_adds_an_adapter(avatargen_home, tmp_path, cli):
    _write(
        avatargen_home / "models.toml",
        f'[[models]]\nkey = "{SDXL}"\n[models.identity_adapter]\nscale = 0.9\n',
    )
    extra = _write(
        tmp_path / "mine.toml",
        NEW + '[models.identity_adapter]\nrepo = "me/faceid"\nweight_name = "faceid.bin"\n',
    )
    catalog = load_catalog(extra)
    sdxl = catalog.by_key[SDXL].identity_adapter
    assert sdxl.scale == 0.9 and sdxl.repo == "h94/IP-Adapter" and sdxl.subfolder == "sdxl_models"
    mine = catalog.by_key["avatar-generator:mine"].identity_adapter
    assert mine == IdentityAdapter(repo="me/faceid", weight_name="faceid.bin")
    assert mine.image_encoder_folder == "image_encoder" and mine.scale == 0.6
    shown = cli("models", "show", "controlnet-openpose-sdxl").stdout
    assert "identity_adapter.scale" in shown and "0.9" in shown


# ---------------------------------------------------------------- merging by key
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_config_folder_catalog_overrides_one_field(avatargen_home, cli):
    user = _write(avatargen_home / "models.toml", f'[[models]]\nkey = "{SDXL}"\ncredit_cost = 6\n')
    catalog = load_catalog()
    sdxl = catalog.by_key[SDXL]
    assert sdxl.credit_cost == 6 and sdxl.source == str(user)
    # every other field of the shipped record is kept
    assert sdxl.name == "ControlNet OpenPose SDXL" and sdxl.tier == "basic" and sdxl.steps == 50
    assert catalog.by_key[SD15].credit_cost == 3 and len(catalog) == 6
    records = {r["modelKey"]: r for r in json.loads(cli("models", "list", "--json").stdout)}
    assert records[SDXL]["creditCost"] == 6


def test_env_catalog_and_catalog_option_add_models(tmp_path, monkeypatch, cli):
    env_file = _write(tmp_path / "env.toml", NEW)
    monkeypatch.setenv("AVATARGEN_CATALOG", str(env_file))
    keys = cli("models", "list", "-q").stdout.split()
    assert keys == [SD15, SDXL, ULTRA, *PROVIDER_MODELS, "avatar-generator:mine"]

    option_file = _write(tmp_path / "option.toml", NEW.replace("mine", "theirs").replace("Mine", "Theirs"))
    records = json.loads(cli("--catalog", str(option_file), "models", "list", "--json").stdout)
    by_key = {r["modelKey"]: r for r in records}
    assert set(by_key) == {
        SD15,
        SDXL,
        ULTRA,
        SD35,
        *PROVIDER_MODELS,
        "avatar-generator:mine",
        "avatar-generator:theirs",
    }
    mine = by_key["avatar-generator:theirs"]
    assert mine["name"] == "Theirs" and mine["creditCost"] == 2 and mine["modelId"] == "theirs"
    # defaults fill the fields a user model leaves out
    assert mine["defaults"]["num_inference_steps"] == 30 and mine["defaults"]["prompt"] == PROMPT
    assert mine["enabled"] is True and mine["quotaCost"] == 1


def test_later_files_win(avatargen_home, tmp_path, monkeypatch, cli):
    _write(avatargen_home / "models.toml", f'[[models]]\nkey = "{SDXL}"\ncredit_cost = 6\nsteps = 40\n')
    env_file = _write(tmp_path / "env.toml", f'[[models]]\nkey = "{SDXL}"\ncredit_cost = 7\n')
    option_file = _write(tmp_path / "option.toml", f'[[models]]\nkey = "{SDXL}"\ncredit_cost = 9\n')
    monkeypatch.setenv("AVATARGEN_CATALOG", str(env_file))

    assert load_catalog().by_key[SDXL].credit_cost == 7
    merged = load_catalog(option_file).by_key[SDXL]
    assert merged.credit_cost == 9 and merged.steps == 40  # the config folder's steps survive
    assert merged.source == str(option_file)
    record = json.loads(cli("--catalog", str(option_file), "models", "show", SDXL, "--json").stdout)
    assert record["creditCost"] == 9 and record["defaults"]["num_inference_steps"] == 40


def test_a_user_file_can_enable_the_coming_soon_model(avatargen_home, cli):
    _write(avatargen_home / "models.toml", f'[[models]]\nkey = "{SD35}"\nenabled = true\n')
    assert SD35 in cli("models", "list", "-q").stdout.split()


def test_problems_in_user_files_name_that_file(avatargen_home, monkeypatch, capsys):
    user = _write(avatargen_home / "models.toml", f'[[models]]\nkey = "{SD15}"\nsteps = 0\n')
    code, _, err = run_main(monkeypatch, capsys, "models", "list")
    assert code == 3 and str(user) in err and "'steps'" in err and SD15 in err


# ---------------------------------------------------------------- packaging
@pytest.mark.slow
def test_the_wheel_carries_the_catalog(tmp_path):
    """After a plain (non-editable) install the catalog is found: models.toml is package data,
    byte for byte the repo's file, and the installed package loads it."""
    wheel_dir = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)]
    try:
        import hatchling  # noqa: F401

        command.insert(4, "--no-build-isolation")  # the backend is here: build offline
    except ImportError:
        pass  # pip fetches the build backend from its cache or index, as `pip install .` does
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    built = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheel_dir.glob("avatargen-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("avatargen/models.toml") == (REPO / "models.toml").read_bytes()
        archive.extractall(tmp_path / "site")

    # Import the unpacked wheel (not the editable checkout) from an unrelated folder.
    probe = (
        "import json, avatargen, avatargen.catalog as c;"
        "print(json.dumps([avatargen.__file__, str(c.shipped_catalog_path()), len(c.load_catalog())]))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert ran.returncode == 0, ran.stderr
    package_file, catalog_file, count = json.loads(ran.stdout)
    site = str(tmp_path / "site")
    assert package_file.startswith(site) and catalog_file.startswith(site)
    assert count == 6
