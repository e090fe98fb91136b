"""Memory of `avatargen serve --tiny` under hostile requests (issue "Hardening", item 10).

Starts the server on 127.0.0.1, waits until the tiny model is loaded, reads its RSS (the
baseline), then sends eight hostile requests at once (tests/serve_hostile_bodies.py: a 23 KB PNG
of 12000x12000 pixels as pose or photo in four shapes, 20k-deep and million-object JSON, NaN and
1e309, a 100k-character prompt) and reports the peak RSS meanwhile (VmHWM, reset before the attack
where the kernel allows it, else sampled every 5 ms), the margin, and what each request got.

Usage: python bench/serve_hostile.py [--queue 8] [--rounds 1]
       (--queue 8 lets all eight in; the default 4 turns half away with 429 before reading them)
Linux only (reads /proc). Builds the tiny models on first use (a few seconds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from serve_fixtures import pose_png, start_tiny_server, wait_until_ready  # noqa: E402
from serve_hostile_bodies import attack, b64, hostile_bodies  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=8, help="the server's --queue (default 8)")
    parser.add_argument("--rounds", type=int, default=1, help="attacks in a row (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="avatargen-bench-") as tmp:
        import os

        os.environ["AVATARGEN_HOME"] = str(Path(tmp) / "home")
        os.environ["HF_HUB_OFFLINE"] = "1"
        server = start_tiny_server(Path(tmp), "--queue", str(args.queue), min_load_s=0, timeout=300)
        try:
            wait_until_ready(server.url, timeout=300)
            bodies = hostile_bodies(b64(pose_png(512, 512)))
            print(f"server pid {server.process.pid}, --queue {args.queue}, {len(bodies)} requests at once")
            for round_no in range(1, args.rounds + 1):
                result = attack(server.url, server.process.pid, bodies)
                baseline, peak = result["baseline_kb"] / 1024, result["peak_kb"] / 1024
                how = "VmHWM" if result["exact_peak"] else "sampled"
                print(
                    f"round {round_no}: baseline RSS after load {baseline:.0f} MB, "
                    f"peak under attack {peak:.0f} MB ({how}), margin {peak - baseline:+.0f} MB"
                )
                for name, status, content_type, text in result["answers"]:
                    print(f"  {status} {content_type:<17} {name}: {text[:90]}")
            alive = server.process.poll() is None
            print("server still running" if alive else f"server DIED (exit {server.process.returncode})")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
