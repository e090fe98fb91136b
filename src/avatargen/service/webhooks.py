"""Per-generation webhooks: the generation's JSON POSTed when it completes or fails, signed.

    X-Avatargen-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>

A receiver recomputes the HMAC over the raw body and compares in constant time, and refuses a
`t` too far from its clock (replays). Sending reuses notify.post_summary (retries, no redirects,
secrets masked in the body); it runs on its own thread so a slow receiver never holds a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

SIGNATURE_HEADER = "X-Avatargen-Signature"


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300) -> bool:
    """What a receiver does (and the tests): True when the header signs this body recently."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, body, t), header)


def database_secret(db) -> str:
    """The webhook key kept in the service database (made once), when config names none."""
    with db.read() as cur:
        row = cur.one("SELECT value FROM svc_settings WHERE name = 'webhook_secret'")
    if row:
        return row["value"]
    with db.tx() as cur:
        cur.execute(
            "INSERT INTO svc_settings (name, value) VALUES ('webhook_secret', ?) ON CONFLICT (name) DO NOTHING",
            (secrets.token_hex(32),),
        )
        return cur.one("SELECT value FROM svc_settings WHERE name = 'webhook_secret'")["value"]


def send(url: str, payload: dict[str, Any], secret: str) -> threading.Thread:
    from avatargen.notify import post_summary

    def work() -> None:
        post_summary(url, payload, sign=lambda body: {SIGNATURE_HEADER: signature(secret, body)})

    thread = threading.Thread(target=work, name="avatargen-webhook", daemon=True)
    thread.start()
    return thread
