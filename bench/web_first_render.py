"""First render of the web page (issue 22: under 300 ms on the dev machine), measured with the
browser's own Performance API in Debian's headless Chromium.

The page is served by the real `avatargen api` (a fake endpoint behind it) and loaded N times
in one browser with its cache disabled (each load is a first visit); for each load the
first-contentful-paint, DOMContentLoaded and load times from navigation start are read from
`performance`, and their median, min and max printed in milliseconds, with the bytes the page
took (HTML, CSS, JS; there are no images on the sign-in screen).

Usage: python bench/web_first_render.py [--runs 15] [--width 1280]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from web_browser import TIMINGS_JS, start_chromium  # noqa: E402
from web_service import WebService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        service = WebService(Path(tmp) / "data").start()
        driver = start_chromium(width=args.width)
        try:
            driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
            driver.get(service.url)  # the browser's own start-up is not the page's
            rows = []
            for _ in range(args.runs):
                driver.get("about:blank")
                driver.get(service.url)
                rows.append(driver.execute_script(TIMINGS_JS))
        finally:
            driver.quit()
            service.stop()
    weight = rows[-1]["documentSize"] + sum(r["size"] for r in rows[-1]["resources"])
    print(f"{args.runs} loads of {service.url} at {args.width} px, cache disabled; {weight} bytes")
    for key, label in (
        ("fcp", "first-contentful-paint"),
        ("domContentLoaded", "DOMContentLoaded"),
        ("load", "load"),
    ):
        values = [r[key] for r in rows if r[key] is not None]
        print(
            f"  {label:24} median {statistics.median(values):6.1f} ms"
            f"  min {min(values):6.1f}  max {max(values):6.1f}"
        )


if __name__ == "__main__":
    main()
