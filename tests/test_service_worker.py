"""Worker threads running claimed jobs through BatchRunner with the service's ledger adapter
(issue 21), on SQLite and PostgreSQL: settled exactly once, failures refunded with a stable
code, one cold-start wait shared by every worker, and a bounded number of connections."""

from __future__ import annotations

import time

import pytest

from avatargen.catalog import load_catalog
from avatargen.service.accounts import Accounts
from avatargen.service.audit import verify
from avatargen.service.config import ServiceConfig
from avatargen.service.engine import BackendOptions, SharedEngine, run_settings
from avatargen.service.queue import NewJob, Queue
from avatargen.service.worker import WorkerPool
from fake_endpoint import FakeEndpoint
from service_db import database_url_fixture, postgres_server_fixture, service_db_fixture  # noqa: F401
from service_process import jpeg

pytest.importorskip("starlette")
SD15 = "avatar-generator:controlnet-openpose-sd15"


def params(prompt="p"):
    return {"pose_spec": "wave", "prompt": prompt, "negative_prompt": "n", "steps": 4, "guidance_scale": 7.5,
            "controlnet_conditioning_scale": 1.0, "width": 512, "height": 512, "strength": None}  # fmt: skip


def run_pool(db, tmp_path, fake, jobs_by_user, workers=2, until=60.0):
    accounts = Accounts(db)
    queue = Queue(db)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg(96, 96))
    users = {}
    for name, jobs in jobs_by_user.items():
        users[name] = accounts.add(name, "basic", 1000)[0]
        queue.accept(
            users[name].id,
            {"path": str(photo), "sha256": "b" * 64, "content_type": "image/jpeg", "width": 96, "height": 96},
            f"photo-{name}",
            jobs,
        )
    config = ServiceConfig(data_dir=tmp_path, user_concurrency=4, lease_seconds=30)
    shared = SharedEngine(load_catalog(), run_settings({}, BackendOptions(endpoint=fake.url)))
    pool = WorkerPool(queue, shared, config, workers)
    pool.start()
    seen_waiting = set()
    try:
        deadline = time.monotonic() + until
        while time.monotonic() < deadline:
            with db.read() as cur:
                seen_waiting |= {
                    r["waiting_for"]
                    for r in cur.all("SELECT waiting_for FROM svc_generations")
                    if r["waiting_for"]
                }
                if not cur.scalar(
                    "SELECT COUNT(*) FROM svc_generations WHERE status IN ('pending', 'processing')"
                ):
                    break
            time.sleep(0.05)
        connections = None
        if db.postgres:
            with db.read() as cur:
                connections = cur.scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                )
    finally:
        pool.shutdown()
    return accounts, users, seen_waiting, connections


def test_jobs_run_through_the_engine_settled_once_with_bounded_connections(service_db, tmp_path):
    with FakeEndpoint() as fake:
        jobs = [NewJob(SD15, "wave", "sd", params(), i, 3, 0) for i in range(40)]
        failing = [NewJob(SD15, "wave", "sd", params("FAIL"), 1, 3, 0)]
        accounts, users, _, connections = run_pool(
            service_db, tmp_path, fake, {"alice": jobs, "bob": failing}
        )
        assert fake.posts >= 41
    with service_db.read() as cur:
        rows = cur.all("SELECT user_id, status, error_code, output_path FROM svc_generations")
    done = [r for r in rows if r["user_id"] == users["alice"].id]
    assert {r["status"] for r in done} == {"completed"} and len(done) == 40
    assert all((tmp_path / "outputs").joinpath(str(users["alice"].id)).is_dir() for _ in done)
    [failed] = [r for r in rows if r["user_id"] == users["bob"].id]
    assert failed["status"] == "failed" and failed["error_code"] == "provider_error"
    assert accounts.get("alice").balance == 1000 - 120 and accounts.get("bob").balance == 1000
    assert verify(service_db) == []
    if connections is not None:  # one per worker thread and the heartbeat, not one per job
        assert connections <= 8, connections


def test_one_cold_start_wait_shared_by_all_workers(service_db, tmp_path):
    with FakeEndpoint(loading_for=1.5, estimated_time=1.0) as fake:
        jobs = [NewJob(SD15, "wave", "sd", params(), i, 3, 0) for i in range(6)]
        accounts, _, waiting, _ = run_pool(service_db, tmp_path, fake, {"alice": jobs}, workers=3)
        loading_posts = sum(
            1 for r in fake.requests if r["method"] == "POST" and r["time"] < fake.loading_until
        )
    assert any(w.startswith("model loading") for w in waiting), waiting
    assert accounts.get("alice").balance == 1000 - 18
    assert verify(service_db) == []
    assert loading_posts <= 5, loading_posts  # one prober at a time: not every worker on its own
