"""Issue 24 items 1, 2 and 13: an endpoint avatargen deployed is never left billing by a batch
(a signal or a failed state during the resume wait), a second deploy under another name never
re-points the first one's record, and `endpoint deploy --name` is checked before anything is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from endpoints_api_fake import EndpointsApiFake
from fake_endpoint import FakeEndpoint
from test_endpoint_deploy import MODEL, photos


class ResumeScript(EndpointsApiFake):
    """After a resume, the endpoint walks `resume_steps` (none: it stays pending for ever)."""

    resume_steps: tuple[str, ...] = ()

    def _endpoints_route(self, method, parts, body):
        status, data = super()._endpoints_route(method, parts, body)
        if len(parts) > 2 and parts[2] == "resume":
            self.steps[f"{parts[0]}/{parts[1]}"] = list(self.resume_steps)
        return status, data


def deployed_and_paused(api, run_cli):
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    assert run_cli("endpoint", "pause", MODEL, env=env).returncode == 0
    return env


def state_of(api) -> str:
    (raw,) = api.endpoints.values()
    return raw["status"]["state"]


def test_sigterm_during_the_resume_wait_still_pauses_the_endpoint_and_exits_143(run_cli, tmp_path):
    with FakeEndpoint() as endpoint, ResumeScript(endpoint_url=endpoint.url) as api:
        env = deployed_and_paused(api, run_cli)
        args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out")]
        args += ["--resume-endpoint", "--endpoint-after", "pause"]
        child = subprocess.Popen(
            [sys.executable, "-m", "avatargen", *args],
            env={**os.environ, **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not api.calls("POST", "/resume") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.calls("POST", "/resume"), "the batch never resumed the endpoint"
        time.sleep(0.5)  # well inside the wait for `running`
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr
    assert len(api.calls("POST", "/pause")) == 2  # ours, then the batch's after-action
    assert state_of(api) == "paused"
    assert "paused (--endpoint-after pause)" in stderr
    assert endpoint.posts == 0


def test_a_failed_state_during_the_resume_wait_still_runs_the_after_action(run_cli, tmp_path):
    with FakeEndpoint() as endpoint, ResumeScript(endpoint_url=endpoint.url) as api:
        api.resume_steps = ("initializing", "failed")
        env = deployed_and_paused(api, run_cli)
        args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out")]
        result = run_cli(*args, "--resume-endpoint", "--endpoint-after", "scale-to-zero", env=env)
    assert result.returncode == 6, result.stderr
    assert "failed" in result.stderr
    assert len(api.calls("POST", "/scale-to-zero")) == 1
    assert state_of(api) == "scaledToZero"
    assert endpoint.posts == 0


def test_a_refused_paused_endpoint_is_not_touched_after(run_cli, tmp_path):
    with FakeEndpoint() as endpoint, ResumeScript(endpoint_url=endpoint.url) as api:
        env = deployed_and_paused(api, run_cli)
        args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out")]
        result = run_cli(*args, "--endpoint-after", "scale-to-zero", env=env)
    assert result.returncode == 6, result.stderr
    assert not api.calls("POST", "/scale-to-zero")  # it was paused: scaling it would be a change
    assert state_of(api) == "paused"


class TwoEndpoints(EndpointsApiFake):
    """Each endpoint name runs at its own URL (`urls`), as real endpoints do."""

    def __init__(self, urls: dict[str, str]) -> None:
        super().__init__()
        self.urls = urls

    def _set_state(self, raw, state):
        self.endpoint_url = self.urls.get(raw["name"], "http://127.0.0.1:9/")
        super()._set_state(raw, state)


def test_a_second_deploy_under_another_name_never_re_points_the_first(run_cli, tmp_path):
    with FakeEndpoint() as first, FakeEndpoint() as second:
        urls = {"first": first.url, "second": second.url}
        with TwoEndpoints(urls) as api:
            env = api.env()
            assert run_cli("endpoint", "deploy", MODEL, "--name", "first", env=env).returncode == 0
            assert run_cli("endpoint", "deploy", MODEL, "--name", "second", env=env).returncode == 0
            # A third deploy that never reached running: its record has no URL.
            result = run_cli("endpoint", "deploy", MODEL, "--name", "third", "--no-wait", env=env)
            assert result.returncode == 0, result.stderr
            args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out")]
            result = run_cli(*args, "--endpoint", first.url, "--endpoint-after", "pause", "--json", env=env)
            assert result.returncode == 0, result.stderr
            states = {raw["name"]: raw["status"]["state"] for raw in api.endpoints.values()}
            paused = [c["path"] for c in api.calls("POST", "/pause")]
    assert first.posts == 1 and second.posts == 0
    assert paused == ["/v2/endpoint/alice/first/pause"]
    assert states["first"] == "paused"
    assert states["second"] == "running"
    assert "alice/first: paused (--endpoint-after pause)" in result.stderr


def test_deleting_one_endpoint_keeps_the_others_record(run_cli, tmp_path, avatargen_home):
    with FakeEndpoint() as first, FakeEndpoint() as second:
        urls = {"first": first.url, "second": second.url}
        with TwoEndpoints(urls) as api:
            env = api.env()
            assert run_cli("endpoint", "deploy", MODEL, "--name", "first", env=env).returncode == 0
            assert run_cli("endpoint", "deploy", MODEL, "--name", "second", env=env).returncode == 0
            assert run_cli("endpoint", "delete", "second", "--yes", env=env).returncode == 0
            args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out")]
            result = run_cli(*args, "--endpoint", first.url, "--endpoint-after", "pause", env=env)
            assert result.returncode == 0, result.stderr
    records = json.loads((avatargen_home / "data" / "deployed-endpoints.json").read_text())
    assert [r["name"] for r in records["avatar-generator:controlnet-openpose-sd15"]] == ["first"]
    assert len(api.calls("POST", "/pause")) == 1


@pytest.mark.parametrize("name", ["../../x", "x/y", "name?x=1", "", "UPPER", "-lead", "a" * 33, "x\ny"])
def test_deploy_refuses_a_bad_name_before_anything_is_sent(run_cli, name):
    with EndpointsApiFake() as api:
        result = run_cli("endpoint", "deploy", MODEL, "--name", name, env=api.env())
        assert result.returncode == 2, result.stderr
        assert "--name" in result.stderr and "not a valid endpoint name" in result.stderr
        assert api.requests == []


@pytest.mark.parametrize("args", [("--namespace", "../evil"), ("--namespace", "a/b")])
def test_deploy_and_status_refuse_a_bad_namespace_before_anything_is_sent(run_cli, args):
    with EndpointsApiFake() as api:
        for command in (("endpoint", "deploy", MODEL), ("endpoint", "status", "../../x")):
            result = run_cli(*command, *args, env=api.env())
            assert result.returncode == 2, result.stderr
        result = run_cli("endpoint", "pause", "x/../../y", env=api.env())
        assert result.returncode == 2, result.stderr
        assert api.requests == []
