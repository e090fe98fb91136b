"""Issue 24 items 12 and 14: inputs that crashed (exit 70 / HTTP 500) or were quietly accepted.
Each is now a one-line error with its documented exit code or HTTP status."""

from __future__ import annotations

import base64
import json
import sqlite3

import pytest

from cli_helpers import run_main
from router_fakes import FakeCDN, FakeRouter, _json
from serve_fixtures import pose_png, request_body
from test_generate_e2e import make_photos
from test_providers_router import make_photos as make_router_photos

TOKEN = "hf_routertesttoken123"


# ------------------------------------------------------------------ item 12
class OddStatusRouter(FakeRouter):
    """fal-ai's queue, with a status that is an object, not a string."""

    def _fal_get(self, path):
        if path.endswith("/status"):
            return _json(200, {"status": {"state": "COMPLETED"}})
        return super()._fal_get(path)


def test_a_queue_status_that_is_not_a_string_fails_the_job_not_the_cli(tmp_path, run_cli):
    with FakeCDN() as cdn, OddStatusRouter(cdn, token=TOKEN) as router:
        env = {"AVATARGEN_ROUTER_URL": router.url, "HF_ENDPOINT": router.url, "HF_TOKEN": TOKEN,
               "AVATARGEN_RETRY_SCALE": "0.01"}  # fmt: skip
        make_router_photos(tmp_path / "photos", 1)
        result = run_cli("generate", str(tmp_path / "photos"), "--model", "qwen-image-edit-pose", "--pose",
                         "wave", "-o", str(tmp_path / "out"), "--json", "--yes", env=env)  # fmt: skip
    assert result.returncode == 9, result.stderr
    (line,) = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    assert line["status"] == "failed" and "not a string" in line["error"]


def test_a_too_long_name_for_a_known_photo_is_exit_74_not_70(tmp_path, run_cli):
    from fake_endpoint import FakeEndpoint

    make_photos(tmp_path / "photos", 1)
    with FakeEndpoint() as endpoint:
        args = ["generate", str(tmp_path / "photos"), "--endpoint", endpoint.url, "-o", str(tmp_path / "out")]
        assert run_cli(*args).returncode == 0  # the ledger knows the photo now
        for _ in range(2):  # a known photo, then again
            result = run_cli(*args, "--name", "x" * 300 + "-{seed}.png")
            assert result.returncode == 74, result.stderr
            assert "--name" in result.stderr and "255" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1


def test_poses_show_on_a_canvas_too_thin_to_draw_is_exit_5(tmp_path, monkeypatch, capsys):
    points = [0.5, 100, 1, 0.5, 5000, 1, 0.5, 9000, 1] + [0, 0, 0] * 15
    pose = tmp_path / "thin.json"
    pose.write_text(
        json.dumps({"canvas_width": 1, "canvas_height": 100000, "people": [{"pose_keypoints_2d": points}]})
    )
    code, _, err = run_main(monkeypatch, capsys, "poses", "show", str(pose), "-o", str(tmp_path / "p.png"))
    assert code == 5, err
    assert "too thin" in err and "--size" in err


def test_serve_refuses_a_strength_that_leaves_no_step_with_422():
    from avatargen.serve.pipelines import ModelSpec, RequestError, parse_request

    spec = ModelSpec(key="k", architecture="sd15", controlnet="c", base_model="b", width=64, height=64, steps=3,
                     guidance_scale=7.5, controlnet_conditioning_scale=0.9, negative_prompt="")  # fmt: skip
    photo = base64.b64encode(pose_png(64, 64)).decode("ascii")
    with pytest.raises(RequestError) as caught:
        parse_request(request_body(steps=3, strength=0.2, init_image=photo), spec)
    assert caught.value.status == 422 and "strength" in str(caught.value)
    parse_request(request_body(steps=3, strength=0.34, init_image=photo), spec)  # one step: fine


# ------------------------------------------------------------------ item 14
@pytest.mark.parametrize(
    "template",
    ["{stem}\n-{seed}.png", "{stem}\x1b[31m.png", "{stem}\r.png", "{stem!r}-{seed}.png", "{seed!s}.png"],
)
def test_a_name_template_with_control_characters_or_conversions_is_exit_2(
    tmp_path, monkeypatch, capsys, template
):
    make_photos(tmp_path / "photos", 1)
    code, _, err = run_main(monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--name", template,
                            "--endpoint", "http://127.0.0.1:9/", "--dry-run")  # fmt: skip
    assert code == 2, err
    assert "template" in err and len(err.strip().splitlines()) == 1


def test_a_ledger_written_by_a_newer_avatargen_is_refused_with_exit_3(monkeypatch, capsys, avatargen_home):
    code, _, err = run_main(monkeypatch, capsys, "credits", "--json")
    assert code == 0, err
    (ledger,) = (avatargen_home / "data").glob("ledger.db")
    with sqlite3.connect(ledger) as db:
        db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
        before = db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
    code, _, err = run_main(monkeypatch, capsys, "credits")
    assert code == 3, err
    assert "written by a newer avatargen" in err
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == before


# ------------------------------------------------------------------ item 4
def test_a_pose_with_every_point_off_its_canvas_is_refused_before_any_credit(tmp_path, run_cli):
    from fake_endpoint import FakeEndpoint

    points = [900, 900, 1, 950, 990, 1, -40, 20, 1] + [0, 0, 0] * 15
    pose = tmp_path / "off.json"
    pose.write_text(
        json.dumps({"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": points}]})
    )
    make_photos(tmp_path / "photos", 1)
    with FakeEndpoint() as endpoint:
        result = run_cli("generate", str(tmp_path / "photos"), "--pose", str(pose), "--endpoint", endpoint.url,
                         "-o", str(tmp_path / "out"))  # fmt: skip
        report = json.loads(run_cli("credits", "--json").stdout)
    assert result.returncode == 5, result.stderr
    assert "outside its 512x512 canvas" in result.stderr
    assert endpoint.posts == 0
    assert report["spent_today"] == 0 and report["reserved"] == 0
