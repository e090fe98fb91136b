"""Secrets never reach stdout, stderr, the ledger, history, PNGs, the summary file, a webhook or
a child process: distinctive secrets are set every way avatargen takes them, every path that
prints or stores something is driven, and every place is searched for them."""

from __future__ import annotations

import json
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fake_endpoint import FakeEndpoint
from test_exit_codes import closed_port_url
from test_generate_e2e import make_photos

HF_TOKEN = "hf_EnvSecretAAAA1111bbbb2222"
CLI_TOKEN = "hf_CliSecretCCCC3333dddd4444"
ENDPOINT_TOKEN = "endpoint-Secret-EEEE5555"
URL_PASSWORD = "UrlPass-FFFF6666"
URL_QUERY_TOKEN = "QueryTok-GGGG7777"
SECRETS = (HF_TOKEN, CLI_TOKEN, ENDPOINT_TOKEN, URL_PASSWORD, URL_QUERY_TOKEN)


class Webhook:
    """A loopback receiver that keeps every body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                hook.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://urluser:{URL_PASSWORD}@{rest}?token={URL_QUERY_TOKEN}&size=1"


def leaks(text: bytes | str, where: str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f"{where}: {secret}" for secret in SECRETS if secret.encode() in data]


@pytest.mark.slow
def test_no_secret_reaches_any_output_file_webhook_or_child(tmp_path, run_cli, avatargen_home):
    env = {"HF_TOKEN": HF_TOKEN, "AVATARGEN_ENDPOINT_TOKEN": ENDPOINT_TOKEN, "AVATARGEN_RETRY_SCALE": "0.01"}
    make_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    keep = tmp_path / "kept"
    keep.mkdir()
    # The --on-complete command keeps the summary file and its own environment for inspection.
    script = f'cp "$1" {shlex.quote(str(keep / "summary.json"))}; env > {shlex.quote(str(keep / "env.txt"))}'
    on_complete = shlex.join(["sh", "-c", script, "sh"])
    hook = Webhook()

    def generate_with_notices(photos: Path, url: str, *extra: str):
        """generate with every secret-carrying option, a webhook and an --on-complete command."""
        args = ["generate", str(photos), "--endpoint", url, "--token", CLI_TOKEN, "-o", str(out)]
        return run_cli(*args, "--notify-url", hook.url, "--on-complete", on_complete, *extra, env=env)

    results = []
    try:
        with FakeEndpoint() as fake:
            url = with_credentials(fake.url)
            results.append(generate_with_notices(tmp_path / "photos", url, "--json"))
            assert results[-1].returncode == 0, results[-1].stderr
            results.append(
                run_cli("status", "controlnet-openpose-sd15", "--endpoint", url, "--json", env=env)
            )
            results.append(run_cli("status", "controlnet-openpose-sd15", "--endpoint", url, env=env))
        # A failing run: errors, jobs.error and movements.note quote the endpoint.
        make_photos(tmp_path / "more", 1, start=20)
        with FakeEndpoint(fail_prompts=("",)) as failing:  # every job fails there (5xx)
            refusing = with_credentials(failing.url)
            results.append(generate_with_notices(tmp_path / "more", refusing))
            assert results[-1].returncode == 9, results[-1].stderr
        # Nothing listening: stopped before any batch (issue 23), its one line quotes the URL.
        down = with_credentials(closed_port_url())
        results.append(generate_with_notices(tmp_path / "more", down))
        assert results[-1].returncode == 8, results[-1].stderr
        results.append(run_cli("generate", str(tmp_path / "more"), "--endpoint", down, "--json", env=env))
        for args in (
            ("history", "--json"),
            ("history",),
            ("credits", "history", "--json"),
            ("config", "show"),
        ):
            results.append(run_cli(*args, env=env))
        results.append(run_cli("history", "show", "1", env=env))
        assert len(hook.bodies) == 2
    finally:
        hook.close()

    found: list[str] = []
    for i, result in enumerate(results):
        found += leaks(result.stdout, f"stdout of run {i}") + leaks(result.stderr, f"stderr of run {i}")
    for path in (avatargen_home / "data").glob("ledger.db*"):
        found += leaks(path.read_bytes(), path.name)
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        found += leaks(png.read_bytes(), png.name)
    found += leaks((keep / "summary.json").read_bytes(), "the --on-complete summary file")
    for body in hook.bodies:
        found += leaks(body, "the webhook body")
    child_env = (keep / "env.txt").read_text()
    found += leaks(child_env, "the --on-complete environment")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_API_KEY", "AVATARGEN_ENDPOINT_TOKEN"):
        assert f"\n{name}=" not in f"\n{child_env}", name
    assert not found, found
    # The failing run really went through the paths searched: its failure is in the summary.
    summary = json.loads((keep / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["failed_items"]


def test_stored_argv_drops_the_token_and_masks_url_credentials():
    from avatargen.app.run import stored_argv

    argv = ["generate", "p.jpg", "--token", CLI_TOKEN, f"--token={CLI_TOKEN}", "--endpoint",
            f"https://u:{URL_PASSWORD}@h.example/?token={URL_QUERY_TOKEN}"]  # fmt: skip
    kept = " ".join(stored_argv(argv))
    assert not leaks(kept, "argv")
    assert kept.count("[redacted]") == 4 and "h.example" in kept
