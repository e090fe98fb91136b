"""Completion notices: the webhook POST (retries, never raising, no token) and --on-complete."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

from avatargen.notify import post_summary, run_on_complete

URL = "https://hooks.example.test/T000/B000/secretpath"
SUMMARY = {
    "batch_id": "b-20250101-0001",
    "total": 10,
    "done": 8,
    "failed": 1,
    "skipped": 1,
    "credits_spent": 40,
    "failed_items": [{"input": "photo3.jpg", "pose": "wave", "error": "HTTP 500"}],
    "duration_s": 123.4,
    "output_dir": "/tmp/out",
}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_posts_the_summary_as_json_once_on_success(httpx_mock):
    httpx_mock.add_response(url=URL, method="POST", status_code=204)
    sleeps = Sleeps()
    assert post_summary(URL, SUMMARY, sleep=sleeps) is True
    [request] = httpx_mock.get_requests()
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == SUMMARY
    assert "authorization" not in request.headers and "cookie" not in request.headers
    assert sleeps == []


def test_retries_network_errors_and_5xx_then_succeeds(httpx_mock, capsys):
    httpx_mock.add_exception(httpx.ConnectError("refused"))
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(status_code=200, json={"ok": True})
    sleeps = Sleeps()
    assert post_summary(URL, SUMMARY, attempts=3, sleep=sleeps) is True
    assert len(httpx_mock.get_requests()) == 3
    assert sleeps == [1, 2]  # back-off grows; injected, so the test waits for nothing
    assert capsys.readouterr().err == ""


def test_all_failures_return_false_with_a_warning_and_no_exception(httpx_mock, capsys):
    httpx_mock.add_response(status_code=500)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    httpx_mock.add_response(status_code=502)
    sleeps = Sleeps()
    assert post_summary(URL, SUMMARY, attempts=3, sleep=sleeps) is False
    assert len(httpx_mock.get_requests()) == 3
    assert sleeps == [1, 2]
    err = capsys.readouterr().err
    assert "hooks.example.test" in err and "3 attempt(s)" in err and "HTTP 502" in err
    assert "secretpath" not in err  # webhook paths are secrets too


def test_a_4xx_answer_is_not_retried(httpx_mock, capsys):
    httpx_mock.add_response(status_code=404)
    sleeps = Sleeps()
    assert post_summary(URL, SUMMARY, sleep=sleeps) is False
    assert len(httpx_mock.get_requests()) == 1 and sleeps == []
    assert "HTTP 404" in capsys.readouterr().err


def test_429_is_retried(httpx_mock):
    httpx_mock.add_response(status_code=429)
    httpx_mock.add_response(status_code=200)
    assert post_summary(URL, SUMMARY, sleep=Sleeps()) is True


def test_never_sends_a_token(httpx_mock, monkeypatch):
    token = "hf_notifyMustNeverSendThis123"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HUGGINGFACE_API_KEY", token + "X")
    httpx_mock.add_response(status_code=200)
    leaky = dict(SUMMARY, failed_items=[{"error": f"401 with Bearer {token}"}])
    assert post_summary(URL, leaky, sleep=Sleeps()) is True
    [request] = httpx_mock.get_requests()
    wire = request.content.decode() + str(request.headers)
    assert token not in wire
    assert json.loads(request.content)["failed_items"][0]["error"] == "401 with Bearer [redacted]"


@pytest.mark.parametrize("url", ["ftp://example.test/x", "not a url", ""])
def test_bad_urls_warn_without_a_request(httpx_mock, capsys, url):
    assert post_summary(url, SUMMARY, sleep=Sleeps()) is False
    assert httpx_mock.get_requests() == []
    assert "--notify-url" in capsys.readouterr().err


def test_unserialisable_summary_does_not_raise(httpx_mock, capsys):
    httpx_mock.add_response(status_code=200)
    odd = dict(SUMMARY, duration_s=object())  # default=str copes with it
    assert post_summary(URL, odd, sleep=Sleeps()) is True


# ---------------------------------------------------------------- --on-complete
COPY_SCRIPT = "import shutil, sys; shutil.copy(sys.argv[-1], sys.argv[1])"


def _python(code: str) -> str:
    import shlex

    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def test_runs_the_command_with_the_summary_file_last(tmp_path):
    copy = tmp_path / "got summary.json"  # a space: shlex quoting must hold
    import shlex

    code = run_on_complete(f"{_python(COPY_SCRIPT)} {shlex.quote(str(copy))}", SUMMARY)
    assert code == 0
    assert json.loads(copy.read_text()) == SUMMARY


def test_the_summary_file_is_removed_afterwards(tmp_path):
    record = tmp_path / "path.txt"
    script = f"import sys; open({str(record)!r}, 'w').write(sys.argv[-1])"
    assert run_on_complete(_python(script), SUMMARY) == 0
    summary_path = record.read_text()
    assert summary_path.endswith(".json")
    import os

    assert not os.path.exists(summary_path)


def test_no_shell_is_involved(tmp_path):
    marker = tmp_path / "should-not-exist"
    code = run_on_complete(f"{_python('import sys')} ; touch {marker}", SUMMARY)
    assert code == 0  # ';' and 'touch' were just arguments to python
    assert not marker.exists()


def test_failing_command_returns_its_code_and_warns(capsys):
    assert run_on_complete(_python("import sys; sys.exit(3)"), SUMMARY) == 3
    assert "exited with code 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        ("/nonexistent/avatargen-hook", 127, "not found"),
        ("", 2, "empty"),
        ("echo 'unterminated", 2, "cannot parse"),
    ],
)
def test_unrunnable_commands_never_raise(capsys, command, code, message):
    assert run_on_complete(command, SUMMARY) == code
    assert message in capsys.readouterr().err


def test_not_executable_is_126(tmp_path, capsys):
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    assert run_on_complete(str(script), SUMMARY) == 126
    assert "cannot be run" in capsys.readouterr().err


def test_a_hung_command_is_stopped_at_the_timeout(capsys):
    assert run_on_complete(_python("import time; time.sleep(30)"), SUMMARY, timeout=0.2) == 124
    assert "did not finish" in capsys.readouterr().err


def test_the_commands_output_goes_to_stderr_not_stdout(capfd):
    assert run_on_complete(_python("print('hello from the hook')"), SUMMARY) == 0
    out, err = capfd.readouterr()
    assert "hello from the hook" in err and "hello from the hook" not in out
