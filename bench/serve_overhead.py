"""What `avatargen serve` costs beyond the model (issue 15, findings 1 and 2), side by side in one run.

Starts `avatargen serve --tiny` on 127.0.0.1, loads the same tiny model in this process, and prints:
  (a) concurrency 1: the HTTP round trip of one 64x64, 2-step image against the direct pipeline
      call (generate + PNG encoding) in this process, interleaved, medians; goal <= 1.15x
  (b) throughput (images/s) with 4 clients at once against 1 client, in rounds of 1 then 4 (the
      first 1-client figure is before any concurrent request); goal >= 1.0. This checkout is
      served twice, with micro-batching off (--max-batch 1) and on (--max-batch N), measured in
      turns, so c4/c1 with and without it stand side by side
  (c) the median latency of GET /health on one keep-alive connection (Nagle + delayed ACK make
      it ~40 ms when TCP_NODELAY is missing)

Usage: python bench/serve_overhead.py [--images 12] [--rounds 3] [--health 50] [--size 64] [--steps 2]
       [--max-batch 4]
       python bench/serve_overhead.py --against /tmp/main/src   # a second server from another
       checkout, measured in turns with this one (the machine's noise hits both alike)
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


def interleaved(steps: dict[str, object], rounds: int) -> dict[str, list[float]]:
    """Seconds of each step, taking turns, with a pause before each (see SETTLE_S)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="images per measurement (default 12)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="throughput rounds, 1 then 4 clients (default 3)"
    )
    parser.add_argument("--health", type=int, default=50, help="GET /health requests (default 50)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=4, help="the batching server's --max-batch")
    parser.add_argument(
        "--against", metavar="SRC", help="also serve from this src folder (e.g. main's), measured in turns"
    )
    args = parser.parse_args()

    import httpx

    import avatargen

    # The direct call as the local backend makes it (idle OpenMP threads sleep: libgomp reads this
    # when torch loads); each server sees the environment as it was, so it decides for itself.
    policy = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = policy or "PASSIVE"
    import torch  # noqa: F401

    if policy is None:
        del os.environ["OMP_WAIT_POLICY"]

    with tempfile.TemporaryDirectory(prefix="avatargen-bench-") as tmp:
        os.environ["AVATARGEN_HOME"] = str(Path(tmp) / "home")
        os.environ["HF_HUB_OFFLINE"] = "1"
        this = str(Path(avatargen.__file__).parent.parent)
        # name -> (src folder, serve arguments)
        sources = {
            "batch off": (this, ["--max-batch", "1"]),
            f"batch {args.max_batch}": (this, ["--max-batch", str(args.max_batch)]),
        }
        if args.against:
            sources["against"] = (str(Path(args.against).resolve()), [])
        servers = {}
        try:
            for name, (src, serve_args) in sources.items():  # in turn: the first builds the tiny models
                servers[name] = start_tiny_server(
                    Path(tmp), *serve_args, min_load_s=0, timeout=300, env={"PYTHONPATH": src}
                )
                wait_until_ready(servers[name].url, timeout=300)
            from avatargen.serve.pipelines import parse_request, png_bytes

            service = direct_service()
            payload = request_body(args.size, args.size, args.steps)
            body = json.dumps(payload).encode()
            params = parse_request(payload, service.spec)
            print(f"{os.cpu_count()} CPUs; {args.size}x{args.size}, {args.steps} steps, tiny sd15")
            for name, (src, serve_args) in sources.items():
                print(f"  {name}: serve {' '.join(serve_args)} from {src}")

            clients = {name: httpx.Client(base_url=s.url, timeout=300) for name, s in servers.items()}
            steps = {"direct": lambda: png_bytes(service.generate(params))}
            steps.update({name: (lambda c=c: post(c, body)) for name, c in clients.items()})
            interleaved(steps, 2)  # warm-up
            times = interleaved(steps, args.images)
            direct = statistics.median(times["direct"])
            print(
                f"(a) concurrency 1, direct pipeline call {direct * 1000:.1f} ms "
                f"(OMP_WAIT_POLICY={policy or 'PASSIVE'}); HTTP round trip:"
            )
            for name in servers:
                http = statistics.median(times[name])
                print(
                    f"    {name}: {http * 1000:.1f} ms, {http / direct:.2f}x the direct call (goal <= 1.15x)"
                )

            health = {name: [] for name in servers}
            for _ in range(args.health):
                for name, client in clients.items():
                    start = time.perf_counter()
                    client.get("/health").raise_for_status()
                    health[name].append(time.perf_counter() - start)
            for client in clients.values():
                client.close()

            rates: dict[str, dict[str, list[float]]] = {name: {"1": [], "4": []} for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    for clients_at_once in (1, 4):
                        time.sleep(SETTLE_S)
                        rate = throughput(server.url, body, args.images, clients_at_once)
                        rates[name][str(clients_at_once)].append(rate)
            print(f"(b) throughput, {args.rounds} rounds of {args.images} images with 1 then 4 clients:")
            for name in servers:
                one, four = rates[name]["1"], rates[name]["4"]
                print(
                    f"    {name}: 1 client {statistics.median(one):.2f} img/s (first {one[0]:.2f}), "
                    f"4 clients {statistics.median(four):.2f} img/s: "
                    f"{statistics.median(four) / statistics.median(one):.2f}x (goal >= 1.0)"
                )
            off, on = "batch off", f"batch {args.max_batch}"
            print(
                f"    4 clients, batch {args.max_batch} / batch off: "
                f"{statistics.median(rates[on]['4']) / statistics.median(rates[off]['4']):.2f}x; "
                f"1 client: {statistics.median(rates[on]['1']) / statistics.median(rates[off]['1']):.2f}x"
            )
            print(f"(c) GET /health, median of {args.health} on one keep-alive connection:")
            for name in servers:
                print(f"    {name}: {statistics.median(health[name]) * 1000:.2f} ms")
        finally:
            for server in servers.values():
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
