"""Screenshots of the web page's main screens for docs/screenshots/ (issue 22), taken from the
real `avatargen api` (a fake endpoint behind it, flat-colour images) in headless Chromium.

Usage: python bench/web_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from web_browser import start_chromium  # noqa: E402
from web_service import WebService  # noqa: E402


def full_page(driver, path: Path) -> None:
    """The whole page: the window made as tall as the page (sticky bars then sit where they
    belong, which a capture beyond the viewport does not do), then put back."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    driver.execute_script("window.scrollTo(0, 0)")
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, full)
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)


def until(driver, what, timeout: float = 60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: what(d))


def sign_in(driver, url: str, token: str) -> None:
    driver.get(url)
    driver.switch_to.active_element.send_keys(token, Keys.ENTER)
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#pose-gallery input"))
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#models input"))


def studio(driver, photo: Path, poses: tuple[str, ...]) -> None:
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=face-box]"))
    for pose in poses:
        driver.find_element(By.ID, f"pose-{pose}").send_keys(Keys.SPACE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from PIL import Image
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "astronaut.jpg"
        Image.fromarray(data.astronaut()).save(photo, quality=90)
        service = WebService(Path(tmp) / "data", delay=1.5, loading_for=4, image_size=256).start()
        try:
            alice = service.add_user("alice", "basic", 60)
            service.add_user("bob", "free", 12)
            admin = service.admin_token()

            driver = start_chromium(width=1280, height=860)
            try:
                driver.get(service.url)
                driver.save_screenshot(str(args.out / "signin.png"))
                sign_in(driver, service.url, alice)
                studio(driver, photo, ("t-pose", "jumping", "wave"))
                driver.save_screenshot(str(args.out / "studio-wide.png"))
                driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
                until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=job]"))
                time.sleep(1.5)
                driver.execute_script(
                    "document.getElementById('jobs-section').scrollIntoView({block: 'center'})"
                )
                driver.save_screenshot(str(args.out / "jobs.png"))
                until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 3, 120)
                until(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-test=job]"))
                time.sleep(0.5)
                driver.execute_script(
                    "document.getElementById('gallery-section').scrollIntoView({block: 'end'})"
                )
                driver.save_screenshot(str(args.out / "gallery-wide.png"))
                driver.find_element(By.ID, "sign-out").send_keys(Keys.ENTER)
                sign_in(driver, service.url, admin)
                driver.find_element(By.ID, "show-admin").send_keys(Keys.ENTER)
                until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-users tbody tr"))
                until(driver, lambda d: d.find_element(By.ID, "admin-stats").text)
                full_page(driver, args.out / "admin.png")
            finally:
                driver.quit()

            driver = start_chromium(width=360, height=740)
            try:
                sign_in(driver, service.url, alice)
                studio(driver, photo, ("arms-up", "sitting"))
                until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-test=result-img]")) == 3)
                time.sleep(0.5)
                full_page(driver, args.out / "mobile-360.png")
            finally:
                driver.quit()
        finally:
            service.stop()
    for path in sorted(args.out.glob("*.png")):
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
