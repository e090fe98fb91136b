"""Batch engine benchmarks against a loopback endpoint (issue 15), printed as ratios measured side by
side in one run. The fake endpoint runs in a process of its own, checks each request's JSON and answers
512x512 PNGs (made once, with the entropy of a real picture); the photos are real JPEGs (made once per
run, each file made distinct by a JPEG comment so every photo is its own job).

  [1] throughput: N photos at concurrency 4, answers at once: client CPU per image (goal <= 8 ms) and
      wall time against a bare httpx thread pool sending the same request bytes (the photo fitted to
      the model's size as JPEG, the same pose PNG) and writing the answers (goal within 2x)
  [2] scale: per-image wall time at N1 vs N2 photos (goal within 1.2x)
  [3] history: a batch after H past jobs in the ledger vs a fresh ledger, per image (goal within 1.1x)
  [4] efficiency: ideal (N x delay / concurrency) / whole CLI run, at concurrency 1, 4, 8, 16 with a
      0.2 s delay (goal >= 0.90 at 16); a bare thread pool at 16 beside it
  [5] loading: requests sent while the model loads (goal <= concurrency + loading / poll)
  [6] memory: peak RSS of a batch at concurrency 1 and 16 (per worker)
  [7] span: 80 photos at concurrency 8, 0.2 s answers: efficiency over the requests' span as the
      endpoint saw it (goal >= 0.90) and client CPU per image (goal <= 8 ms), each beside a bare pool

Usage: python bench/batch.py [--quick] [--only throughput scale history efficiency loading memory span]
Which code runs is whatever `python -m avatargen` imports: PYTHONPATH=/other/tree/src measures another.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

ANSWER_SIZE = 512
PHOTO_SIZE = (768, 1024)  # a phone photo, scaled down; --photo-size changes it
MODEL = "controlnet-openpose-sd15"  # 512x512
# The photo travels as the init image (img2img), as the bare pool sends it. Identity is off: its
# face crop (MediaPipe, once per photo) is model-side work issue 15 does not count, and these
# synthetic photos have no face to crop.
ENGINE_OPTIONS = ["--strength", "0.75", "--identity-scale", "0"]


# ------------------------------------------------------------------ inputs and the fake endpoint
def picture(size: tuple[int, int], seed: int) -> object:
    """A picture with a real image's entropy: smooth shapes plus sensor-like noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(24):
        x0, y0 = rng.integers(0, size[0]), rng.integers(0, size[1])
        x1, y1 = x0 + rng.integers(20, size[0] // 2), y0 + rng.integers(20, size[1] // 2)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img = img.filter(ImageFilter.GaussianBlur(3))
    noise = rng.normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def encoded(img, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


class Photos:
    """Distinct JPEG files: a few real encodings, each copy given its own comment segment."""

    def __init__(self, root: Path, size: tuple[int, int]) -> None:
        self.root = root
        self.bases = [encoded(picture(size, seed), "JPEG", quality=90) for seed in range(4)]
        self.made = 0

    def folder(self, name: str, count: int) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True)
        for i in range(count):
            self.made += 1
            base = self.bases[i % len(self.bases)]
            note = f"photo {self.made}".encode()
            comment = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
            (folder / f"p{i:06d}.jpg").write_bytes(base[:2] + comment + base[2:])
        return folder


SERVER = """
import base64, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
answers = [bytes.fromhex(line) for line in sys.stdin.read().split()]
delay = float(sys.argv[1]); loading_until = time.monotonic() + float(sys.argv[2]); poll = float(sys.argv[3])
lock = threading.Lock(); loading_posts = [0]; span = [None, None]  # first request in, last answer out
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def send(self, code, body, kind):
        self.send_response(code); self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/loading-posts":
            return self.send(200, str(loading_posts[0]).encode(), "text/plain")
        if self.path == "/span":
            with lock: body = json.dumps(span).encode(); span[:] = [None, None]
            return self.send(200, body, "application/json")
        if time.monotonic() < loading_until:
            return self.send(503, json.dumps({"estimated_time": poll}).encode(), "application/json")
        self.send(200, b"Ok", "text/plain")
    def do_POST(self):
        began = time.monotonic()
        with lock:
            if span[0] is None: span[0] = began
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if time.monotonic() < loading_until:
            with lock: loading_posts[0] += 1
            return self.send(503, json.dumps({"estimated_time": poll}).encode(), "application/json")
        try:
            inputs = json.loads(raw)["inputs"]
            seed = int(inputs["seed"]); inputs["image"][:16]; inputs["prompt"]
        except (ValueError, KeyError, TypeError) as exc:
            return self.send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
        if delay: time.sleep(delay)
        self.send(200, answers[seed % len(answers)], "image/png")
        with lock: span[1] = time.monotonic()
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 128
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Endpoint:
    """The fake endpoint in its own process: its CPU is not the client's."""

    answers: list[bytes] = []

    def __init__(self, delay: float = 0.0, loading: float = 0.0, poll: float = 1.0) -> None:
        if not Endpoint.answers:
            Endpoint.answers = [
                encoded(picture((ANSWER_SIZE, ANSWER_SIZE), 100 + i), "PNG") for i in range(4)
            ]
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(delay), str(loading), str(poll)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write("\n".join(a.hex() for a in Endpoint.answers))
        self.process.stdin.close()
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}/"

    def loading_posts(self) -> int:
        import httpx

        return int(httpx.get(self.url + "loading-posts").text)

    def span(self) -> float:
        """Seconds from the first request received to the last answer sent since the last call."""
        import httpx

        first, last = httpx.get(self.url + "span").json()
        return last - first

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait()


# ------------------------------------------------------------------ running the CLI
def fresh_home(root: Path, credits: int) -> dict:
    home = Path(tempfile.mkdtemp(dir=root))
    env = {**os.environ, "AVATARGEN_HOME": str(home), "AVATARGEN_RETRY_SCALE": "0.01"}
    env.pop("HF_TOKEN", None)
    add = [sys.executable, "-m", "avatargen", "credits", "add", str(credits)]
    subprocess.run(add, env=env, check=True, capture_output=True)
    return env


def run_batch(env: dict, photos: Path, url: str, out: Path, concurrency: int, expect: int) -> dict:
    """One `generate` run: wall and CPU seconds of the CLI process, the engine's own duration."""
    args = ["generate", str(photos), "--endpoint", url, "-o", str(out), "--model", MODEL, *ENGINE_OPTIONS,
            "--concurrency", str(concurrency), "--yes", "--json"]  # fmt: skip
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "avatargen", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"batch failed ({done.returncode}): {done.stderr[-2000:]}")
    with sqlite3.connect(Path(env["AVATARGEN_HOME"]) / "data" / "ledger.db") as db:
        summary = json.loads(db.execute("SELECT summary FROM batches ORDER BY created_at DESC").fetchone()[0])
    assert summary["done"] == expect, summary
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"wall": wall, "cpu": cpu, "engine": summary["duration_s"], "peak_mb": cpu_after.ru_maxrss / 1024}


FILL_HISTORY = """
import sys
from avatargen.ledger import open_ledger
n = int(sys.argv[1]); ledger = open_ledger()
ledger.grant(n * 3)
params = {"pose_spec": "wave", "prompt": "p", "negative_prompt": "", "steps": 30, "guidance_scale": 7.5,
          "controlnet_conditioning_scale": 1.0, "width": 512, "height": 512, "strength": 0.75}
for i in range(n):
    key = f"past-{i:08d}"
    ledger.enqueue({"job_key": key, "input_path": f"/old/p{i}.jpg", "input_hash": key, "pose": "wave",
                    "model": "avatar-generator:controlnet-openpose-sd15", "params": params, "seed": i,
                    "output_path": f"/old/out/p{i}.png"}, "past-batch")
    ledger.reserve(key, "avatar-generator:controlnet-openpose-sd15", 3, "past-batch")
    ledger.count_request("avatar-generator:controlnet-openpose-sd15")
    ledger.mark_done(key, "avatar-generator:controlnet-openpose-sd15", 1, 0.1)
"""


# ------------------------------------------------------------------ the bare thread pool
def engine_request_parts() -> tuple[str, dict]:
    """What the engine sends besides the photo, made once outside any timing: its pose image
    (the default pose rendered at the model's size, base64) and its prompt and settings."""
    from avatargen.catalog import load_catalog
    from avatargen.images import png_bytes
    from avatargen.poses.sources import resolve_pose

    model = load_catalog().lookup(MODEL)
    pose = png_bytes(resolve_pose("portrait").image(*model.size))
    settings = {"prompt": model.prompt, "negative_prompt": model.negative_prompt, "strength": 0.75,
                "num_inference_steps": model.steps, "guidance_scale": model.guidance_scale,
                "controlnet_conditioning_scale": model.controlnet_conditioning_scale,
                "width": model.size[0], "height": model.size[1]}  # fmt: skip
    return base64.b64encode(pose).decode(), settings


def bare_pool(photos: Path, url: str, out: Path, concurrency: int) -> dict:
    """What a minimal client does for the same requests: read each photo, fit it to the model's
    size (the box filter, shrinking) as JPEG q95 as the engine does, or send the file as it is when
    it is a JPEG at that size already (the engine sends its data, metadata cut out), post it with the
    pose as base64 JSON, write the answer's bytes. Runs in this process; CPU is this process's."""
    import httpx
    from PIL import Image, ImageOps

    pose, settings = engine_request_parts()
    size = (settings["width"], settings["height"])
    out.mkdir(parents=True)
    files = sorted(photos.iterdir())
    cpu0, started = time.process_time(), time.perf_counter()
    with httpx.Client(timeout=60) as client:

        def one(i_path):
            i, path = i_path
            with Image.open(path) as img:
                if img.size == size and img.format == "JPEG":
                    init = path.read_bytes()
                else:
                    init = encoded(
                        ImageOps.fit(img.convert("RGB"), size, Image.Resampling.BOX), "JPEG", quality=95
                    )
            body = {
                "inputs": {
                    **settings,
                    "image": pose,
                    "init_image": base64.b64encode(init).decode(),
                    "seed": i,
                }
            }
            response = client.post(url, json=body, headers={"Accept": "image/png"})
            response.raise_for_status()
            (out / f"{path.stem}.png").write_bytes(response.content)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, enumerate(files)))
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu0}


# ------------------------------------------------------------------ the measurements
def throughput(root: Path, photos: Photos, n: int) -> None:
    folder = photos.folder("tp", n)
    with Endpoint() as fake:
        ours = run_batch(fresh_home(root, n * 3), folder, fake.url, root / "tp-out", 4, n)
        bare = bare_pool(folder, fake.url, root / "tp-bare", 4)
    print(
        f"[1] throughput, N={n} photos, concurrency 4, instant 512x512 answers: "
        f"client CPU {ours['cpu'] / n * 1000:.1f} ms/image (goal <= 8; bare pool {bare['cpu'] / n * 1000:.1f}) "
        f"-> {ours['cpu'] / bare['cpu']:.1f}x CPU; wall {ours['wall']:.1f}s vs bare {bare['wall']:.1f}s "
        f"-> {ours['wall'] / bare['wall']:.2f}x (goal <= 2)",
        flush=True,
    )


def scale(root: Path, photos: Photos, small: int, large: int) -> None:
    per_image = {}
    with Endpoint() as fake:
        for n in (small, large):
            folder = photos.folder(f"scale-{n}", n)
            result = run_batch(fresh_home(root, n * 3), folder, fake.url, root / f"scale-out-{n}", 4, n)
            per_image[n] = result["wall"] / n
    print(
        f"[2] scale, concurrency 4: {per_image[small] * 1000:.1f} ms/image at N={small}, "
        f"{per_image[large] * 1000:.1f} ms/image at N={large} -> {per_image[large] / per_image[small]:.2f}x "
        f"(goal <= 1.2)",
        flush=True,
    )


def history(root: Path, photos: Photos, n: int, past: int, repeats: int = 1) -> None:
    """Fresh and filled ledgers run alternately, each pair on its own copy of both ledgers, so
    neither always runs right after the fill (the disk still writing 25 MB back) or always second."""
    import shutil

    fresh_env, old_env = fresh_home(root, n * 3 * repeats), fresh_home(root, n * 3 * repeats)
    filled = subprocess.run(
        [sys.executable, "-c", FILL_HISTORY, str(past)], env=old_env, capture_output=True, text=True
    )
    if filled.returncode != 0:
        raise SystemExit(f"filling the ledger failed: {filled.stderr[-2000:]}")
    ratios, per_image = [], []
    with Endpoint() as fake:
        for r in range(repeats):
            folder = photos.folder(f"hist-{r}", n)
            pair = {}
            for name, env in (("fresh", fresh_env), ("old", old_env))[:: 1 if r % 2 == 0 else -1]:
                home = Path(tempfile.mkdtemp(dir=root)) / "home"
                shutil.copytree(env["AVATARGEN_HOME"], home)
                pair[name] = run_batch({**env, "AVATARGEN_HOME": str(home)}, folder, fake.url,
                                       root / f"hist-{name}-{r}", 4, n)["wall"] / n  # fmt: skip
            ratios.append(pair["old"] / pair["fresh"])
            per_image.append(f"{pair['fresh'] * 1000:.1f}/{pair['old'] * 1000:.1f}")
    print(
        f"[3] ledger history, N={n} photos, concurrency 4: fresh/after {past} past jobs ms/image "
        f"{', '.join(per_image)} -> {', '.join(f'{x:.2f}x' for x in ratios)} (goal <= 1.1)",
        flush=True,
    )


def efficiency(root: Path, photos: Photos, delay: float, per_worker: int, levels: list[int]) -> None:
    rows = []
    with Endpoint(delay=delay) as fake:
        for c in levels:
            n = per_worker * c
            folder = photos.folder(f"eff-{c}", n)
            result = run_batch(fresh_home(root, n * 3), folder, fake.url, root / f"eff-out-{c}", c, n)
            ideal = n * delay / c
            rows.append(f"c{c} {ideal / result['wall']:.2f} (engine {ideal / result['engine']:.2f})")
        c = levels[-1]
        folder = photos.folder("eff-bare", per_worker * c)
        bare = bare_pool(folder, fake.url, root / "eff-bare-out", c)
    print(
        f"[4] whole-run efficiency, delay {delay}s, N={per_worker} x concurrency: {', '.join(rows)}; "
        f"bare thread pool at c{c} {per_worker * c * delay / c / bare['wall']:.2f} (goal >= 0.90 at c16)",
        flush=True,
    )


def span(root: Path, photos: Photos, delay: float, n: int, concurrency: int, repeats: int) -> None:
    """Efficiency over the requests' span (first request in to last answer out, as the endpoint saw
    them: start-up and planning excluded) and client CPU per image, ours beside a bare pool, run
    alternately `repeats` times."""
    ideal = n * delay / concurrency
    rows = []
    with Endpoint(delay=delay) as fake:
        for r in range(repeats):
            folder = photos.folder(f"span-{r}", n)
            ours = run_batch(
                fresh_home(root, n * 3), folder, fake.url, root / f"span-out-{r}", concurrency, n
            )
            ours_span = fake.span()
            bare = bare_pool(folder, fake.url, root / f"span-bare-{r}", concurrency)
            bare_span = fake.span()
            rows.append(
                (ideal / ours_span, ideal / bare_span, ours["cpu"] / n * 1000, bare["cpu"] / n * 1000)
            )
    eff = ", ".join(f"{o:.2f}" for o, _, _, _ in rows)
    bare_eff = ", ".join(f"{b:.2f}" for _, b, _, _ in rows)
    cpu = ", ".join(f"{c:.1f}" for _, _, c, _ in rows)
    bare_cpu = ", ".join(f"{c:.1f}" for _, _, _, c in rows)
    print(
        f"[7] span, N={n} photos, concurrency {concurrency}, {delay}s answers: efficiency over the requests' "
        f"span {eff} (goal >= 0.90; bare pool {bare_eff}); client CPU {cpu} ms/image (goal <= 8; "
        f"bare pool {bare_cpu})",
        flush=True,
    )


def loading(root: Path, photos: Photos, seconds: float, poll: float, concurrency: int) -> None:
    n = concurrency * 4
    folder = photos.folder("loading", n)
    with Endpoint(delay=0.05, loading=seconds, poll=poll) as fake:
        run_batch(fresh_home(root, n * 3), folder, fake.url, root / "lo", concurrency, n)
        sent = fake.loading_posts()
    print(
        f"[5] model loading for {seconds}s (estimated_time {poll}s), concurrency {concurrency}: {sent} requests "
        f"sent while loading (goal <= {concurrency + seconds / poll:.0f})",
        flush=True,
    )


def memory(root: Path, photos: Photos, n: int) -> None:
    peaks = {}
    with Endpoint(delay=0.05) as fake:
        for c in (1, 16):
            folder = photos.folder(f"mem-{c}", n)
            code = (
                "import resource, sys, runpy\nsys.argv = ['avatargen'] + sys.argv[1:]\n"
                "try:\n    runpy.run_module('avatargen', run_name='__main__')\n"
                "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
                "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
                "sys.exit(code)\n"
            )
            env = fresh_home(root, n * 3)
            args = ["generate", str(folder), "--endpoint", fake.url, "-o", str(root / f"mem-out-{c}"),
                    "--model", MODEL, *ENGINE_OPTIONS, "--concurrency", str(c), "--yes", "--json"]  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
            )
            peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KB")]
            if done.returncode != 0 or not peak:
                raise SystemExit(f"memory batch failed: {done.stderr[-2000:]}")
            peaks[c] = int(peak[-1].split()[1]) / 1024
    print(
        f"[6] peak RSS, N={n}: {peaks[1]:.0f} MB at c1, {peaks[16]:.0f} MB at c16 "
        f"-> {(peaks[16] - peaks[1]) / 15:.2f} MB per extra worker",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small N for dev runs (the N is printed)")
    parser.add_argument("--n", type=int, help="[1] photos (default 5000, quick 500)")
    parser.add_argument("--scale-n", type=int, nargs=2, help="[2] N1 N2 (default 1000 20000, quick 200 2000)")
    parser.add_argument(
        "--history", type=int, nargs=2, help="[3] N past (default 1000 20000, quick 200 2000)"
    )
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument(
        "--per-worker", type=int, help="[4] photos per unit of concurrency (default 40, quick 15)"
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--photo-size", type=int, nargs=2, default=list(PHOTO_SIZE))
    parser.add_argument(
        "--only",
        nargs="+",
        default=["throughput", "scale", "history", "efficiency"],
        choices=["throughput", "scale", "history", "efficiency", "loading", "memory", "span"],
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="[3] [7] alternate runs (fresh/old ledger; ours/bare pool)"
    )
    args = parser.parse_args()
    quick = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = Photos(root, tuple(args.photo_size))
        print(f"photos {args.photo_size[0]}x{args.photo_size[1]} JPEG, answers {ANSWER_SIZE}x{ANSWER_SIZE} PNG "
              f"({len(Endpoint.answers) or 4} distinct, ~{len(photos.bases[0]) // 1024} KB photo)", flush=True)  # fmt: skip
        if "throughput" in args.only:
            throughput(root, photos, args.n or (500 if quick else 5000))
        if "scale" in args.only:
            scale(root, photos, *(args.scale_n or ((200, 2000) if quick else (1000, 20000))))
        if "history" in args.only:
            history(root, photos, *(args.history or ((200, 2000) if quick else (1000, 20000))), args.repeats)
        if "efficiency" in args.only:
            efficiency(root, photos, args.delay, args.per_worker or (15 if quick else 40), args.levels)
        if "span" in args.only:
            span(root, photos, args.delay, 80, 8, args.repeats)
        if "loading" in args.only:
            loading(root, photos, 4.0, 1.0, 8)
        if "memory" in args.only:
            memory(root, photos, 100 if quick else 400)


if __name__ == "__main__":
    main()
