"""Pose benchmarks (issue 3, item 7): render one template, extract one photo.

Prints the median of many runs, in milliseconds:
  1. render the `wave` template at 1024x1024 (Pillow, the training style)
  2. extract the pose from scikit-image's astronaut photo (MediaPipe, model_complexity=1),
     after one warm-up call (the first call also builds MediaPipe's graph; printed separately)

Usage: python bench/poses.py [--renders 50] [--extracts 20] [--template wave] [--size 1024x1024]
"""

from __future__ import annotations

import argparse
import statistics
import time


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renders", type=int, default=50)
    parser.add_argument("--extracts", type=int, default=20)
    parser.add_argument("--template", default="wave")
    parser.add_argument("--size", default="1024x1024")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from avatargen.poses.render import render_pose
    from avatargen.poses.templates import get_template

    pose = get_template(args.template).pose
    render_pose(pose, width, height)  # warm-up: imports, template load
    render = median_ms(lambda: render_pose(pose, width, height), args.renders)
    print(f"render {args.template} at {width}x{height}: {render:.2f} ms (median of {args.renders})")

    from PIL import Image
    from skimage import data

    from avatargen.poses.extract import extract_pose

    photo = Image.fromarray(data.astronaut())
    start = time.perf_counter()
    extract_pose(photo, "astronaut")
    first = (time.perf_counter() - start) * 1000
    extract = median_ms(lambda: extract_pose(photo, "astronaut"), args.extracts)
    print(
        f"extract astronaut 512x512: {extract:.1f} ms (median of {args.extracts}; first call {first:.0f} ms)"
    )


if __name__ == "__main__":
    main()
