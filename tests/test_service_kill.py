"""The ledger stays exact per user while the real `avatargen api` is killed -9 thirty times
mid-queue, on SQLite and on PostgreSQL (issue 21): every reserved credit is settled or refunded
exactly once, every job left processing is queued again at the next start, none is lost."""

from __future__ import annotations

import random
import threading
import time

import pytest

pytest.importorskip("starlette")

import httpx  # noqa: E402

from fake_endpoint import FakeEndpoint  # noqa: E402
from service_db import database_url_fixture, postgres_server_fixture  # noqa: E402, F401
from service_process import ApiProcess, jpeg, write_config  # noqa: E402

KILLS = 30
B = "/api/apps/avatar-generator"


def test_ledger_exact_under_kill_9_mid_queue(database_url, tmp_path):
    from avatargen.service.accounts import Accounts
    from avatargen.service.audit import verify
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate
    from avatargen.service.queue import NewJob, Queue

    home = tmp_path / "home"
    write_config(home, "[service]\nuser_concurrency = 2\n")
    db = Database(database_url, home / "data")
    migrate(db)
    accounts = Accounts(db)
    users = {name: accounts.add(name, "basic", 3000)[0] for name in ("alice", "bob")}
    token = accounts.rotate("alice")[1]
    photo = home / "photo.jpg"
    photo.write_bytes(jpeg(128, 128))
    queue = Queue(db)
    params = {
        "pose_spec": "wave", "prompt": "p", "negative_prompt": "n", "steps": 4, "guidance_scale": 7.5,
        "controlnet_conditioning_scale": 1.0, "width": 512, "height": 512, "strength": None,
    }  # fmt: skip
    for name, user in users.items():
        queue.accept(
            user.id,
            {
                "path": str(photo),
                "sha256": "a" * 64,
                "content_type": "image/jpeg",
                "width": 128,
                "height": 128,
            },
            f"photo-{name}",
            [
                NewJob("avatar-generator:controlnet-openpose-sd15", "wave", "sd", params, i, 3, 0)
                for i in range(150)
            ],
        )
    rng = random.Random(21)
    posted = []
    with FakeEndpoint(delay=0.1) as fake:
        for cycle in range(KILLS):
            api = ApiProcess(home, fake.url, database=database_url, workers=3).start()
            stop = threading.Event()

            def poster(url=api.url, stop=stop):  # accepts in flight when the kill lands
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as c:
                    while not stop.is_set():
                        try:
                            r = c.post(f"{B}/generate", files={"image": ("p.jpg", jpeg(64, 64), "image/jpeg")},
                                       data={"poseTemplateId": "wave", "quality": "sd"})  # fmt: skip
                            posted.append(r.status_code)
                        except httpx.HTTPError:
                            return
                        time.sleep(0.05)

            thread = threading.Thread(target=poster, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.2, 1.0))
            api.kill9()
            stop.set()
            thread.join(timeout=10)
            assert verify(db) == [], f"after kill {cycle + 1}"
        with db.read() as cur:
            left = cur.scalar(
                "SELECT COUNT(*) FROM svc_generations WHERE status IN ('pending', 'processing')"
            )
        assert left > 0, "the queue drained before the last kill: not mid-queue"
        api = ApiProcess(home, fake.url, database=database_url, workers=4).start()
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                with db.read() as cur:
                    if not cur.scalar(
                        "SELECT COUNT(*) FROM svc_generations WHERE status IN ('pending', 'processing')"
                    ):
                        break
                time.sleep(0.5)
        finally:
            api.stop()
    assert verify(db) == []
    assert 202 in posted
    with db.read() as cur:
        states = {
            r["status"]: int(r["n"])
            for r in cur.all("SELECT status, COUNT(*) AS n FROM svc_generations GROUP BY status")
        }
        assert set(states) == {"completed"}, (states, api.log.read_text()[-2000:])
        for name, user in users.items():
            done = int(
                cur.scalar(
                    "SELECT COUNT(*) FROM svc_generations WHERE user_id = ? AND status = 'completed'",
                    (user.id,),
                )
            )
            settles = int(
                cur.scalar(
                    "SELECT COUNT(*) FROM svc_movements WHERE user_id = ? AND kind = 'settle'", (user.id,)
                )
            )
            after = accounts.get(name)
            assert settles == done
            assert (after.balance, after.reserved) == (3000 - 3 * done, 0), name
    db.close()
