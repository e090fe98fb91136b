"""resolve_model: which one model a command runs, from --model / --quality / --tier, the config's
plan cap and default model; and the refusals (unknown, disabled, coming soon, above the plan)."""

from __future__ import annotations

import pytest

from avatargen import errors
from avatargen.catalog import Catalog, Model, load_catalog, resolve_model
from avatargen.errors import ConfigError, ModelUnavailable, UsageError

SD15 = "avatar-generator:controlnet-openpose-sd15"
SDXL = "avatar-generator:controlnet-openpose-sdxl"
ULTRA = "avatar-generator:controlnet-openpose-sdxl-ultra"
SD35 = "avatar-generator:sd35-controlnet-canny"


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


def _model(key: str, tier: str, quality: str, cost: int, **extra) -> Model:
    return Model(
        key=key,
        name=key,
        huggingface_model="x/y",
        base_model="x/base",
        tier=tier,
        credit_cost=cost,
        resolution="512x512",
        quality=quality,
        processing_time="~1s",
        architecture="sd15",
        **extra,
    )


# ---------------------------------------------------------------- --model
@pytest.mark.parametrize("name", [SDXL, "controlnet-openpose-sdxl"])
def test_model_by_full_key_or_alias(catalog, name):
    assert resolve_model(catalog, model=name).key == SDXL


@pytest.mark.parametrize(
    "typed, suggested",
    [
        ("controlnet-openpose-sdxl-ultr", "controlnet-openpose-sdxl-ultra"),
        ("contrlnet-openpose-sd15", "controlnet-openpose-sd15"),
        ("sdxl-ultra", "controlnet-openpose-sdxl-ultra"),  # a part of the alias
        ("sdxl-ulta", "controlnet-openpose-sdxl-ultra"),  # a typo in a part
        ("SDXL", "controlnet-openpose-sdxl"),  # the shortest alias holding it
        ("sd15", "controlnet-openpose-sd15"),
        ("canny", "sd35-controlnet-canny"),
        ("avatar-generator:controlnet-openpose-sd16", "controlnet-openpose-sd15"),
    ],
)
def test_unknown_model_gets_a_did_you_mean(catalog, typed, suggested):
    with pytest.raises(UsageError) as caught:
        resolve_model(catalog, model=typed)
    assert caught.value.exit_code == errors.USAGE
    assert f"unknown model '{typed}'" in caught.value.message and "--model" in caught.value.message
    assert caught.value.hint == f"did you mean '{suggested}'?"


def test_nothing_alike_points_to_the_list(catalog):
    with pytest.raises(UsageError) as caught:
        resolve_model(catalog, model="zzzzqqq")
    assert "did you mean" not in caught.value.one_line()
    assert "avatargen models list --all" in caught.value.hint


def test_lookup_names_the_option_it_came_from(catalog):
    with pytest.raises(UsageError, match=r"\(KEY\)"):
        catalog.lookup("nope", option="KEY")


# ---------------------------------------------------------------- --quality
@pytest.mark.parametrize("quality, key", [("sd", SD15), ("hd", SDXL), ("ultra", ULTRA)])
def test_quality_picks_the_model_of_that_quality(catalog, quality, key):
    assert resolve_model(catalog, quality=quality).key == key


def test_premium_quality_is_coming_soon_and_says_why(catalog):
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(catalog, quality="premium")
    assert caught.value.exit_code == errors.UNAVAILABLE == 6
    assert SD35 in caught.value.message and "coming soon" in caught.value.message
    assert "no OpenPose ControlNet for SD 3.5 yet" in caught.value.message


def test_quality_prefers_the_cheapest_runnable_one():
    catalog = Catalog(
        [
            _model("a:pricey", "free", "hd", 9),
            _model("a:cheap", "free", "hd", 4),
            _model("a:off", "free", "hd", 1, enabled=False),
            _model("a:above", "pro", "hd", 2),
        ]
    )
    assert resolve_model(catalog, quality="hd", plan="basic").key == "a:cheap"
    assert resolve_model(catalog, quality="hd").key == "a:above"


def test_quality_above_the_plan_is_refused(catalog):
    with pytest.raises(ModelUnavailable, match="above your plan 'basic'") as caught:
        resolve_model(catalog, quality="ultra", plan="basic")
    assert "config set plan" in caught.value.hint


def test_quality_no_model_has(tmp_path):
    catalog = Catalog([_model("a:one", "free", "sd", 1)])
    with pytest.raises(ModelUnavailable, match="no model in the catalog has quality 'hd'"):
        resolve_model(catalog, quality="hd")


# ---------------------------------------------------------------- --tier
@pytest.mark.parametrize(
    "tier, key", [("free", SD15), ("basic", SDXL), ("pro", ULTRA), ("enterprise", ULTRA)]
)
def test_tier_picks_the_best_enabled_model_at_or_below(catalog, tier, key):
    # enterprise: sd35 is coming soon, so the best runnable one is the pro model
    assert resolve_model(catalog, tier=tier).key == key


def test_tier_is_also_capped_by_the_plan(catalog):
    assert resolve_model(catalog, tier="enterprise", plan="basic").key == SDXL
    assert resolve_model(catalog, tier="pro", plan="free").key == SD15


def test_tier_with_nothing_runnable():
    catalog = Catalog([_model("a:pro", "pro", "ultra", 8)])
    with pytest.raises(ModelUnavailable, match="no enabled model at or below tier 'basic'"):
        resolve_model(catalog, tier="basic")


def test_tier_prefers_higher_quality_within_the_same_tier():
    catalog = Catalog([_model("a:sd", "basic", "sd", 1), _model("a:hd", "basic", "hd", 5)])
    assert resolve_model(catalog, tier="basic").key == "a:hd"


# ---------------------------------------------------------------- plan cap
@pytest.mark.parametrize(
    "plan, allowed", [("free", {SD15}), ("basic", {SD15, SDXL}), ("pro", {SD15, SDXL, ULTRA})]
)
def test_plan_caps_explicit_models(catalog, plan, allowed):
    for key in (SD15, SDXL, ULTRA):
        if key in allowed:
            assert resolve_model(catalog, model=key, plan=plan).key == key
        else:
            with pytest.raises(ModelUnavailable, match=f"above your plan '{plan}'"):
                resolve_model(catalog, model=key, plan=plan)


def test_no_plan_means_no_cap(catalog):
    assert resolve_model(catalog, model=ULTRA, plan=None).key == ULTRA


def test_unknown_plan_in_config_is_a_config_error(catalog):
    with pytest.raises(ConfigError) as caught:
        resolve_model(catalog, plan="gold")
    assert caught.value.exit_code == errors.CONFIG
    assert "gold" in caught.value.message and "config.toml" in caught.value.message


# ---------------------------------------------------------------- disabled / coming soon
def test_coming_soon_model_refuses_with_its_reason(catalog):
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(catalog, model="sd35-controlnet-canny")
    assert caught.value.message == (
        f"model '{SD35}' is coming soon: no OpenPose ControlNet for SD 3.5 yet (Canny, Depth, Blur only)"
    )
    assert "avatargen models list" in caught.value.hint


def test_disabled_model_without_a_reason_still_says_so():
    catalog = Catalog([_model("a:off", "free", "sd", 1, enabled=False)])
    with pytest.raises(ModelUnavailable, match="'a:off' is disabled: it is disabled in the catalog"):
        resolve_model(catalog, model="a:off")


@pytest.mark.slow
def test_disabled_refusal_exits_6_through_the_cli(run_cli):
    result = run_cli("generate", "photo.jpg", "--model", "sd35-controlnet-canny")
    assert result.returncode == 6, result.stderr
    assert result.stderr.count("\n") == 1 and "coming soon" in result.stderr
    assert "no OpenPose ControlNet for SD 3.5 yet" in result.stderr


# ---------------------------------------------------------------- combinations and defaults
@pytest.mark.parametrize(
    "given, named",
    [
        ({"model": SD15, "quality": "hd"}, "--model and --quality"),
        ({"model": SD15, "tier": "pro"}, "--model and --tier"),
        ({"quality": "hd", "tier": "pro"}, "--quality and --tier"),
        ({"model": SD15, "quality": "hd", "tier": "pro"}, "--model and --quality and --tier"),
    ],
)
def test_conflicting_options(catalog, given, named):
    with pytest.raises(UsageError, match=f"{named} cannot be used together"):
        resolve_model(catalog, **given)


def test_no_option_gives_the_cheapest_enabled_model(catalog):
    assert resolve_model(catalog).key == SD15
    assert resolve_model(catalog, plan="free").key == SD15


def test_no_option_skips_what_the_plan_forbids():
    catalog = Catalog([_model("a:pro", "pro", "ultra", 1), _model("a:free", "free", "sd", 5)])
    assert resolve_model(catalog).key == "a:pro"
    assert resolve_model(catalog, plan="basic").key == "a:free"
    with pytest.raises(ModelUnavailable, match="no enabled model within your plan"):
        resolve_model(Catalog([_model("a:pro", "pro", "ultra", 1)]), plan="free")


def test_configured_default_model(catalog):
    assert resolve_model(catalog, default="controlnet-openpose-sdxl").key == SDXL
    # an explicit option beats the default
    assert resolve_model(catalog, quality="ultra", default="controlnet-openpose-sdxl").key == ULTRA
    assert resolve_model(catalog, model=SD15, default=SDXL).key == SD15
    with pytest.raises(ModelUnavailable, match="above your plan"):
        resolve_model(catalog, default=ULTRA, plan="basic")


def test_a_configured_default_with_a_typo_blames_the_config(catalog):
    with pytest.raises(ConfigError) as caught:
        resolve_model(catalog, default="controlnet-openpose-sdxx")
    assert caught.value.exit_code == errors.CONFIG
    assert "config key 'model'" in caught.value.message and "config.toml" in caught.value.message
    assert caught.value.hint == "did you mean 'controlnet-openpose-sdxl'?"


@pytest.mark.parametrize("option, value", [("quality", "4k"), ("tier", "gold")])
def test_unknown_quality_or_tier(catalog, option, value):
    with pytest.raises(UsageError) as caught:
        resolve_model(catalog, **{option: value})
    assert f"unknown {option} '{value}' (--{option})" == caught.value.message
    assert caught.value.exit_code == errors.USAGE
