"""The web page's static parts in a real headless Chromium (issue 22): weight, no external
resources, a label on every control, first render timing, sign-in by keyboard at 360 px.

Served by a plain static file server laid out like the service (/ and /static/); no API answers
here, so signing in meets a 404 and must say so. The full flows run against the real service in
tests/test_web_service_22.py."""

from __future__ import annotations

import re

import pytest

from web_browser import ACCESSIBLE_NAMES_JS, TIMINGS_JS, WEB, StaticSite, start_chromium

PAGE_FILES = sorted(p for p in WEB.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def site():
    with StaticSite() as s:
        yield s


@pytest.fixture
def browser():
    driver = start_chromium()
    yield driver
    driver.quit()


def test_page_is_three_plain_files_under_200_kb():
    names = {p.name for p in PAGE_FILES}
    assert {"index.html", "app.css", "app.js"} <= names
    total = sum(p.stat().st_size for p in PAGE_FILES)
    print(f"\npage weight before images: {total} bytes ({total / 1024:.1f} KiB) in {sorted(names)}")
    assert total < 200 * 1024


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_no_external_hosts_fonts_or_cdns(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), f"{path.name} names an external URL"
    assert not re.search(r"""(src|href)\s*=\s*["']//""", text), f"{path.name} loads a protocol-relative URL"
    assert "@import" not in text and "@font-face" not in text


def test_token_never_in_a_form_field_name_or_url():
    html = (WEB / "index.html").read_text(encoding="utf-8")
    token_input = re.search(r"<input id=\"token\"[^>]*>", html).group(0)
    assert "name=" not in token_input  # an unnamed field is never submitted with the form
    js = (WEB / "app.js").read_text(encoding="utf-8")
    assert "localStorage" not in js and "document.cookie" not in js
    assert "sessionStorage.setItem" in js


def test_first_render_and_weight_in_the_browser(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site.url)
    # The paint entries and the load event land a moment after get() returns on a busy machine.
    t = WebDriverWait(browser, 10).until(
        lambda d: (found := d.execute_script(TIMINGS_JS))["fcp"] is not None and found["load"] and found
    )
    weight = t["documentSize"] + sum(r["size"] for r in t["resources"])
    print(
        f"\nfirst-contentful-paint {t['fcp']:.1f} ms, first-paint {t['fp'] or 0:.1f} ms, "
        f"DOMContentLoaded {t['domContentLoaded']:.1f} ms, load {t['load']:.1f} ms, "
        f"{weight} bytes over the wire ({len(t['resources'])} resources)"
    )
    assert t["fcp"] is not None
    assert weight < 200 * 1024
    hosts = {r["name"].split("/")[2] for r in t["resources"]}
    assert hosts <= {site.url.split("/")[2]}  # nothing fetched from any other host


def test_every_control_has_a_name(site, browser):
    browser.get(site.url)
    controls = browser.execute_script(ACCESSIBLE_NAMES_JS)
    assert len(controls) > 15  # the studio's and the admin view's static controls are counted too
    unnamed = [c for c in controls if not c["name"]]
    assert unnamed == []


def test_sign_in_by_keyboard_at_360px_shows_the_error_and_keeps_the_token_out_of_the_url(site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver = start_chromium(width=360, height=740)
    try:
        driver.get(site.url)
        focused = driver.switch_to.active_element
        assert focused.get_attribute("id") == "token"  # the page opens ready to type
        focused.send_keys("sk-secret-token-123", Keys.ENTER)
        error = driver.find_element(By.ID, "signin-error")
        WebDriverWait(driver, 10).until(lambda d: error.text)
        assert "404" in error.text
        assert "sk-secret" not in driver.current_url
        assert driver.execute_script("return sessionStorage.length") == 0  # a refused token is not kept
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, "the sign-in screen scrolls sideways at 360 px"
    finally:
        driver.quit()


def test_studio_and_admin_layouts_fit_360px(site):
    driver = start_chromium(width=360, height=740)
    try:
        driver.get(site.url)
        for view in ("studio", "admin"):
            driver.execute_script(
                "document.getElementById('signin').hidden = true;"
                "for (const id of ['studio', 'admin', 'account']) document.getElementById(id).hidden = id !== arguments[0] && id !== 'account';",
                view,
            )
            width = driver.execute_script("return document.documentElement.scrollWidth")
            assert width <= 360, f"the {view} view scrolls sideways at 360 px ({width} px)"
    finally:
        driver.quit()
