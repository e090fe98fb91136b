"""Batch engine benchmarks against a loopback endpoint with a fixed delay (issue 5, item 10).

Prints, measured side by side in one run:
  1. efficiency = ideal wall time (N x delay / concurrency) / measured       target >= 0.9
  2. speedup against a plain one-at-a-time loop doing the same calls (the seed's approach)
  3. requests sent while the model loads for E seconds                       target <= concurrency + E / poll
  4. peak memory of a batch of N photos, for two N                           target flat in N, < 200 MB

Usage: python bench/batch.py [--n 200] [--delay 0.2] [--concurrency 8] [--loading 4] [--memory-n 1000 5000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fake_endpoint import FakeEndpoint  # noqa: E402


def make_photos(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (64, 64), (i % 256, (i // 256) % 256, (i // 65536) % 256)).save(
            folder / f"p{i:05d}.png"
        )


def run_cli(args: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "avatargen", *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - started, done


def fresh_env(root: Path, credits: int = 0) -> dict:
    """The environment of a fresh user folder, topped up with `credits`."""
    home = Path(tempfile.mkdtemp(dir=root))
    env = {**os.environ, "AVATARGEN_HOME": str(home)}
    env.pop("HF_TOKEN", None)
    if credits:
        add = [sys.executable, "-m", "avatargen", "credits", "add", str(credits)]
        subprocess.run(add, env=env, check=True, capture_output=True)
    return env


def generate_args(photos: Path, url: str, out: Path, concurrency: int) -> list[str]:
    """`generate` as every measurement runs it: pose only (no photo sent), no questions, JSON lines."""
    return ["generate", str(photos), "--endpoint", url, "-o", str(out), "--concurrency", str(concurrency),
            "--strength", "0", "--yes", "--json"]  # fmt: skip


def batch_wall_time(root: Path, photos: Path, url: str, concurrency: int, n: int) -> tuple[float, float]:
    """(whole CLI run, the batch engine's own duration from the ledger) in seconds."""
    env = fresh_env(root, credits=n * 10)
    out = root / f"out-{concurrency}-{time.time()}"
    wall, done = run_cli(generate_args(photos, url, out, concurrency), env)
    if done.returncode != 0:
        raise SystemExit(f"batch failed: {done.stderr}")
    import sqlite3

    with sqlite3.connect(Path(env["AVATARGEN_HOME"]) / "data" / "ledger.db") as db:
        summary = json.loads(db.execute("SELECT summary FROM batches ORDER BY created_at DESC").fetchone()[0])
    assert summary["done"] == n, summary
    return wall, summary["duration_s"]


def sequential_loop(url: str, n: int) -> float:
    """The seed's approach: one request after the other, waiting for each."""
    import httpx

    pose = base64.b64encode(b"\x89PNG fake").decode()
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            body = {
                "inputs": {
                    "prompt": "p",
                    "negative_prompt": "",
                    "image": pose,
                    "num_inference_steps": 30,
                    "guidance_scale": 7.5,
                    "controlnet_conditioning_scale": 1.0,
                    "width": 512,
                    "height": 512,
                    "seed": i,
                }
            }
            client.post(url, json=body, headers={"Accept": "image/png"}).raise_for_status()
    return time.perf_counter() - started


def peak_rss_mb(root: Path, n: int, url: str, concurrency: int) -> float:
    photos = root / f"mem-{n}"
    make_photos(photos, n)
    env = fresh_env(root, credits=n * 10)
    code = (
        "import resource, sys, runpy\n"
        "sys.argv = ['avatargen'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('avatargen', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    args = generate_args(photos, url, root / f"mem-out-{n}", concurrency)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
    if done.returncode != 0 or not peak:
        raise SystemExit(f"memory batch failed: {done.stderr[-2000:]}")
    return int(peak[-1].split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--loading", type=float, default=4.0)
    parser.add_argument("--poll", type=float, default=1.0, help="estimated_time the loading server announces")
    parser.add_argument("--memory-n", type=int, nargs=2, default=[1000, 5000])
    parser.add_argument("--only", type=int, nargs="*", default=[1, 2, 3, 4], help="which measurements")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = root / "photos"
        make_photos(photos, args.n)

        if 1 in args.only or 2 in args.only:
            measure_throughput(root, photos, args)
        if 3 in args.only:
            measure_loading(root, args)
        if 4 in args.only:
            with FakeEndpoint() as fake:
                small, large = (peak_rss_mb(root, n, fake.url, args.concurrency) for n in args.memory_n)
            print(
                f"[4] peak RSS: N={args.memory_n[0]}: {small:.0f} MB, N={args.memory_n[1]}: {large:.0f} MB "
                f"-> ratio {large / small:.2f} (target flat, < 200 MB)"
            )


def measure_throughput(root: Path, photos: Path, args) -> None:
    with FakeEndpoint(delay=args.delay) as fake:
        wall, measured = batch_wall_time(root, photos, fake.url, args.concurrency, args.n)
        sequential = sequential_loop(fake.url, args.n) if 2 in args.only else None
    ideal = args.n * args.delay / args.concurrency
    print(
        f"[1] N={args.n} delay={args.delay}s concurrency={args.concurrency}: ideal {ideal:.2f}s, "
        f"batch engine {measured:.2f}s -> efficiency {ideal / measured:.2f} (target >= 0.9); "
        f"whole CLI run {wall:.2f}s -> {ideal / wall:.2f}",
        flush=True,
    )
    if sequential is not None:
        print(
            f"[2] one-at-a-time loop, same calls: {sequential:.2f}s -> speedup {sequential / wall:.1f}x "
            f"(whole CLI run)",
            flush=True,
        )


def measure_loading(root: Path, args) -> None:
    photos = root / "loading"
    make_photos(photos, args.concurrency * 4)
    with FakeEndpoint(delay=args.delay, loading_for=args.loading, estimated_time=args.poll) as fake:
        env = fresh_env(root)
        cmd = generate_args(photos, fake.url, root / "lo", args.concurrency)
        _, done = run_cli(cmd, env)
        if done.returncode != 0:
            raise SystemExit(f"loading batch failed: {done.stderr}")
        during = [r for r in fake.requests if r["time"] < fake.loading_until]
    target = args.concurrency + args.loading / args.poll
    print(
        f"[3] model loading for {args.loading}s (announcing estimated_time {args.poll}s): {len(during)} requests "
        f"sent while loading (target <= {target:.0f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
