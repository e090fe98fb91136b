"""`avatargen endpoint deploy|list|status|pause|resume|scale-to-zero|delete`, and the endpoint
hooks of `generate`, against loopback fakes of the Hub and the Inference Endpoints API
(tests/endpoints_api_fake.py) and of the endpoint itself (tests/fake_endpoint.py)."""

from __future__ import annotations

import json
import tomllib

import pytest

from endpoints_api_fake import TOKEN, EndpointsApiFake
from fake_endpoint import FakeEndpoint
from helpers.images import save_photo

MODEL = "controlnet-openpose-sd15"
KEY = "avatar-generator:controlnet-openpose-sd15"


@pytest.fixture
def served():
    with FakeEndpoint() as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        yield api, endpoint


def config(home) -> dict:
    return tomllib.loads((home / "config.toml").read_text())


@pytest.mark.slow
def test_deploy_from_nothing_creates_repo_uploads_waits_and_stores_the_url(served, run_cli, avatargen_home):
    api, endpoint = served
    result = run_cli("endpoint", "deploy", MODEL, env=api.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == endpoint.url.rstrip("/")
    # a private repository with the bundle in it
    create = api.calls("POST", "/api/repos/create")[0]["json"]
    assert create["name"] == "avatargen-controlnet-openpose-sd15" and create["visibility"] == "private"
    files = api.repos["alice/avatargen-controlnet-openpose-sd15"]
    assert {"handler.py", "requirements.txt", "README.md", "avatargen-model.json"} <= set(files)
    assert b"class EndpointHandler" in files["handler.py"]
    # the endpoint, with the payload the issue asks for
    (created,) = api.calls("POST", "/v2/endpoint/alice")
    body = created["json"]
    assert body["compute"] == {
        "accelerator": "gpu",
        "instanceType": "nvidia-t4",
        "instanceSize": "x1",
        "scaling": {"minReplica": 0, "maxReplica": 1, "scaleToZeroTimeout": 15},
    }
    assert body["model"]["framework"] == "pytorch" and body["model"]["task"] == "custom"
    assert body["model"]["repository"] == "alice/avatargen-controlnet-openpose-sd15"
    assert body["model"]["image"] == {"huggingface": {}}  # the default container
    assert body["model"]["revision"]  # pinned to the commit just uploaded
    assert body["provider"] == {"vendor": "aws", "region": "us-east-1"}
    assert body["type"] == "authenticated" and body["tags"] == ["avatargen"]
    # states shown live on stderr, in order; the URL stored; the token went only to the API hosts
    lines = [line for line in result.stderr.splitlines() if line.startswith("endpoint ")]
    assert [line.rsplit(": ", 1)[1] for line in lines] == ["pending", "initializing", "running"]
    assert config(avatargen_home)["endpoints"][KEY] == endpoint.url.rstrip("/")
    assert all(r["authorized"] for r in api.requests)
    assert TOKEN not in result.stdout + result.stderr
    assert endpoint.requests and endpoint.requests[-1]["path"] == "/health"  # the proof it answers


@pytest.mark.slow
def test_deploy_again_updates_the_same_endpoint(served, run_cli):
    api, _ = served
    assert run_cli("endpoint", "deploy", MODEL, env=api.env()).returncode == 0
    again = run_cli("endpoint", "deploy", MODEL, "--max-replicas", "3", "--json", env=api.env())
    assert again.returncode == 0, again.stderr
    assert len(api.calls("POST", "/v2/endpoint/alice")) == 1 and len(api.endpoints) == 1
    (update,) = api.calls("PUT", "/v2/endpoint/alice/")
    assert update["json"]["compute"]["scaling"]["maxReplica"] == 3
    data = json.loads(again.stdout)
    assert data["created"] is False and data["state"] == "running"


@pytest.mark.slow
def test_a_failed_endpoint_shows_its_message_and_exits_6(run_cli, avatargen_home):
    with EndpointsApiFake(fail_message="CUDA out of memory on nvidia-t4") as api:
        result = run_cli("endpoint", "deploy", MODEL, env=api.env())
    assert result.returncode == 6
    assert "failed: CUDA out of memory on nvidia-t4" in result.stderr
    assert not (avatargen_home / "config.toml").exists()


@pytest.mark.slow
def test_dry_run_sends_nothing_and_lists_every_call(run_cli):
    with EndpointsApiFake() as api:
        result = run_cli(
            "endpoint", "deploy", "controlnet-openpose-sdxl", "--dry-run", "--json", env=api.env()
        )
        assert api.requests == []
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["call"].split()[0] for c in data["calls"]] == [
        "create_repo",
        "upload_folder",
        "create_inference_endpoint",
        "wait",
    ]
    assert "handler.py" in data["calls"][1]["files"]
    assert data["calls"][2]["instance_type"] == "nvidia-l4"  # 24 GB for SDXL


def test_protected_is_refused_with_the_new_name(run_cli):
    result = run_cli("endpoint", "deploy", MODEL, "--security", "protected", "--dry-run")
    assert result.returncode == 2
    assert "authenticated" in result.stderr


def test_missing_hub_extra_names_the_install_command(monkeypatch, capsys):
    import sys

    from cli_helpers import run_main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, _, err = run_main(monkeypatch, capsys, "endpoint", "deploy", MODEL)
    assert code == 11
    assert "pip install 'avatargen[hub]'" in err


@pytest.mark.slow
def test_status_list_pause_resume_delete(served, run_cli, avatargen_home):
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    # someone else's endpoint in the same account: only --all shows it
    api.endpoints["alice/other"] = api._raw(
        {"name": "other", "model": {"repository": "x/y", "framework": "pytorch"}}, "alice"
    )

    status = run_cli("endpoint", "status", MODEL, "--json", env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["state"] == "running" and data["url"] == endpoint.url.rstrip("/")
    assert data["replicas"] == {"current": 1, "target": 1, "min": 0, "max": 1}
    assert data["hardware"]["instance_type"] == "nvidia-t4" and data["cost_per_hour_usd"] == 0.5
    human = run_cli("endpoint", "status", MODEL, env=env).stdout
    assert "$0.5 per hour" in human and "1 running (min 0, max 1)" in human

    ours = json.loads(run_cli("endpoint", "list", "--json", env=env).stdout)["endpoints"]
    everything = json.loads(run_cli("endpoint", "list", "--all", "--json", env=env).stdout)["endpoints"]
    assert [e["name"] for e in ours] == [data["name"]]
    assert sorted(e["name"] for e in everything) == sorted([data["name"], "other"])

    paused = run_cli("endpoint", "pause", MODEL, "--json", env=env)
    assert json.loads(paused.stdout)["state"] == "paused"
    resumed = run_cli("endpoint", "resume", MODEL, "--wait", env=env)
    assert resumed.returncode == 0 and resumed.stdout.strip().endswith(": running")
    assert run_cli("endpoint", "scale-to-zero", MODEL, env=env).stdout.strip().endswith(": scaledToZero")

    refused = run_cli("endpoint", "delete", MODEL, env=env)  # no terminal: --yes is needed
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert len(api.endpoints) == 2
    deleted = run_cli("endpoint", "delete", MODEL, "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert list(api.endpoints) == ["alice/other"]
    assert KEY not in config(avatargen_home).get("endpoints", {})  # the stored URL went with it
    gone = run_cli("endpoint", "status", MODEL, env=env)
    assert gone.returncode == 6 and "not found" in gone.stderr


def photos(folder, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        save_photo(folder / f"p{i}.png", (64, 80), (i * 40 % 256, 90, 160))
    return folder


@pytest.mark.slow
def test_a_batch_ending_with_scale_to_zero(served, run_cli, tmp_path):
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    before = len(endpoint.requests)
    result = run_cli(
        "generate", str(photos(tmp_path / "in", 2)), "-m", MODEL, "-o", str(tmp_path / "out"),
        "--endpoint-after", "scale-to-zero", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert endpoint.posts == 2 and len(endpoint.requests) > before
    assert len(api.calls("POST", "/scale-to-zero")) == 1
    (raw,) = api.endpoints.values()
    assert raw["status"]["state"] == "scaledToZero"
    assert "scaledToZero (--endpoint-after scale-to-zero)" in result.stderr


@pytest.mark.slow
def test_a_paused_endpoint_is_named_and_resumed_on_request(served, run_cli, tmp_path):
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    assert run_cli("endpoint", "pause", MODEL, env=env).returncode == 0
    args = ["generate", str(photos(tmp_path / "in", 1)), "-m", MODEL, "-o", str(tmp_path / "out"), "--json"]
    refused = run_cli(*args, env=env)
    assert refused.returncode == 6
    assert "is paused" in refused.stderr and "--resume-endpoint" in refused.stderr
    assert endpoint.posts == 0  # no request waited out a timeout against a stopped endpoint
    resumed = run_cli(*args, "--resume-endpoint", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(api.calls("POST", "/resume")) == 1 and endpoint.posts == 1


def peak_in_flight(endpoint: FakeEndpoint, until: float | None = None) -> int:
    """Most requests the server held at once, from arrival times: each is held `delay` seconds,
    and a client slot frees only after its answer, so arrivals closer than that overlapped."""
    times = sorted(r["time"] for r in endpoint.requests if r["method"] == "POST")
    if until is not None:
        times = [t for t in times if t < until]
    window = endpoint.delay * 0.9
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@pytest.mark.slow
def test_concurrency_follows_a_replica_count_that_goes_from_1_to_3(monkeypatch, capsys, run_cli, tmp_path):
    import threading
    import time

    from avatargen.deploy import batch_hooks
    from cli_helpers import run_main

    with FakeEndpoint(delay=0.4) as endpoint, EndpointsApiFake(endpoint_url=endpoint.url) as api:
        assert run_cli("endpoint", "deploy", MODEL, "--max-replicas", "3", env=api.env()).returncode == 0
        for name, value in api.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(batch_hooks, "REFRESH_S", 0.1)
        api.ready_replica = 1
        flipped: list[float] = []

        def scale_up() -> None:
            time.sleep(1.5)
            flipped.append(time.monotonic())
            api.ready_replica = 3

        threading.Thread(target=scale_up, daemon=True).start()
        folder = photos(tmp_path / "in", 18)
        code, out, err = run_main(
            monkeypatch, capsys, "generate", str(folder), "-m", MODEL, "-o", str(tmp_path / "o"), "--yes"
        )
        assert code == 0, err
        assert "1 of 3 running, 2 requests each" in err
        assert endpoint.posts == 18
        assert peak_in_flight(endpoint, until=flipped[0]) <= 2  # one replica: two requests at a time
        assert 2 < peak_in_flight(endpoint) <= 6  # three replicas: up to six


@pytest.mark.slow
def test_two_urls_share_a_batch_and_a_failing_one_is_set_aside(run_cli, tmp_path, avatargen_home):
    from avatargen.deploy.batch_hooks import SLOTS_PER_REPLICA
    from avatargen.providers.pool import SET_ASIDE_AFTER
    from avatargen.providers.retry import TRANSIENT_RETRIES

    with FakeEndpoint(delay=0.05) as good, FakeEndpoint(fail_prompts=("",)) as bad:
        setting = run_cli("config", "set", f"endpoints.{KEY}", f"{good.url},{bad.url}")
        assert setting.returncode == 0, setting.stderr
        result = run_cli(
            "generate", str(photos(tmp_path / "in", 8)), "-m", MODEL, "-o", str(tmp_path / "out"), "--json",
            env={"AVATARGEN_RETRY_SCALE": "0.001"},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 8
    assert good.posts == 8 and bad.posts >= 1  # both were used
    assert "set aside for this batch" in result.stderr
    # Set aside after SET_ASIDE_AFTER failed jobs in a row; the other job it held at that moment
    # (least-loaded: at most SLOTS_PER_REPLICA in flight per URL) still finishes its retries there.
    jobs_on_bad = SET_ASIDE_AFTER + SLOTS_PER_REPLICA - 1
    assert bad.posts <= jobs_on_bad * (1 + TRANSIENT_RETRIES)


# ------------------------------------------------------------------ retry: the same endpoint steps
def failed_batch(run_cli, endpoint: FakeEndpoint, tmp_path, count: int, env: dict, *options: str) -> None:
    """A batch whose every job failed (the server answered 500 to all); the server then heals."""
    endpoint.fail_prompts = ("",)  # every prompt holds ""
    first = run_cli("generate", str(photos(tmp_path / "in", count)), "-m", MODEL, "-o", str(tmp_path / "out"),
                    "--json", *options, env={**env, "AVATARGEN_RETRY_SCALE": "0.001"})  # fmt: skip
    assert first.returncode not in (0, 2, 70), first.stderr
    assert [json.loads(line)["status"] for line in first.stdout.splitlines()] == ["failed"] * count
    endpoint.fail_prompts = ()


@pytest.mark.slow
def test_a_retry_ending_with_scale_to_zero(served, run_cli, tmp_path):
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    failed_batch(run_cli, endpoint, tmp_path, 2, env)
    assert api.calls("POST", "/scale-to-zero") == []
    posts = endpoint.posts
    result = run_cli("retry", "--endpoint-after", "scale-to-zero", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert endpoint.posts == posts + 2
    assert len(api.calls("POST", "/scale-to-zero")) == 1
    (raw,) = api.endpoints.values()
    assert raw["status"]["state"] == "scaledToZero"
    assert "scaledToZero (--endpoint-after scale-to-zero)" in result.stderr


@pytest.mark.slow
def test_a_retry_ends_the_way_its_batch_was_told_to(served, run_cli, tmp_path):
    """generate --endpoint-after scale-to-zero, then a plain `retry`: it scales to zero again."""
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, env=env).returncode == 0
    failed_batch(run_cli, endpoint, tmp_path, 2, env, "--endpoint-after", "scale-to-zero")
    assert len(api.calls("POST", "/scale-to-zero")) == 1
    result = run_cli("retry", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert len(api.calls("POST", "/scale-to-zero")) == 2
    assert "--endpoint-after scale-to-zero" in result.stderr


@pytest.mark.slow
def test_a_retry_follows_the_replicas_when_its_batch_did(served, run_cli, tmp_path):
    api, endpoint = served
    env = api.env()
    assert run_cli("endpoint", "deploy", MODEL, "--max-replicas", "3", env=env).returncode == 0
    failed_batch(run_cli, endpoint, tmp_path, 1, env)
    result = run_cli("retry", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "concurrency follows the replicas of" in result.stderr


@pytest.mark.slow
def test_a_retry_spreads_over_the_configured_urls(run_cli, tmp_path):
    with FakeEndpoint(delay=0.05) as first, FakeEndpoint(delay=0.05) as second:
        assert run_cli("config", "set", f"endpoints.{KEY}", first.url).returncode == 0
        failed_batch(run_cli, first, tmp_path, 8, {})
        posts = first.posts
        # A second server is added, then the failed jobs are retried: both take a share.
        assert run_cli("config", "set", f"endpoints.{KEY}", f"{first.url},{second.url}").returncode == 0
        result = run_cli("retry", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["done"] * 8
    assert second.posts >= 1 and first.posts > posts
    assert first.posts - posts + second.posts == 8
