"""`avatargen status MODEL`, in-process, for every backend and state, human and --json."""

from __future__ import annotations

import json

import httpx
import pytest

from avatargen import settings
from avatargen.config import load as current_config
from avatargen.errors import UsageError
from avatargen.providers import local_status, select
from avatargen.redact import MASK
from provider_fakes import HF_ENDPOINT, TOKEN

MODEL = "controlnet-openpose-sd15"
KEY = f"avatar-generator:{MODEL}"
WHOAMI = "https://huggingface.co/api/whoami-v2"
HUB = "https://huggingface.co/api/models/{}?expand%5B%5D=inference&expand%5B%5D=inferenceProviderMapping"
BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"


@pytest.fixture
def token(monkeypatch, httpx_mock):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    httpx_mock.add_response(url=WHOAMI, json={"name": "alice", "auth": {"accessToken": {"role": "read"}}})


@pytest.fixture
def no_serve_extra(monkeypatch):
    monkeypatch.setattr(select, "serve_extra_available", lambda: False)


def status_json(cli, *args) -> dict:
    result = cli("status", MODEL, *args, "--json")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    return json.loads(result.stdout)


def status_text(cli, *args) -> str:
    result = cli("status", MODEL, *args)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    assert "Traceback" not in result.output
    return result.stdout


# ---------------------------------------------------------------- endpoint
SERVE_HEADER = {"X-Avatargen-Handler": "1"}  # what `avatargen serve` puts on every answer


def test_endpoint_ready_json(cli, httpx_mock, token):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", text="Ok")
    # An Inference Endpoint's /health is the toolkit's: the handler is asked (issue 23).
    httpx_mock.add_response(
        url=HF_ENDPOINT, method="POST", json={"avatargen": {"handler": 1, "features": []}}
    )
    report = status_json(cli, "--endpoint", HF_ENDPOINT)
    assert report["backend"] == "hf-endpoint" and report["url"] == HF_ENDPOINT
    assert report["url_source"] == "--endpoint" and report["state"] == "ready"
    assert isinstance(report["round_trip_ms"], float)
    assert report["model"]["key"] == KEY and report["model"]["base_model"] == BASE
    assert report["model"]["huggingface_model"] == CONTROLNET and report["model"]["credit_cost"] == 3
    assert report["token"] == {
        "found": True,
        "source": "HF_TOKEN",
        "valid": True,
        "user": "alice",
        "role": "read",
        "detail": "valid",
    }
    assert report["wait_timeout"] == 600.0 and "history" not in report
    assert report["handler"]["ours"] is True
    health, hello, whoami = httpx_mock.get_requests()
    assert hello.method == "POST" and hello.headers["authorization"] == f"Bearer {TOKEN}"
    assert health.headers["authorization"] == whoami.headers["authorization"] == f"Bearer {TOKEN}"


def test_endpoint_ready_human(cli, httpx_mock, token):
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", text="Ok", headers=SERVE_HEADER)
    out = status_text(cli, "--endpoint", HF_ENDPOINT)
    assert f"model     {KEY}" in out
    assert f"{CONTROLNET} on {BASE}, sd15 512x512, tier free, 3 credits" in out
    assert f"backend   hf-endpoint  {HF_ENDPOINT}  (from --endpoint)" in out
    assert "state     ready" in out and " ms)" in out
    assert "token     HF_TOKEN: valid (user alice)" in out


def test_endpoint_from_config_is_named(cli, httpx_mock, no_serve_extra):
    settings.set_value(f"endpoints.{KEY}", "http://gpu-box.lan:8000/")
    httpx_mock.add_response(url="http://gpu-box.lan:8000/health", text="Ok", headers=SERVE_HEADER)
    report = status_json(cli)
    assert report["url"] == "http://gpu-box.lan:8000/" and report["url_source"] == f"config endpoints.{KEY}"
    assert report["token"]["found"] is False and report["token"]["valid"] is None  # no whoami without a token


def test_endpoint_starting(cli, httpx_mock):
    httpx_mock.add_response(
        url=f"{HF_ENDPOINT}/health", status_code=503, json={"error": "loading", "estimated_time": 30}
    )
    report = status_json(cli, "--endpoint", HF_ENDPOINT)
    assert report["state"] == "starting" and report["estimated_time"] == 30.0
    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", status_code=503, json={"estimated_time": 30})
    assert "state     starting: loading, ~30 s" in status_text(cli, "--endpoint", HF_ENDPOINT)


def test_endpoint_unauthorized_and_token_rejected(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    httpx_mock.add_response(
        url=f"{HF_ENDPOINT}/health", status_code=401, json={"error": "Unauthorized"}, is_reusable=True
    )
    httpx_mock.add_response(
        url=WHOAMI, status_code=401, json={"error": "Invalid credentials"}, is_reusable=True
    )
    report = status_json(cli, "--endpoint", HF_ENDPOINT)
    assert report["state"] == "unauthorized" and "Unauthorized" in report["detail"]
    assert report["token"]["valid"] is False and report["token"]["source"] == "HF_TOKEN"
    out = status_text(cli, "--endpoint", HF_ENDPOINT)
    assert "state     unauthorized: HTTP 401: Unauthorized" in out
    assert "token     HF_TOKEN: rejected by huggingface.co (HTTP 401)" in out


def test_endpoint_unreachable_is_a_state_not_a_traceback(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"), is_reusable=True)
    report = status_json(cli, "--endpoint", HF_ENDPOINT)
    assert report["state"] == "unreachable" and "Connection refused" in report["detail"]
    assert report["token"]["valid"] is None and "could not be checked" in report["token"]["detail"]
    out = status_text(cli, "--endpoint", HF_ENDPOINT)
    assert "state     unreachable: ConnectError: Connection refused" in out


# ---------------------------------------------------------------- router
def test_router_warm_json(cli, httpx_mock, token):
    httpx_mock.add_response(
        url=HUB.format(BASE),
        json={
            "id": BASE,
            "inference": "warm",
            "inferenceProviderMapping": {
                "hf-inference": {"status": "live", "providerId": BASE, "task": "text-to-image"}
            },
        },
    )
    httpx_mock.add_response(url=HUB.format(CONTROLNET), json={"id": CONTROLNET})
    report = status_json(cli, "--provider", "hf-inference")
    assert report["backend"] == "hf-inference" and report["url_source"] == "--provider"
    assert report["url"] == f"https://router.huggingface.co/hf-inference/models/{BASE}"
    assert report["state"] == "warm"
    assert report["hub"][BASE]["providers"] == {"hf-inference": "live"}
    assert report["hub"][CONTROLNET]["state"] == "cold"
    assert "pose control needs an endpoint" in report["note"]


def test_router_cold_human(cli, httpx_mock, no_serve_extra):
    httpx_mock.add_response(url=HUB.format(BASE), json={"id": BASE})
    httpx_mock.add_response(
        url=HUB.format(CONTROLNET), status_code=404, json={"error": "Repository not found"}
    )
    out = status_text(cli, "--provider", "hf-inference")
    assert "state     cold: no inference provider serves it" in out
    assert f"hub       {BASE}: cold, no inference provider serves it" in out
    assert f"hub       {CONTROLNET}: not-found, HTTP 404: Repository not found" in out
    assert "token     none" in out


def test_router_unreachable(cli, httpx_mock):
    httpx_mock.add_exception(httpx.ConnectError("Name or service not known"), is_reusable=True)
    report = status_json(cli, "--provider", "hf-inference")
    assert report["state"] == "unreachable" and report["hub"][CONTROLNET]["state"] == "unreachable"


# ---------------------------------------------------------------- local and nothing
def test_local_backend_reports_the_device(cli, monkeypatch):
    monkeypatch.setattr(select, "serve_extra_available", lambda: True)
    monkeypatch.setattr(local_status, "local_device", lambda: "cuda")
    report = status_json(cli)
    assert report["backend"] == "local" and report["state"] == "local" and report["device"] == "cuda"
    assert report["url"] is None
    monkeypatch.setattr(local_status, "local_device", lambda: "cpu")
    out = status_text(cli, "--provider", "local")
    assert (
        "backend   local  (from --provider)" in out
        and "state     local: runs in-process on cpu (slow)" in out
    )


@pytest.mark.slow
def test_local_device_check_is_real():
    assert local_status.local_device() in ("cuda", "mps", "cpu", "unavailable")


def test_no_backend_is_reported_with_what_to_do(cli, no_serve_extra):
    report = status_json(cli)
    assert report["backend"] is None and report["state"] == "no-backend"
    assert (
        "cannot take a control image" in report["detail"]
        and "pip install 'avatargen[serve]'" in report["hint"]
    )
    out = status_text(cli)
    assert (
        "backend   none  (from none)" in out
        and "hint      a token alone runs Inference Providers: HF_TOKEN + --model qwen-image-edit-pose" in out
    )


def test_history_hook_is_shown_when_present(cli, monkeypatch, no_serve_extra):
    from avatargen.cli import status as status_cmd

    monkeypatch.setattr(status_cmd, "history_stats", lambda model: {"success_rate": 0.95, "median_s": 21.5})
    assert status_json(cli)["history"] == {"success_rate": 0.95, "median_s": 21.5}
    assert "history   success_rate 0.95, median_s 21.5" in status_text(cli)


def test_unknown_model_is_a_usage_error(cli):
    with pytest.raises(UsageError, match="unknown model 'nope' \\(MODEL\\)"):
        cli("status", "nope", "--json")


def test_bad_provider_is_a_usage_error(cli):
    with pytest.raises(UsageError, match="unknown provider"):
        cli("status", MODEL, "--provider", "replicate")


@pytest.mark.slow
def test_status_subprocess_exit_code_and_no_network(run_cli, monkeypatch):
    # The real entry point: unreachable endpoint on a closed local port is a state, exit 0.
    result = run_cli("status", MODEL, "--endpoint", "http://127.0.0.1:9/", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "unreachable"


# ---------------------------------------------------------------- hardening 11 and 12
PASSWORD = "s3cret-pass-77"
QUERY_TOKEN = "q-token-abc123xyz"


def test_status_of_a_loopback_endpoint_never_asks_the_hub_about_the_token(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    httpx_mock.add_response(
        url="http://127.0.0.1:8000/health", text="Ok", headers=SERVE_HEADER, is_reusable=True
    )
    report = status_json(cli, "--endpoint", "http://127.0.0.1:8000/")
    assert report["state"] == "ready"
    assert [str(r.url) for r in httpx_mock.get_requests()] == ["http://127.0.0.1:8000/health"]
    assert report["token"]["found"] is True and report["token"]["valid"] is None
    assert "not checked" in report["token"]["detail"]
    assert "token     HF_TOKEN: not checked" in status_text(cli, "--endpoint", "http://127.0.0.1:8000/")


def test_status_of_the_local_backend_never_asks_the_hub(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(local_status, "local_device", lambda: "cpu")
    report = status_json(cli, "--provider", "local")
    assert httpx_mock.get_requests() == [] and report["token"]["valid"] is None


@pytest.mark.slow
def test_credentials_in_the_endpoint_url_never_reach_the_status_output(cli, httpx_mock, monkeypatch):
    url = f"http://alice:{PASSWORD}@127.0.0.1:8000/run?token={QUERY_TOKEN}"
    httpx_mock.add_response(status_code=401, json={"error": f"bad token {QUERY_TOKEN}"}, is_reusable=True)
    for args in (["--json"], []):
        result = cli("status", MODEL, "--endpoint", url, *args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and QUERY_TOKEN not in result.output
    report = json.loads(cli("status", MODEL, "--endpoint", url, "--json").stdout)
    assert report["url"] == f"http://{MASK}@127.0.0.1:8000/run?token={MASK}"
    assert report["state"] == "unauthorized"


def test_a_token_given_on_the_command_line_is_redacted_everywhere(monkeypatch, no_serve_extra):
    from avatargen.providers.select import make_provider
    from avatargen.redact import redact_text

    secret = "my-own-server-secret-4242"  # not HF-shaped: only masked if it was remembered
    make_provider(select_model(), endpoint="http://127.0.0.1:9/", token=secret, config=current_config())
    assert redact_text(f"header was {secret}") == f"header was {MASK}"


def select_model():
    from provider_fakes import model

    return model()


# ---------------------------------------------------------------- the local backend (everyday 3)
def hide_serve_extra(monkeypatch):
    """As tests/test_serve_local.py does: diffusers is not installed."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a)
    )


def test_local_in_a_core_install_names_the_missing_extra(cli, monkeypatch):
    hide_serve_extra(monkeypatch)
    report = status_json(cli, "--provider", "local")
    assert report["backend"] == "local" and report["state"] == "missing-extra"
    assert "serve" in report["detail"] and report["hint"] == "install it with: pip install 'avatargen[serve]'"
    out = status_text(cli, "--provider", "local")
    assert "unavailable" not in out
    assert "hint      install it with: pip install 'avatargen[serve]'" in out


def fake_hub_cache(home, repo_id: str, filename: str) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/file}."""
    repo = home / "hf-home" / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / filename).write_text("{}")


@pytest.mark.slow
def test_local_in_a_full_install_says_whether_the_weights_are_cached(cli, monkeypatch, avatargen_home):
    monkeypatch.setattr(local_status, "local_device", lambda: "cpu")
    report = status_json(cli, "--provider", "local")
    assert report["weights"]["cached"] is False
    assert report["weights"]["missing"] == [CONTROLNET, BASE]
    assert f"weights   not cached: the first run downloads {CONTROLNET} and {BASE}" in status_text(
        cli, "--provider", "local"
    )
    fake_hub_cache(avatargen_home, CONTROLNET, "config.json")
    fake_hub_cache(avatargen_home, BASE, "model_index.json")
    report = status_json(cli, "--provider", "local")
    assert report["weights"]["cached"] is True and report["weights"]["missing"] == []
    assert "weights   cached (HF_HOME): nothing to download" in status_text(cli, "--provider", "local")


# ---------------------------------------------------------------- no Python reprs (everyday 9)
def test_human_output_has_no_python_reprs(cli, monkeypatch, no_serve_extra):
    from avatargen.cli import status as status_cmd

    stats = {
        "jobs": 4,
        "success_rate": 0.75,
        "median_seconds": None,
        "requests_today": 2,
        "requests_today_all_models": 5,
        "daily_request_limit": None,
        "daily_request_limit_model": None,
    }
    monkeypatch.setattr(status_cmd, "history_stats", lambda model: stats)
    out = status_text(cli)
    for repr_ in ("None", "{", "}", "['", "[]", "True", "False", "token     none: none"):
        assert repr_ not in out, (repr_, out)
    assert "daily_request_limit no limit" in out and "median_seconds" not in out


def test_human_output_of_a_real_ledger_has_no_none(cli, no_serve_extra):
    from avatargen.ledger import Ledger, default_path

    with Ledger(default_path()):
        pass  # a ledger with no jobs yet: the limits are unset
    out = status_text(cli)
    assert "history" in out and "None" not in out
