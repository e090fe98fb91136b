"""What `avatargen serve` costs beyond the model (issue 15, findings 1 and 2), side by side in one run.

Starts `avatargen serve --tiny` on 127.0.0.1, loads the same tiny model in this process, and prints:
  (a) concurrency 1: the HTTP round trip of one 64x64, 2-step image against the direct pipeline
      call (generate + PNG encoding) in this process, interleaved, medians; goal <= 1.15x
  (b) throughput (images/s) with 4 clients at once against 1 client, measured 1, 4, then 1 again
      (the second 1 shows whether concurrent requests left the server slower); goal >= 1.0
  (c) the median latency of GET /health on one keep-alive connection (Nagle + delayed ACK make
      it ~40 ms when TCP_NODELAY is missing)

Usage: python bench/serve_overhead.py [--images 12] [--health 50] [--size 64] [--steps 2]
To compare with another checkout: PYTHONPATH=/path/to/other/src python bench/serve_overhead.py
Builds the tiny models on first use (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from serve_fixtures import request_body, start_tiny_server, wait_until_ready  # noqa: E402

MODEL = "controlnet-openpose-sd15"
# A pause before each timed call of (a): the other process's OpenMP threads stop spinning, so
# neither side is timed while the other still burns the two cores.
SETTLE_S = 0.2


def direct_service():
    """The tiny model loaded in this process, as the local backend loads it."""
    from avatargen.catalog import load_catalog
    from avatargen.serve.pipelines import ControlNetService
    from avatargen.serve.resolve import model_source

    spec, folder = model_source(load_catalog().lookup(MODEL), tiny=True)
    service = ControlNetService(spec, source=folder)
    service.load()
    return service


def post(client, body: bytes) -> None:
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    if response.status_code != 200 or not response.content.startswith(b"\x89PNG"):
        raise RuntimeError(f"the server answered {response.status_code}: {response.text[:200]}")


def throughput(url: str, body: bytes, images: int, clients: int) -> float:
    """Images per second with `clients` keep-alive connections sending `images` requests in all."""
    import httpx

    left = list(range(images))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            while True:
                with lock:
                    if not left:
                        return
                    left.pop()
                try:
                    post(client, body)
                except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return images / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="images per measurement (default 12)")
    parser.add_argument("--health", type=int, default=50, help="GET /health requests (default 50)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import httpx

    import avatargen

    with tempfile.TemporaryDirectory(prefix="avatargen-bench-") as tmp:
        os.environ["AVATARGEN_HOME"] = str(Path(tmp) / "home")
        os.environ["HF_HUB_OFFLINE"] = "1"
        server = start_tiny_server(Path(tmp), min_load_s=0, timeout=300)
        try:
            wait_until_ready(server.url, timeout=300)
            from avatargen.serve.pipelines import parse_request, png_bytes

            service = direct_service()
            payload = request_body(args.size, args.size, args.steps)
            body = json.dumps(payload).encode()
            params = parse_request(payload, service.spec)
            print(
                f"avatargen from {Path(avatargen.__file__).parent}; {os.cpu_count()} CPUs; "
                f"{args.size}x{args.size}, {args.steps} steps, tiny sd15"
            )

            # (a) interleaved, one at a time
            direct: list[float] = []
            http: list[float] = []
            with httpx.Client(base_url=server.url, timeout=300) as client:
                for _ in range(2):  # warm-up both sides
                    png_bytes(service.generate(params))
                    post(client, body)
                for _ in range(args.images):
                    time.sleep(SETTLE_S)
                    start = time.perf_counter()
                    png_bytes(service.generate(params))
                    direct.append(time.perf_counter() - start)
                    time.sleep(SETTLE_S)
                    start = time.perf_counter()
                    post(client, body)
                    http.append(time.perf_counter() - start)
                d, h = statistics.median(direct), statistics.median(http)
                print(
                    f"(a) concurrency 1: HTTP round trip {h * 1000:.1f} ms, direct call {d * 1000:.1f} ms: "
                    f"{h / d:.2f}x (goal <= 1.15x)"
                )

                # (c) /health on one keep-alive connection
                latencies = []
                for _ in range(args.health):
                    start = time.perf_counter()
                    client.get("/health").raise_for_status()
                    latencies.append(time.perf_counter() - start)
                health = statistics.median(latencies)

            # (b) throughput: 1, then 4 at once, then 1 again
            one = throughput(server.url, body, args.images, 1)
            four = throughput(server.url, body, args.images, 4)
            again = throughput(server.url, body, args.images, 1)
            print(
                f"(b) throughput: 1 client {one:.2f} img/s, 4 clients {four:.2f} img/s: "
                f"{four / one:.2f}x (goal >= 1.0); 1 client afterwards {again:.2f} img/s "
                f"({again / one:.2f}x the first)"
            )
            print(f"(c) GET /health median {health * 1000:.2f} ms over {args.health} keep-alive requests")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
