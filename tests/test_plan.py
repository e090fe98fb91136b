"""Planning: seeds, job keys (what makes a re-run find the same jobs), output names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from avatargen.errors import UsageError
from avatargen.plan import DEFAULT_TEMPLATE, Params, check_template, derive_seed, job_key, plan_jobs

PARAMS = Params(
    pose_spec="wave",
    prompt="a friendly avatar",
    negative_prompt="blurry",
    steps=25,
    guidance_scale=7.5,
    controlnet_conditioning_scale=1.0,
    width=512,
    height=768,
    strength=None,
)
HASH_A = "a" * 64
HASH_B = "b" * 64


def plan(inputs: dict[str, str], **overrides):
    args = {
        "hashes": {Path(p): h for p, h in inputs.items()},
        "pose_name": "wave",
        "pose_identity": "wave",
        "model_key": "avatar-generator:sd15-openpose",
        "model_alias": "sd15",
        "params": PARAMS,
        "num": 1,
        "seed": None,
        "output_dir": Path("/out"),
    }
    args.update(overrides)
    return plan_jobs([Path(p) for p in inputs], **args)


# ------------------------------------------------------------------ seeds
def test_derived_seeds_are_stable_per_photo_and_differ_per_variant():
    first = [derive_seed(HASH_A, v, None) for v in range(4)]
    assert first == [derive_seed(HASH_A, v, None) for v in range(4)]  # same photo, same seeds
    assert len(set(first)) == 4
    assert all(0 <= s < 2**32 for s in first)
    assert derive_seed(HASH_B, 0, None) != first[0]  # another photo, another seed


def test_a_given_seed_counts_up_per_variant():
    assert [derive_seed(HASH_A, v, 42) for v in range(3)] == [42, 43, 44]
    assert [derive_seed(HASH_B, v, 42) for v in range(3)] == [42, 43, 44]  # not from the photo
    assert derive_seed(HASH_A, 1, 2**32 - 1) == 0  # stays a valid 32-bit seed


def test_planned_seeds_match_derive_seed():
    jobs = plan({"me.jpg": HASH_A}, num=3)
    assert [j.seed for j in jobs] == [derive_seed(HASH_A, v, None) for v in range(3)]
    jobs = plan({"me.jpg": HASH_A}, num=3, seed=7)
    assert [j.seed for j in jobs] == [7, 8, 9]


# ------------------------------------------------------------------ job keys
def test_job_key_is_stable_for_the_same_inputs():
    key = job_key(HASH_A, "wave", "m", PARAMS, 1)
    assert key == job_key(HASH_A, "wave", "m", dataclasses.replace(PARAMS), 1)
    assert len(key) == 32 and int(key, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"input_hash": HASH_B},
        {"pose_identity": "arms-up"},
        {"model": "other-model"},
        {"seed": 2},
        {"params": dataclasses.replace(PARAMS, prompt="a pirate")},
        {"params": dataclasses.replace(PARAMS, negative_prompt="")},
        {"params": dataclasses.replace(PARAMS, steps=30)},
        {"params": dataclasses.replace(PARAMS, guidance_scale=5.0)},
        {"params": dataclasses.replace(PARAMS, controlnet_conditioning_scale=0.8)},
        {"params": dataclasses.replace(PARAMS, width=768, height=512)},
        {"params": dataclasses.replace(PARAMS, strength=0.6)},
        {"params": dataclasses.replace(PARAMS, pose_spec="poses/custom.json")},
    ],
)
def test_job_key_changes_with_anything_that_decides_the_image(change):
    base = {"input_hash": HASH_A, "pose_identity": "wave", "model": "m", "params": PARAMS, "seed": 1}
    assert job_key(**{**base, **change}) != job_key(**base)


def test_replanning_finds_the_same_jobs_and_paths():
    first = plan({"photos/me.jpg": HASH_A, "photos/you.jpg": HASH_B}, num=2)
    again = plan({"photos/me.jpg": HASH_A, "photos/you.jpg": HASH_B}, num=2)
    assert [(j.job_key, j.output_path, j.seed) for j in first] == [
        (j.job_key, j.output_path, j.seed) for j in again
    ]
    assert len({j.job_key for j in first}) == 4


def test_the_output_folder_and_alias_do_not_change_the_key():
    here = plan({"me.jpg": HASH_A}, output_dir=Path("/a"))
    there = plan({"me.jpg": HASH_A}, output_dir=Path("/b"), model_alias="nickname")
    assert here[0].job_key == there[0].job_key
    assert here[0].output_path != there[0].output_path


# ------------------------------------------------------------------ output names
def test_default_template_names():
    assert DEFAULT_TEMPLATE == "{stem}-{pose}-{model}-{seed}.png"
    jobs = plan({"photos/me.jpg": HASH_A}, num=2, seed=100)
    assert [j.output_path for j in jobs] == [
        Path("/out/me-wave-sd15-100.png"),
        Path("/out/me-wave-sd15-101.png"),
    ]
    job = jobs[0]
    assert (job.input_path, job.input_hash, job.pose, job.model) == (
        Path("photos/me.jpg"),
        HASH_A,
        "wave",
        "avatar-generator:sd15-openpose",
    )
    record = job.record()
    assert record["output_path"] == "/out/me-wave-sd15-100.png"
    assert record["params"]["prompt"] == "a friendly avatar"
    assert record["job_key"] == job.job_key and record["seed"] == 100


def test_unsafe_characters_in_names_are_replaced():
    jobs = plan({"photos/my photo:1.jpg": HASH_A}, pose_name="my/pose", model_alias="a b", seed=5)
    assert jobs[0].output_path == Path("/out/my_photo_1-my_pose-a_b-5.png")


def test_custom_templates():
    jobs = plan({"me.jpg": HASH_A}, num=2, seed=3, template="{variant}_{hash}_{stem}.png")
    assert [j.output_path.name for j in jobs] == ["0_aaaaaaaa_me.png", "1_aaaaaaaa_me.png"]
    jobs = plan({"me.jpg": HASH_A}, seed=3, template="{stem}-{seed:06d}.png")
    assert jobs[0].output_path.name == "me-000003.png"


@pytest.mark.parametrize(
    "template", [DEFAULT_TEMPLATE, "{stem}.png", "{stem}-{variant}-{hash}.PNG", "{seed:08d}.png", "x.png"]
)
def test_check_template_accepts_known_fields(template):
    check_template(template)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{stem}-{size}.png", "unknown field"),
        ("{name}.png", "unknown field"),
        ("{0}.png", "unknown field"),
        ("{}.png", "unknown field"),
        ("{stem}.jpg", "must end in .png"),
        ("{stem}", "must end in .png"),
        ("{stem.png", "bad output name template"),
        ("{seed:q}.png", "bad output name template"),
    ],
)
def test_check_template_refuses(template, why):
    with pytest.raises(UsageError) as refused:
        check_template(template)
    assert why in refused.value.message
    assert template in refused.value.message


def test_same_stem_in_different_folders_gets_distinct_paths():
    jobs = plan({"a/me.jpg": HASH_A, "b/me.jpg": HASH_B}, seed=1)
    paths = [j.output_path for j in jobs]
    assert len(set(paths)) == 2
    assert paths == [Path("/out/me-wave-sd15-1-aaaaaaaa.png"), Path("/out/me-wave-sd15-1-bbbbbbbb.png")]
    # ... and stable from run to run.
    assert [j.output_path for j in plan({"a/me.jpg": HASH_A, "b/me.jpg": HASH_B}, seed=1)] == paths


def test_names_that_do_not_clash_are_left_alone():
    jobs = plan({"a/me.jpg": HASH_A, "b/you.jpg": HASH_B}, seed=1)
    assert [j.output_path.name for j in jobs] == ["me-wave-sd15-1.png", "you-wave-sd15-1.png"]


def test_the_same_photo_twice_is_one_job_not_a_clash():
    jobs = plan({"a/me.jpg": HASH_A, "b/me.jpg": HASH_A}, seed=1)
    assert jobs[0].job_key == jobs[1].job_key
    assert jobs[0].output_path == jobs[1].output_path == Path("/out/me-wave-sd15-1.png")


def test_variants_under_a_template_without_seed_get_distinct_paths():
    jobs = plan({"me.jpg": HASH_A}, num=3, seed=10, template="{stem}.png")
    assert [j.output_path.name for j in jobs] == ["me-10.png", "me-11.png", "me-12.png"]
    jobs = plan({"a/me.jpg": HASH_A, "b/me.jpg": HASH_B}, num=2, seed=10, template="{stem}.png")
    names = [j.output_path.name for j in jobs]
    assert len(set(names)) == 4
    assert names[0] == "me-aaaaaaaa-10.png"
