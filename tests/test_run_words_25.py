"""Issue 25 (1, 3-7): weights in the job, --regenerate against --overwrite, retry's options and
words, what used to happen without a word, first-run guidance and the wrong words in output.
The real CLI in a subprocess against a fake endpoint on 127.0.0.1, or in-process."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from avatargen.images import read_metadata, sd_parameters
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from test_generate_e2e import credits, db_rows, json_lines, make_photos

SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = {"PYTHONPATH": SRC, "AVATARGEN_RETRY_SCALE": "0.01"}


def _catalog_model(key: str = "controlnet-openpose-sd15"):
    from avatargen.catalog import load_catalog

    return load_catalog().lookup(key)


# ------------------------------------------------------------------ 1: weights are part of a job
def test_weights_tell_tiny_a_model_dir_and_the_catalog_apart(tmp_path, monkeypatch):
    from avatargen.config import Config
    from avatargen.plan import Params, job_key, plan_jobs
    from avatargen.weights import weights_for

    model = _catalog_model()
    assert weights_for(model, config=Config(), endpoint="http://127.0.0.1:9/") == ""  # a server's own weights
    assert weights_for(model, config=Config(), provider="local") == ""  # the catalog's, from the Hub
    tiny = weights_for(model, config=Config(), tiny=True)
    assert tiny.startswith("tiny-v")
    folder = tmp_path / "my-pipe"
    assert weights_for(model, config=Config(), model_dir=folder) == f"dir:{folder.resolve()}"
    monkeypatch.setenv("AVATARGEN_LOCAL_TINY", "1")
    assert weights_for(model, config=Config(), provider="local") == tiny  # the environment's tiny counts too
    params = Params("wave", "p", "", 30, 7.0, 1.0, 512, 512, None)
    assert "weights" not in params.to_dict()  # the catalog's weights: keys as before this change
    keys = {
        w: job_key("h" * 64, "wave", model.key, Params(**{**params.__dict__, "weights": w}), 1)
        for w in ("", tiny)
    }
    assert keys[""] != keys[tiny]
    photo = tmp_path / "me.png"
    jobs = plan_jobs(
        [photo], hashes={photo: "a" * 64}, pose_name="wave", pose_identity="wave", model_key=model.key,
        model_alias="sd15", params=Params(**{**params.__dict__, "weights": tiny}), num=1, seed=5,
        output_dir=tmp_path, template="{stem}.png",
    )  # fmt: skip
    assert jobs[0].output_path.name == "me-tiny.png"  # any template: never the real avatar's name


def test_png_parameters_name_other_weights_and_no_controlnet_for_an_editing_model():
    meta = {
        "prompt": "p", "negative_prompt": "", "steps": 2, "guidance_scale": 4.0, "seed": 1,
        "width": 64, "height": 64, "model": "avatar-generator:qwen-image-edit-pose", "pose": "wave",
        "controlnet_conditioning_scale": None, "architecture": "qwen-image", "weights": "catalog",
    }  # fmt: skip
    text = sd_parameters(meta)
    assert "ControlNet" not in text and "Control scale" not in text and "Weights" not in text
    sd = {**meta, "architecture": "sd15", "controlnet_conditioning_scale": 1.0, "weights": "tiny-v4"}
    text = sd_parameters(sd)
    assert "ControlNet: openpose, Control scale: 1.0" in text and "Weights: tiny-v4" in text


# ------------------------------------------------------------------ 3: --overwrite and --regenerate
def test_overwrite_keeps_a_done_job_and_says_so_regenerate_makes_it_again(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 1)
    out = tmp_path / "out"
    with FakeEndpoint() as fake:
        args = ("generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(out))
        assert run_cli(*args, env=ENV).returncode == 0
        again = run_cli(*args, "--overwrite", env=ENV)
        assert again.returncode == 0 and fake.posts == 1
        assert "already done" in again.stderr and "--regenerate" in again.stderr, again.stderr
        assert "--overwrite replaces only output files" in again.stderr
        [png] = out.glob("*.png")
        before = png.stat().st_mtime_ns
        made = run_cli(*args, "--regenerate", "--json", env=ENV)
        assert made.returncode == 0, made.stderr
        assert fake.posts == 2  # made again on purpose
    [line] = json_lines(made.stdout)
    assert line["status"] == "done" and line["credits"] == 3
    assert png.stat().st_mtime_ns != before and read_metadata(png)["job_key"] == line["job_key"]
    assert credits(run_cli)["balance"] == 100 - 2 * 3  # charged again, exactly once more
    assert "--regenerate" in run_cli("generate", "--help").stdout


# ------------------------------------------------------------------ 4: retry's options and words
def test_retry_says_what_it_sends_and_suggests_the_right_option(tmp_path, run_cli, avatargen_home):
    make_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    with FakeEndpoint(fail_prompts=("",)) as fake:
        first = run_cli("generate", str(tmp_path / "photos"), "--endpoint", fake.url, "-o", str(out), env=ENV)
        assert first.returncode != 0
        [(batch_id,)] = db_rows(avatargen_home, "SELECT id FROM batches")
        # Both outputs now exist, made by something else: the retry sends nothing.
        for row in db_rows(avatargen_home, "SELECT output_path FROM jobs"):
            Path(row[0]).write_bytes(b"the user's own file")
        posts = fake.posts
        again = run_cli("retry", batch_id, env=ENV)
        assert fake.posts == posts
    assert again.returncode == 0, again.stderr
    assert "retrying 2 job(s)" not in again.stderr, again.stderr
    assert "none of its 2 unfinished job(s) needs sending" in again.stderr
    assert "output file exists and is not this job's image" in again.stderr  # the skip's reason
    wrong = run_cli("retry", "--step", "2", env=ENV)
    assert wrong.returncode == 2 and "did you mean --steps?" in wrong.stderr, wrong.stderr
    generate_only = run_cli("retry", "--pose", "wave", env=ENV)
    assert generate_only.returncode == 2 and "option of `avatargen generate`" in generate_only.stderr


# ------------------------------------------------------------------ 5: nothing happens without a word
def test_identical_photos_merged_and_pose_named_in_a_set_s_failures(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 1)
    copy = tmp_path / "photos" / "copy.jpg"
    copy.write_bytes((tmp_path / "photos" / "person000.jpg").read_bytes())
    with FakeEndpoint(fail_prompts=("",)) as fake:
        result = run_cli(
            "generate", str(tmp_path / "photos"), "--pose", "wave,sitting", "--endpoint", fake.url,
            "-o", str(tmp_path / "out"), env=ENV,
        )  # fmt: skip
    assert "byte-identical" in result.stderr and "copy.jpg" in result.stderr, result.stderr
    assert "(pose wave)" in result.stdout and "(pose sitting)" in result.stdout, result.stdout


def test_tiny_or_model_dir_with_an_endpoint_is_a_conflict(tmp_path, monkeypatch, capsys):
    make_photos(tmp_path, 1)
    photo = str(tmp_path / "person000.jpg")
    code, out, err = run_main(monkeypatch, capsys, "generate", photo, "--tiny", "--endpoint", "htp:/bad")
    assert code == 2 and "--tiny" in err and "--endpoint" in err and out == "", err
    code, _, err = run_main(
        monkeypatch, capsys, "generate", photo, "--model-dir", str(tmp_path), "--provider", "hf-providers"
    )
    assert code == 2 and "--model-dir" in err, err
    code, _, err = run_main(monkeypatch, capsys, "retry", "--tiny", "--endpoint", "http://127.0.0.1:9/")
    assert code == 2 and "--endpoint" in err, err


# ------------------------------------------------------------------ 6: first-run guidance
def test_a_face_that_cannot_be_found_names_the_fix_not_retry():
    from avatargen.run_notes import failed_advice

    hopeless = {"input": "a.jpg", "pose": "wave", "error": "no face found in a.jpg", "permanent": True,
                "hint": "use a photo where the face is visible, or turn identity off with --identity-scale 0"}  # fmt: skip
    summary = SimpleNamespace(failed=1, failed_items=[hopeless])
    line = failed_advice(summary, "avatargen retry B")
    assert "--identity-scale 0" in line and "avatargen retry" not in line
    transient = {"input": "b.jpg", "pose": "wave", "error": "500", "permanent": False, "hint": ""}
    mixed = failed_advice(SimpleNamespace(failed=2, failed_items=[hopeless, transient]), "avatargen retry B")
    assert "avatargen retry B" in mixed and "--identity-scale 0" in mixed


@pytest.mark.slow  # whole seconds of real waiting
def test_on_a_terminal_diffusers_and_transformers_bars_are_hidden_downloads_kept(monkeypatch):
    pytest.importorskip("diffusers")
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    from avatargen import quiet as quiet_mod

    monkeypatch.setattr(quiet_mod, "stderr_is_terminal", lambda: True)
    for name in quiet_mod.ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(transformers_logging, "_tqdm_active", True)
    monkeypatch.setattr(diffusers_logging, "_tqdm_active", True)
    enable_progress_bars()
    quiet_mod.quiet(libraries=True)
    assert not transformers_logging.is_progress_bar_enabled()
    assert not diffusers_logging.is_progress_bar_enabled()
    assert not are_progress_bars_disabled()  # a first download still shows its progress


# ------------------------------------------------------------------ 7: the wrong words
def test_endpoint_replicas_the_api_left_out_are_not_none(capsys):
    from avatargen.cli.endpoint import _count, _show, replicas_text

    assert _count(None) == "?" and _count(1) == "1"
    assert replicas_text({"current": None, "min": 0, "max": 1}) == "running count not reported (min 0, max 1)"
    assert replicas_text({"current": 1, "min": 0, "max": 1}) == "1 running (min 0, max 1)"
    from avatargen.deploy.manage import summary

    _show(summary({"name": "e", "status": {"state": "running"}}, "me"), json_=False)
    shown = capsys.readouterr().out
    assert "None" not in shown, shown


def test_status_names_a_model_that_is_its_own_base_once():
    from avatargen.cli.status import render

    model = _catalog_model("qwen-image-edit-pose")
    report = {
        "model": {"key": model.key, "name": model.name, "status": model.status, "huggingface_model":
                  model.huggingface_model, "base_model": model.base_model, "architecture": model.architecture,
                  "resolution": "1024x1024", "tier": model.tier, "credit_cost": model.credit_cost},
        "backend": "hf-providers", "url": None, "url_source": "catalog", "state": "ok", "wait_timeout": 60.0,
        "token": {"found": False},
    }  # fmt: skip
    text = "\n".join(render(report))
    assert f"{model.base_model} on {model.base_model}" not in text and model.base_model in text


def test_deploy_name_help_matches_the_name_it_makes():
    from avatargen.cli.endpoint import NAME_EXAMPLE
    from avatargen.deploy.plan import endpoint_name

    assert endpoint_name("controlnet-openpose-sd15") == NAME_EXAMPLE


def test_a_router_run_s_preflight_does_not_call_the_router_unreachable():
    from avatargen.app.backends import Backends
    from avatargen.batch import BatchRunner, RunSettings
    from avatargen.catalog import load_catalog
    from avatargen.config import Config
    from avatargen.providers.base import StatusReport

    class Probe:
        name = "hf-providers"

        def status(self):
            return StatusReport(
                "hf-providers", "https://router.example/fal-ai", "unreachable", "hub timed out"
            )

        def close(self):
            pass

    catalog = load_catalog()
    backends = Backends(RunSettings(), Config(), lambda *a, **k: Probe())
    runner = BatchRunner(None, catalog, {}, RunSettings(), backends=backends)
    said: list[str] = []
    runner.preflight(_catalog_model("qwen-image-edit-pose"), said.append)
    assert said and "unreachable" not in said[0] and "router anyway" in said[0], said


def test_json_skip_lines_keep_their_reason(tmp_path, run_cli):
    make_photos(tmp_path / "photos", 1)
    with FakeEndpoint() as fake:
        args = (
            "generate",
            str(tmp_path / "photos"),
            "--endpoint",
            fake.url,
            "-o",
            str(tmp_path / "o"),
            "--json",
        )
        run_cli(*args, env=ENV)
        second = run_cli(*args, env=ENV)
    [line] = json_lines(second.stdout)
    assert line["status"] == "skipped" and line["reason"] == "already done"
    assert json.loads(json.dumps(line))  # plain JSON


def test_hub_weights_are_recorded_with_the_commits_loaded(avatargen_home, monkeypatch):
    """What 'the catalog's weights' were exactly: each Hub repo's commit, from the download cache."""
    from huggingface_hub import constants

    from avatargen.serve.pipelines import ModelSpec
    from avatargen.weights import hub_revisions

    model = _catalog_model()
    spec = ModelSpec.from_catalog(model)
    cache = avatargen_home / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    commits = {spec.controlnet: "a" * 40, spec.base_model: "b" * 40}
    for (repo, commit), filename in zip(commits.items(), ("config.json", "model_index.json"), strict=True):
        folder = cache / f"models--{repo.replace('/', '--')}"
        (folder / "snapshots" / commit).mkdir(parents=True)
        (folder / "snapshots" / commit / filename).write_text("{}")
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(commit)
    assert hub_revisions(spec) == commits  # the identity adapter is not cached: left out
