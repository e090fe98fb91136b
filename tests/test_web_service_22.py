"""The web page against the real service (issue 22), in Debian's headless Chromium.

`avatargen api` runs in a subprocess with a fake Inference Endpoint behind it; alice and bob are
made with `avatargen users add`. Alice signs in, uploads a photo (its face outlined), ticks two
poses, generates, sees both avatars appear, downloads one (a PNG with its metadata) and sees her
balance drop by exactly the two avatars' cost; bob, in another browser, sees none of it. Every
action is done with the keyboard (keys sent to the focused control)."""

from __future__ import annotations

import json
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from avatargen.pngchunks import SIGNATURE, read_text
from web_browser import ACCESSIBLE_NAMES_JS, TIMINGS_JS, start_chromium
from web_service import REPO, WebService


@pytest.fixture
def service(tmp_path):
    svc = WebService(tmp_path / "data").start()
    yield svc
    svc.stop()


@pytest.fixture
def face_photo(tmp_path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "me.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=90)  # a real face, shipped with scikit-image
    return path


def wait(driver, what, timeout: float = 60):
    # The page replaces elements as jobs move on: an element gone between two reads is a retry.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: what(d))


def sign_in(driver, url: str, token: str) -> None:
    driver.get(url)
    field = driver.switch_to.active_element
    assert field.get_attribute("id") == "token"
    field.send_keys(token, Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "account").is_displayed())
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#pose-gallery input"))
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#models input"))


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def test_two_poses_generated_downloaded_and_paid_for_and_the_other_user_sees_none(
    service, face_photo, tmp_path
):
    alice = service.add_user("alice", "free", 20)
    bob = service.add_user("bob", "free", 7)
    models = service.get("/api/apps/avatar-generator/models", alice).json()
    cheapest_allowed = next(m for m in models if m["allowed"])  # the page's default quality
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    driver = start_chromium(downloads=downloads)
    try:
        sign_in(driver, service.url, alice)
        t = driver.execute_script(TIMINGS_JS)
        print(
            f"\nreal service: first-contentful-paint {t['fcp']:.1f} ms, DOMContentLoaded {t['domContentLoaded']:.1f} ms"
        )
        assert (text(driver, "me-name"), text(driver, "me-tier").lower(), text(driver, "me-balance")) == (
            "alice",
            "free",
            "20",
        )
        # The token is in the tab's session storage, nowhere else.
        assert alice not in driver.current_url
        assert driver.execute_script("return sessionStorage.getItem('avatargen.token')") == alice
        assert driver.execute_script("return localStorage.length + document.cookie.length") == 0

        driver.find_element(By.ID, "photo").send_keys(str(face_photo))
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=face-box]"))
        assert "Face found" in text(driver, "photo-status")

        for pose in ("t-pose", "jumping"):
            driver.find_element(By.ID, f"pose-{pose}").send_keys(Keys.SPACE)
        cost = 2 * cheapest_allowed["creditCost"]
        line = text(driver, "cost-line")
        assert f"= {cost} credits" in line and f"Balance after: {20 - cost}." in line

        driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
        wait(
            driver,
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, "[data-test=job]")) == 2
                or d.find_elements(By.CSS_SELECTOR, "[data-test=result]")
            ),
        )
        assert text(driver, "generate-error") == ""

        results = wait(
            driver,
            lambda d: len(found := d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 2 and found,
            120,
        )
        poses = sorted(r.get_attribute("data-pose") for r in results)
        assert poses == ["jumping", "t-pose"]
        assert all(cheapest_allowed["name"] in r.text for r in results)  # the model under each
        wait(
            driver,
            lambda d: all(
                d.execute_script("return arguments[0].naturalWidth", img) > 0
                for img in d.find_elements(By.CSS_SELECTOR, "[data-test=result-img]")
            ),
        )
        wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-test=job]"))

        # The balance drops by exactly the two avatars' cost, in the bar and in the ledger.
        wait(driver, lambda d: text(d, "me-balance") == str(20 - cost))
        me = service.get("/api/me", alice).json()
        assert me["credits"] == {"balance": 20 - cost, "reserved": 0}
        assert f"balance is now {20 - cost}" in text(driver, "generate-status")

        # Download: the PNG exactly as the service serves it, its metadata chunks included.
        newest = results[0]
        newest.find_element(By.CSS_SELECTOR, "[data-test=download]").send_keys(Keys.ENTER)
        files = wait(driver, lambda d: [p for p in downloads.glob("*.png")], 30)
        time.sleep(0.3)  # Chromium renames the .crdownload file when it is whole
        data = files[0].read_bytes()
        assert data.startswith(SIGNATURE)
        meta = json.loads(read_text(data, "avatargen", 10**8))
        assert meta["pose"] in ("t-pose", "jumping")
        assert read_text(data, "parameters", 10**8)
        gen_id = newest.get_attribute("data-id")
        assert data == service.get(f"/api/apps/avatar-generator/generations/{gen_id}/image", alice).content
        alice_ids = [r.get_attribute("data-id") for r in results]

        # A reload keeps the session (the tab's storage) and shows the same gallery, newest first,
        # with the pose and the model's name under each.
        driver.refresh()
        wait(driver, lambda d: d.find_element(By.ID, "account").is_displayed())
        again = wait(
            driver,
            lambda d: len(found := d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 2 and found,
        )
        listed = service.get("/api/apps/avatar-generator/generations", alice).json()["generations"]
        assert [r.get_attribute("data-id") for r in again] == [g["generationId"] for g in listed]
        names = {"t-pose": "T Pose", "jumping": "Jumping"}
        for card in again:
            assert (
                names[card.get_attribute("data-pose")] in card.text and cheapest_allowed["name"] in card.text
            )
    finally:
        driver.quit()

    # Bob, in a browser of his own: none of alice's avatars, jobs, photo or balance.
    driver = start_chromium()
    try:
        sign_in(driver, service.url, bob)
        assert (text(driver, "me-name"), text(driver, "me-balance")) == ("bob", "7")
        time.sleep(1.0)  # the gallery's first page has had time to come
        assert driver.find_elements(By.CSS_SELECTOR, "[data-test=result]") == []
        assert driver.find_elements(By.CSS_SELECTOR, "[data-test=job]") == []
        assert driver.find_element(By.ID, "gallery-empty").is_displayed()
        html = driver.page_source
        assert not any(i in html for i in alice_ids) and "alice" not in html
        # The page has no other way in: the same routes answer 404 to bob for alice's ids.
        for i in alice_ids:
            assert service.get(f"/api/apps/avatar-generator/generations/{i}", bob).status_code == 404
            assert service.get(f"/api/apps/avatar-generator/generations/{i}/image", bob).status_code == 404
        assert service.get("/api/apps/avatar-generator/generations", bob).json()["generations"] == []
    finally:
        driver.quit()


def test_the_keyboard_alone_reaches_every_control_and_every_control_is_named(service):
    alice = service.add_user("alice", "free", 20)
    driver = start_chromium(width=360, height=740)
    try:
        sign_in(driver, service.url, alice)
        controls = driver.execute_script(ACCESSIBLE_NAMES_JS)
        assert [c for c in controls if not c["name"]] == []
        # Tab from the top of the page; radios are one stop (arrows move inside the group).
        wanted = set(
            driver.execute_script(
                """return [...document.querySelectorAll('#studio input, #studio button, header button')]
                   .filter(el => el.getClientRects().length && !el.disabled && el.offsetParent !== null
                                 || (el.id === 'photo'))
                   .filter(el => el.type !== 'radio' || el.checked).map(el => el.id).filter(Boolean)"""
            )
        )
        assert {"photo", "own-pose", "pose-t-pose", "sign-out"} <= wanted
        from selenium.webdriver.common.action_chains import ActionChains

        driver.execute_script("document.activeElement.blur()")
        reached = set()
        for _ in range(len(wanted) * 2 + 10):
            ActionChains(driver).send_keys(Keys.TAB).perform()  # real key presses, not element.send_keys
            reached.add(driver.switch_to.active_element.get_attribute("id"))
        assert wanted - reached == set()
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 360, f"the studio scrolls sideways at 360 px ({width} px)"
        # Arrow keys move through the unlocked qualities.
        first = driver.find_element(By.CSS_SELECTOR, "#models input:checked")
        allowed = driver.find_elements(By.CSS_SELECTOR, "#models input:not(:disabled)")
        if len(allowed) > 1:
            first.send_keys(Keys.ARROW_DOWN)
            assert driver.find_element(By.CSS_SELECTOR, "#models input:checked") != first
        locked = driver.find_elements(By.CSS_SELECTOR, "#models input:disabled")
        assert locked, "a free user should see the higher tiers' models, locked"
        for el in locked:  # each locked model says why, in text a screen reader reads with it
            reason = driver.find_element(By.ID, el.get_attribute("aria-describedby")).text
            assert reason.startswith("Locked: ") and len(reason) > len("Locked: ")
        reasons = " ".join(driver.find_element(By.ID, "models").text.split())
        assert "needs the basic tier (yours: free)" in reasons
    finally:
        driver.quit()


def test_admin_view_lists_users_and_grants_credits_and_is_hidden_from_users(service):
    alice = service.add_user("alice", "free", 20)
    service.add_user("bob", "basic", 3)
    admin = service.admin_token()

    driver = start_chromium()
    try:
        sign_in(driver, service.url, alice)
        assert not driver.find_element(By.ID, "show-admin").is_displayed()
        assert service.get("/api/admin/users", alice).status_code == 404
        driver.find_element(By.ID, "sign-out").send_keys(Keys.ENTER)
        assert driver.execute_script("return sessionStorage.length") == 0

        sign_in(driver, service.url, admin)
        driver.find_element(By.ID, "show-admin").send_keys(Keys.ENTER)
        rows = wait(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#admin-users tbody tr[data-user=bob]")
        )
        assert rows[0].text.split() == ["bob", "basic", "3", "0"]
        wait(
            driver,
            lambda d: (
                d.find_element(By.ID, "admin-queue").text and d.find_element(By.ID, "admin-workers").text
            ),
        )
        for part in ("admin-queue", "admin-workers", "admin-stats"):
            shown = text(driver, part)
            assert "[object" not in shown and "error" not in shown.lower(), shown
        assert "By status" in text(driver, "admin-queue")
        assert "Jobs done" in text(driver, "admin-workers")

        from selenium.webdriver.support.ui import Select

        Select(driver.find_element(By.ID, "grant-user")).select_by_value("bob")
        amount = driver.find_element(By.ID, "grant-amount")
        amount.clear()
        amount.send_keys("5", Keys.ENTER)
        wait(driver, lambda d: "Granted 5 credits to bob" in text(d, "grant-status"))
        wait(
            driver,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#admin-users tbody tr[data-user=bob]").text.split()[2] == "8"
            ),
        )
        assert service.get("/api/credits", alice).json()["balance"] == 20
        bob_now = [u for u in service.get("/api/admin/users", admin).json() if u["name"] == "bob"][0]
        assert bob_now["credits"]["balance"] == 8

        Select(driver.find_element(By.ID, "tier-user")).select_by_value("bob")
        driver.find_element(By.ID, "tier-value").send_keys("pro", Keys.ENTER)
        wait(driver, lambda d: "bob is now on the pro tier" in text(d, "tier-status"))
        wait(
            driver,
            lambda d: (
                d.find_element(By.CSS_SELECTOR, "#admin-users tbody tr[data-user=bob]").text.split()[1]
                == "pro"
            ),
        )

        driver.find_element(By.ID, "new-name").send_keys("carol")
        driver.find_element(By.ID, "new-tier").send_keys("basic")
        credits = driver.find_element(By.ID, "new-credits")
        credits.clear()
        credits.send_keys("4", Keys.ENTER)
        wait(driver, lambda d: d.find_element(By.ID, "new-token").text.startswith("avg_"))
        carol = driver.find_element(By.ID, "new-token").text  # shown once, and it works
        assert service.get("/api/me", carol).json() == {
            "name": "carol",
            "tier": "basic",
            "credits": {"balance": 4, "reserved": 0},
            "admin": False,
        }
    finally:
        driver.quit()


def generate_and_wait(driver, poses: tuple[str, ...], results_after: int) -> list:
    for pose in poses:
        driver.find_element(By.ID, f"pose-{pose}").send_keys(Keys.SPACE)
    driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
    return wait(
        driver,
        lambda d: (
            len(found := d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == results_after and found
        ),
        120,
    )


def test_same_photo_other_poses_reuses_the_upload_and_delete_removes_an_avatar(service, face_photo):
    alice = service.add_user("alice", "free", 30)
    driver = start_chromium()
    try:
        sign_in(driver, service.url, alice)
        driver.find_element(By.ID, "photo").send_keys(str(face_photo))
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=face-box]"))
        first = generate_and_wait(driver, ("t-pose",), 1)[0]

        button = first.find_element(By.XPATH, ".//button[text()='Same photo, other poses']")
        button.send_keys(Keys.ENTER)
        wait(driver, lambda d: "same photo" in text(d, "photo-status").lower())
        preview = driver.find_element(By.ID, "preview-img")
        wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", preview) > 0)
        assert driver.switch_to.active_element.get_attribute("id").startswith("pose-")  # on to the poses
        cards = generate_and_wait(driver, ("wave", "sitting"), 3)
        assert {c.get_attribute("data-pose") for c in cards[:2]} == {"wave", "sitting"}  # newest first
        assert cards[2].get_attribute("data-pose") == "t-pose"

        listed = service.get("/api/apps/avatar-generator/generations", alice).json()["generations"]
        assert len({g["photoId"] for g in listed}) == 1
        uploads = [p for p in (service.data_dir / "uploads").rglob("*") if p.is_file()]
        assert len(uploads) == 1  # the photo was sent once

        # Delete asks on the same button, then deletes: the card goes and so does the image.
        oldest = cards[2]
        gone = oldest.get_attribute("data-id")
        delete = oldest.find_element(By.CSS_SELECTOR, "[data-test=delete]")
        delete.send_keys(Keys.ENTER)
        wait(driver, lambda d: delete.text == "Really delete?")
        delete.send_keys(Keys.ENTER)
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 2)
        assert service.get(f"/api/apps/avatar-generator/generations/{gone}/image", alice).status_code == 404
        listed = service.get("/api/apps/avatar-generator/generations", alice).json()["generations"]
        assert gone not in [g["generationId"] for g in listed if g["status"] == "completed"]
    finally:
        driver.quit()


def test_a_failed_job_shows_its_reason_gives_the_credits_back_and_can_be_retried(tmp_path, face_photo):
    # Every prompt fails at this endpoint (the models' prompt starts "professional portrait").
    svc = WebService(tmp_path / "data", fail_prompts=("professional",)).start()
    driver = start_chromium()
    try:
        alice = svc.add_user("alice", "free", 20)
        sign_in(driver, svc.url, alice)
        driver.find_element(By.ID, "photo").send_keys(str(face_photo))
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=face-box]"))
        driver.find_element(By.ID, "pose-t-pose").send_keys(Keys.SPACE)
        driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
        job = wait(
            driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-test=job][data-status=failed]"), 120
        )[0]
        assert "Failed: " in job.text and len(job.text.split("Failed: ", 1)[1].split("\n")[0]) > 3
        wait(driver, lambda d: text(d, "me-balance") == "20")  # the reserved credits came back
        first_id = job.get_attribute("data-id")

        job.find_element(By.XPATH, ".//button[text()='Retry']").send_keys(Keys.ENTER)
        again = wait(
            driver,
            lambda d: [
                j
                for j in d.find_elements(By.CSS_SELECTOR, "[data-test=job]")
                if j.get_attribute("data-id") != first_id
            ],
        )[0]
        listed = svc.get("/api/apps/avatar-generator/generations", alice).json()["generations"]
        assert {g["poseTemplateId"] for g in listed} == {"t-pose"} and len(listed) == 2
        wait(driver, lambda d: again.get_attribute("data-status") == "failed", 120)
        wait(driver, lambda d: text(d, "me-balance") == "20")
        assert svc.get("/api/me", alice).json()["credits"] == {"balance": 20, "reserved": 0}
    finally:
        driver.quit()
        svc.stop()


def test_photo_without_a_face_warns_and_a_too_large_one_is_refused(tmp_path, avatargen_home):
    from PIL import Image

    (avatargen_home / "config.toml").write_text("[service]\nmax_upload_bytes = 400000\n", encoding="utf-8")
    svc = WebService(tmp_path / "data").start()
    flat = tmp_path / "wall.png"
    Image.new("RGB", (256, 256), (90, 140, 200)).save(flat)
    noisy = tmp_path / "huge.png"
    Image.effect_noise((900, 900), 80).convert("RGB").save(noisy)  # ~2 MB of noise: over the limit
    driver = start_chromium()
    try:
        alice = svc.add_user("alice", "free", 20)
        sign_in(driver, svc.url, alice)
        driver.find_element(By.ID, "pose-t-pose").send_keys(Keys.SPACE)

        # Dropped on the box: a PNG made in the page (a canvas), handed over as a drop event would.
        driver.execute_script(
            """const c = document.createElement('canvas'); c.width = c.height = 200;
               const g = c.getContext('2d'); g.fillStyle = '#5a8cc8'; g.fillRect(0, 0, 200, 200);
               c.toBlob(blob => {
                 const dt = new DataTransfer();
                 dt.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));
                 document.getElementById('dropzone').dispatchEvent(
                   new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
               }, 'image/png');"""
        )
        wait(driver, lambda d: "could not find a face" in text(d, "photo-status"))
        preview = driver.find_element(By.ID, "preview-img")
        wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", preview) == 200)

        driver.find_element(By.ID, "photo").send_keys(str(flat))
        wait(driver, lambda d: "could not find a face" in text(d, "photo-status"))
        assert driver.find_elements(By.CSS_SELECTOR, "[data-test=face-box]") == []
        assert driver.find_element(By.ID, "generate").is_enabled()  # allowed, with the warning

        driver.find_element(By.ID, "photo").send_keys(str(noisy))
        wait(driver, lambda d: "too large" in text(d, "photo-status"))
        assert "400000" in text(driver, "photo-status")  # the service's limit, in its own words
        assert not driver.find_element(By.ID, "generate").is_enabled()
    finally:
        driver.quit()
        svc.stop()


def test_an_own_pose_file_is_generated_and_a_broken_one_is_refused_plainly(service, face_photo, tmp_path):
    # The user's own OpenPose JSON goes as the `pose` field: one avatar, paid for. A file that is
    # no pose at all is refused in words a user understands, and nothing is charged for it.
    own = REPO / "tests" / "data" / "poses" / "openpose-body25.json"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    alice = service.add_user("alice", "free", 20)
    driver = start_chromium()
    try:
        sign_in(driver, service.url, alice)
        driver.find_element(By.ID, "photo").send_keys(str(face_photo))
        driver.find_element(By.ID, "own-pose").send_keys(str(own))
        wait(driver, lambda d: "1 avatar ×" in text(d, "cost-line"))
        assert driver.find_element(By.ID, "own-pose-clear").is_displayed()
        wait(driver, lambda d: d.find_element(By.ID, "generate").is_enabled())
        driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
        wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 1, 120)
        assert service.get("/api/me", alice).json()["credits"] == {"balance": 17, "reserved": 0}
        wait(driver, lambda d: text(d, "me-balance") == "17")
        driver.find_element(By.ID, "own-pose").send_keys(str(broken))
        wait(driver, lambda d: d.find_element(By.ID, "generate").is_enabled())
        driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
        wait(driver, lambda d: text(d, "generate-error"))
        assert "Your pose file was refused" in text(driver, "generate-error")
        assert service.get("/api/me", alice).json()["credits"] == {"balance": 17, "reserved": 0}
    finally:
        driver.quit()


def test_jobs_show_their_queue_position_and_the_cold_start_wait_live(tmp_path, face_photo):
    # The endpoint answers 503 "loading" for 4 s: both workers wait for it, the third job queues.
    svc = WebService(tmp_path / "data", loading_for=4.0, estimated_time=3.0).start()
    driver = start_chromium()
    try:
        alice = svc.add_user("alice", "free", 20)
        sign_in(driver, svc.url, alice)
        driver.find_element(By.ID, "photo").send_keys(str(face_photo))
        for pose in ("t-pose", "jumping", "wave"):
            driver.find_element(By.ID, f"pose-{pose}").send_keys(Keys.SPACE)
        driver.find_element(By.ID, "generate").send_keys(Keys.ENTER)
        seen: set[str] = set()

        def states(d):
            seen.update(j.text for j in d.find_elements(By.CSS_SELECTOR, "[data-test=job]"))
            return len(d.find_elements(By.CSS_SELECTOR, "[data-test=result]")) == 3

        wait(driver, states, 120)
        joined = "\n".join(seen)
        assert "Queued: position 1" in joined
        assert "Waiting for the model: model loading" in joined
        assert text(driver, "me-balance") == "11"
    finally:
        driver.quit()
        svc.stop()
