"""Request bodies a hostile client sends to `avatargen serve` (tests and bench/serve_hostile.py),
and the resident memory of a process, read from /proc (Linux)."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 12000, height: int = 12000) -> bytes:
    """A real, complete black 1-bit PNG of width x height: 18 KB for 12000x12000, which Pillow
    decodes to 144 MB (one byte a pixel) and 432 MB as RGB. Built row by row, so making it never
    holds the pixels."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + 8 pixels a byte
    parts = [packer.compress(row) for _ in range(height)]
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds no pixel data: only the header is valid."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hostile_bodies(pose_b64: str) -> list[tuple[str, bytes]]:
    """Eight (name, raw body) pairs, each refused with a 4xx JSON error by a hardened server."""
    import json

    bomb = b64(huge_png())
    prompt = {"prompt": "a portrait", "image": pose_b64}
    return [
        ("12000x12000 pose", json.dumps({"inputs": {"prompt": "p", "image": bomb}}).encode()),
        ("12000x12000 pose, HF style", json.dumps({"inputs": "p", "parameters": {"image": bomb}}).encode()),
        ("12000x12000 photo", json.dumps({"inputs": {**prompt, "init_image": bomb}}).encode()),
        (
            "12000x12000 photo as inputs",
            json.dumps({"inputs": bomb, "parameters": {"prompt": "p", "control_image": bomb}}).encode(),
        ),
        ("deep nesting", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("a million objects", b'{"inputs": [' + b",".join([b"{}"] * 1_000_000) + b"]}"),
        ("NaN and 1e309", b'{"inputs": {"prompt": "p", "seed": NaN, "guidance_scale": 1e309}}'),
        ("100k-character prompt", json.dumps({"inputs": {**prompt, "prompt": "a" * 100_000}}).encode()),
    ]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (now) or VmHWM (peak since start or the last reset) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Start VmHWM afresh from the current RSS (Linux >= 4.0; our own child process)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def attack(url: str, pid: int, bodies: list[tuple[str, bytes]]) -> dict:
    """Send every body at once (one thread each) and watch the server's memory meanwhile.

    Returns baseline_kb (RSS before), peak_kb (the highest RSS seen: VmHWM after a reset where
    the kernel allows it, else sampled every 5 ms) and answers [(name, status, content-type, text)].
    """
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    baseline = rss_kb(pid)
    exact = reset_peak_rss(pid)
    samples = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_kb(pid))
            time.sleep(0.005)

    def post(item: tuple[str, bytes]) -> tuple[str, int, str, str]:
        name, body = item
        try:
            response = httpx.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=300
            )
        except httpx.HTTPError as exc:  # status 0: no answer at all
            return name, 0, "", f"{type(exc).__name__}: {exc}"
        return name, response.status_code, response.headers.get("content-type", ""), response.text[:200]

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(post, bodies))
    finally:
        done.set()
        watcher.join(5)
    peak = max(max(samples), rss_kb(pid, "VmHWM") if exact else 0)
    return {"baseline_kb": baseline, "peak_kb": peak, "exact_peak": exact, "answers": answers}
