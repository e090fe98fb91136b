"""Headless Chromium for the web page's tests: Debian's chromium + chromedriver through Selenium.

The driver's path is always given (Service(executable_path=...)), so Selenium Manager never tries
to download one. Outside CI a machine without the browser skips the test; in CI (CI=true) that
fails, because .ci/setup-chromium.sh installs it.
"""

from __future__ import annotations

import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1] / "src" / "avatargen" / "service" / "web"


def _binary(variable: str, *names: str) -> str:
    value = os.environ.get(variable, "")
    if value and Path(value).exists():
        return value
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail(f"{variable}: no {names[0]} in CI; .ci/setup-chromium.sh should have installed it")
    pytest.skip(f"no {names[0]}: apt-get install chromium chromium-driver (or source .ci/setup-chromium.sh)")


def start_chromium(width: int = 1280, height: int = 900, downloads: Path | None = None):
    """A fresh headless Chromium with its own profile; the caller quits it."""
    chromium = _binary("AVATARGEN_CHROMIUM", "chromium", "chromium-browser")
    driver_path = _binary("AVATARGEN_CHROMEDRIVER", "chromedriver")
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # no calls to Google's hosts
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False,
                "safebrowsing.enabled": False,
            },
        )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_window_size(width, height)
    if downloads is not None:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
    return driver


class _StaticHandler(SimpleHTTPRequestHandler):
    """The page's files the way the service lays them out: / is index.html, /static/* the rest.
    Any other path is a 404 (there is no API behind this server: only the static parts are tested)."""

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0]
        if clean == "/":
            return str(WEB / "index.html")
        if clean.startswith("/static/") and "/" not in clean[len("/static/") :]:
            return str(WEB / clean[len("/static/") :])
        return str(WEB / "__missing__")

    def log_message(self, *args) -> None:
        pass


class StaticSite:
    """web/ served on 127.0.0.1 (a free port) from a daemon thread."""

    def __enter__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_StaticHandler, directory=str(WEB)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# Every control on the page with the name a screen reader would give it (label, aria-label,
# aria-labelledby or its own text); controls that have none come back with name "".
ACCESSIBLE_NAMES_JS = """
const out = [];
for (const el of document.querySelectorAll('input, select, textarea, button')) {
  let name = '';
  if (el.getAttribute('aria-label')) name = el.getAttribute('aria-label');
  else if (el.getAttribute('aria-labelledby')) name = el.getAttribute('aria-labelledby').split(' ')
      .map(id => document.getElementById(id)?.textContent || '').join(' ');
  else if (el.labels && el.labels.length) name = [...el.labels].map(l => l.textContent).join(' ');
  else if (el.tagName === 'BUTTON') name = el.textContent;
  out.push({id: el.id, tag: el.tagName, type: el.type, name: name.trim()});
}
return out;
"""

# First paint and the page's own timings, from the browser's Performance API.
TIMINGS_JS = """
const nav = performance.getEntriesByType('navigation')[0];
const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
const res = performance.getEntriesByType('resource').map(r => ({name: r.name, size: r.encodedBodySize, type: r.initiatorType}));
return {fcp: paint['first-contentful-paint'] ?? null, fp: paint['first-paint'] ?? null,
        domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
        documentSize: nav.encodedBodySize, resources: res};
"""
