"""Completion notices for a finished batch: POST the summary to a URL, or run a command.

Both are best effort: a notice that fails is a warning on stderr, never a failed batch, so
neither function raises. The summary is the batch's own report (`batch_id`, counts, credits,
failed items, duration, output folder); no token is ever added to it or to the request.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "avatargen-notify"


def _warn(message: str) -> None:
    from avatargen.output import warn

    warn(message)


def _where(url: str) -> str:
    # Webhook URLs often carry a secret in the path or query (Slack, Discord): name the host only.
    parts = urlsplit(url)
    return parts.hostname or "the notify URL"


def _redact_tokens(body: bytes) -> bytes:
    """Belt and braces: should a secret have slipped into the summary (an error message quoting
    a header or an endpoint URL with credentials, say), it is masked before anything leaves the
    machine: every token avatargen knows (HF and endpoint tokens, --token), URL credentials,
    and anything shaped like a Hugging Face token."""
    from avatargen.redact import redact_text

    return redact_text(body.decode("utf-8")).encode("utf-8")


def post_summary(
    url: str,
    summary: dict[str, Any],
    *,
    attempts: int = 3,
    timeout: float = 10,
    sleep: Callable[[float], None] = time.sleep,
    sign: Callable[[bytes], dict[str, str]] | None = None,
) -> bool:
    """POST `summary` as JSON to `url`; retry network errors, 429 and 5xx with back-off
    (1 s, 2 s, 4 s, ...). True on a 2xx answer; False with a warning otherwise. Never raises.
    `sign`: extra headers computed from the exact body sent (the service's HMAC signature)."""
    try:
        import httpx

        body = json.dumps(summary, ensure_ascii=False, default=str).encode("utf-8")
    except Exception as exc:  # an unserialisable summary must not fail the batch either
        _warn(f"completion notice not sent: {type(exc).__name__}")
        return False
    where = _where(url)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        _warn("completion notice not sent: --notify-url must be an http:// or https:// URL")
        return False
    body = _redact_tokens(body)
    last = "no attempt"
    attempt = 0
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if sign is not None:
        headers.update(sign(body))
    try:
        # No auth, no cookies, no redirects: the summary goes to exactly this URL, with no credentials.
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for attempt in range(1, max(1, attempts) + 1):
                if attempt > 1:
                    sleep(min(2 ** (attempt - 2), 30))
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.TimeoutException:
                    last = "timed out"
                    continue
                except httpx.TransportError as exc:
                    last = f"connection failed ({type(exc).__name__})"
                    continue
                if response.is_success:
                    return True
                last = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the server said no; asking again will not change its mind
    except Exception as exc:  # bad URL and the like: a notice never breaks the batch
        last = f"{type(exc).__name__}"
    _warn(f"completion notice to {where} failed after {attempt} attempt(s): {last}")
    return False


def _child_output():
    """Where the command's output goes: our stderr, since stdout carries results (and --json)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def run_on_complete(command: str, summary: dict[str, Any], *, timeout: float | None = None) -> int:
    """Run `command` (split like a shell would, but no shell) with the path of a JSON file holding
    `summary` appended as its last argument. Returns its exit code (127 not found, 126 not
    runnable, 124 timed out, 2 bad command line); warns when it is not 0. Never raises.
    The file is removed once the command has finished."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        _warn(f"--on-complete: cannot parse the command ({exc})")
        return 2
    if not argv:
        _warn("--on-complete: the command is empty")
        return 2
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix="avatargen-summary-", suffix=".json")
        text = json.dumps(summary, ensure_ascii=False, indent=2, default=str)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_redact_tokens(text.encode("utf-8")).decode("utf-8"))
        from avatargen.redact import child_environment

        env = child_environment()  # the command is the user's, but our credentials stay ours
        out = _child_output()
        try:
            if out is not None:
                completed = subprocess.run(
                    [*argv, path], stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, env=env
                )
            else:
                completed = subprocess.run(
                    [*argv, path], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env
                )
                sys.stderr.write(
                    completed.stdout.decode(errors="replace") + completed.stderr.decode(errors="replace")
                )
            code = completed.returncode
            if code < 0:  # killed by a signal: report it the way a shell would
                code = 128 - code
        except subprocess.TimeoutExpired:
            _warn(f"--on-complete: '{argv[0]}' did not finish within {timeout:g} s and was stopped")
            return 124
        except FileNotFoundError:
            _warn(f"--on-complete: '{argv[0]}' not found")
            return 127
        except PermissionError:
            _warn(f"--on-complete: '{argv[0]}' cannot be run (permission denied)")
            return 126
        if code != 0:
            _warn(f"--on-complete: '{argv[0]}' exited with code {code}")
        return code
    except Exception as exc:  # the temp file, an odd OS error: still not the batch's failure
        _warn(f"--on-complete: could not run the command ({type(exc).__name__}: {exc})")
        return 1
    finally:
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
