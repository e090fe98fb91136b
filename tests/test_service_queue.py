"""The service's queue and ledger, on SQLite and on a real PostgreSQL server (issue 21):
accept/claim/settle/refund/cancel exactly once, priorities, round-robin fairness, the per-user
cap, leases, dead workers, daily limits, migrations."""

from __future__ import annotations

import threading

import pytest

from avatargen.errors import ConfigError, CreditsError, LimitError
from avatargen.service.accounts import Accounts
from avatargen.service.audit import verify
from avatargen.service.queue import Limits, NewJob, Queue, QueueFull, priority_of
from service_db import database_url_fixture, postgres_server_fixture, service_db_fixture  # noqa: F401

pytest.importorskip("starlette")


def job(cost=3, priority=0, model="avatar-generator:controlnet-openpose-sd15"):
    return NewJob(model, "wave", "sd", {"pose_spec": "wave"}, 1, cost, priority)


def photo():
    return {
        "path": "/nowhere.jpg",
        "sha256": "0" * 64,
        "content_type": "image/jpeg",
        "width": 64,
        "height": 64,
    }


def submit(queue, user, n=1, photo_id=None, **kw):
    import secrets

    pid = photo_id or secrets.token_hex(6)
    return queue.accept(user.id, photo() if photo_id is None else None, pid, [job(**kw) for _ in range(n)])


@pytest.fixture
def setup(service_db):
    accounts = Accounts(service_db)
    a, _ = accounts.add("alice", "basic", 100)
    b, _ = accounts.add("bob", "basic", 100)
    return service_db, accounts, Queue(service_db), a, b


def balance(accounts, name):
    user = accounts.get(name)
    return user.balance, user.reserved


def test_migrations_are_recorded_and_a_newer_database_is_refused(service_db):
    from avatargen.service.migrations import applied, migrate

    assert applied(service_db) == ["s001_accounts_queue_ledger"]
    assert migrate(service_db) == []  # idempotent
    with service_db.tx() as cur:
        cur.execute("INSERT INTO svc_migrations (name, applied_at) VALUES ('s999_from_the_future', 0)")
    with pytest.raises(ConfigError, match="s999_from_the_future"):
        migrate(service_db)


def test_accept_reserves_and_settle_happens_exactly_once(setup):
    db, accounts, queue, alice, _ = setup
    [gen] = submit(queue, alice)
    assert balance(accounts, "alice") == (97, 3)
    claimed = queue.claim("w1")
    assert claimed["id"] == gen["generationId"]
    assert queue.settle(claimed["id"], "w1", claimed["model_key"], "/o.png", 1, 0.1) == 3
    assert queue.settle(claimed["id"], "w1", claimed["model_key"], "/o.png", 1, 0.1) is None
    assert queue.fail(claimed["id"], "w1", "x", "late failure") is None
    assert balance(accounts, "alice") == (97, 0)
    assert verify(db) == []


def test_failure_and_cancel_refund_exactly_once(setup):
    db, accounts, queue, alice, _ = setup
    first, second = submit(queue, alice, 2)
    claimed = queue.claim("w1")
    assert queue.fail(claimed["id"], "w1", "provider_error", "boom") == 3
    assert queue.fail(claimed["id"], "w1", "provider_error", "boom") is None
    other = second if claimed["id"] == first["generationId"] else first
    assert queue.cancel_or_delete(alice.id, other["generationId"]) == "cancelled"
    assert queue.cancel_or_delete(alice.id, other["generationId"]) == "deleted"  # a finished one is deleted
    assert queue.cancel_or_delete(alice.id, other["generationId"]) is None
    assert balance(accounts, "alice") == (100, 0)
    assert verify(db) == []


def test_a_running_job_cannot_be_cancelled_and_others_cannot_touch_it(setup):
    db, accounts, queue, alice, bob = setup
    [gen] = submit(queue, alice)
    assert queue.cancel_or_delete(bob.id, gen["generationId"]) is None  # not bob's: as if absent
    queue.claim("w1")
    assert queue.cancel_or_delete(alice.id, gen["generationId"]) == "processing"
    assert verify(db) == []


def test_not_enough_credits_queues_nothing(setup):
    db, accounts, queue, alice, _ = setup
    with pytest.raises(CreditsError):
        submit(queue, alice, 34)  # 102 > 100
    assert balance(accounts, "alice") == (100, 0)
    with db.read() as cur:
        assert cur.scalar("SELECT COUNT(*) FROM svc_generations") == 0
        assert cur.scalar("SELECT COUNT(*) FROM svc_photos") == 0  # the whole accept rolled back
    assert verify(db) == []


def test_priority_first_then_round_robin_then_age(setup):
    db, accounts, queue, alice, bob = setup
    carol, _ = accounts.add("carol", "pro", 100)
    submit(queue, alice, 3)
    submit(queue, bob, 3)
    submit(queue, carol, 2, priority=priority_of("pro", False))
    order = []
    while (claimed := queue.claim("w", user_cap=100)) is not None:
        order.append(claimed["user_id"])
    assert order[:2] == [carol.id, carol.id]  # pro tier first
    assert order[2:] == [alice.id, bob.id] * 3  # then one each, in turn
    assert verify(db) == []


def test_priority_queue_model_goes_first():
    assert (
        priority_of("basic", True) == 1 and priority_of("free", False) == 0 and priority_of("pro", False) == 1
    )


def test_fairness_one_users_thousand_jobs_do_not_starve_another(setup):
    db, accounts, queue, alice, bob = setup
    accounts.add_credits("alice", 3000)
    submit(queue, alice, 1000)
    [mine] = submit(queue, bob, 1)
    first = queue.claim("w", user_cap=100)
    second = queue.claim("w", user_cap=100)
    assert mine["generationId"] in (first["id"], second["id"])


def test_per_user_concurrency_cap(setup):
    db, accounts, queue, alice, bob = setup
    submit(queue, alice, 5)
    assert queue.claim("w", user_cap=2) and queue.claim("w", user_cap=2)
    assert queue.claim("w", user_cap=2) is None  # alice has two running
    submit(queue, bob, 1)
    assert queue.claim("w", user_cap=2)["user_id"] == bob.id
    assert verify(db) == []


def test_an_expired_lease_goes_back_with_its_reservation(setup):
    db, accounts, queue, alice, _ = setup
    [gen] = submit(queue, alice)
    claimed = queue.claim("w-old", lease_s=-1)  # already expired
    assert queue.expire_leases() == 1
    assert queue.get(gen["generationId"], None)["status"] == "pending"
    assert balance(accounts, "alice") == (97, 3)  # still reserved: the credits follow the job
    again = queue.claim("w-new")
    assert queue.settle(claimed["id"], "w-old", "m", "/o.png", 1, 1) is None  # the old worker lost it
    assert queue.settle(again["id"], "w-new", "m", "/o.png", 1, 1) == 3
    assert balance(accounts, "alice") == (97, 0)
    assert verify(db) == []


def test_jobs_of_a_dead_worker_are_requeued_at_start(setup):
    import socket
    import subprocess
    import sys

    db, accounts, queue, alice, _ = setup
    submit(queue, alice, 2)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    owner = f"{socket.gethostname()}/{dead.stdout.strip()}/abc/0"
    queue.register_worker(owner)  # its heartbeat is fresh, but its process is gone
    queue.claim(owner)
    live = queue.claim("otherhost/1/x/0")
    queue.register_worker("otherhost/1/x/0")
    assert queue.recover_dead_workers() == 1
    assert queue.get(live["id"], None)["status"] == "processing"  # a live worker's job stays
    assert verify(db) == []


def test_concurrent_claimers_never_take_one_job_twice(setup):
    db, accounts, queue, alice, bob = setup
    accounts.add_credits("alice", 1000)
    accounts.add_credits("bob", 1000)
    submit(queue, alice, 60)
    submit(queue, bob, 60)
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(i):
        while (claimed := queue.claim(f"w{i}", user_cap=1000)) is not None:
            assert queue.settle(claimed["id"], f"w{i}", "m", "/o.png", 1, 0) == 3
            with lock:
                taken.append(claimed["id"])

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == len(set(taken)) == 120
    assert balance(accounts, "alice") == (1100 - 180, 0)
    assert verify(db) == []


def test_daily_limits_per_user_and_per_model(service_db):
    accounts = Accounts(service_db)
    alice, _ = accounts.add("alice", "basic", 100)
    queue = Queue(
        service_db, Limits(user_daily=5, model_daily={"avatar-generator:controlnet-openpose-sd15": 3})
    )
    submit(queue, alice, 3)
    with pytest.raises(LimitError, match="controlnet-openpose-sd15"):
        submit(queue, alice, 1)
    submit(queue, alice, 2, model="avatar-generator:controlnet-openpose-sdxl")
    with pytest.raises(LimitError, match="5 generations"):
        submit(queue, alice, 1, model="avatar-generator:controlnet-openpose-sdxl")
    assert accounts.get("alice").reserved == 15
    assert verify(service_db) == []


def test_queue_full_is_refused_before_anything_is_reserved(service_db):
    accounts = Accounts(service_db)
    alice, _ = accounts.add("alice", "basic", 100)
    queue = Queue(service_db, max_pending=2)
    submit(queue, alice, 2)
    with pytest.raises(QueueFull):
        submit(queue, alice, 1)
    assert accounts.get("alice").reserved == 6


def test_fallback_adjusts_the_reservation(setup):
    db, accounts, queue, alice, _ = setup
    [gen] = submit(queue, alice, 1, cost=5)
    queue.claim("w")
    queue.adjust_reservation(gen["generationId"], "w", "cheaper", 3)
    assert balance(accounts, "alice") == (97, 3)
    assert queue.settle(gen["generationId"], "w", "cheaper", "/o.png", 1, 0) == 3
    assert balance(accounts, "alice") == (97, 0)
    assert verify(db) == []


def test_tokens_are_stored_hashed_and_compared_by_hash(service_db):
    accounts = Accounts(service_db)
    alice, token = accounts.add("alice", "basic", 1)
    with service_db.read() as cur:
        stored = cur.all("SELECT * FROM svc_users")
    assert token not in repr(stored)
    assert accounts.authenticate(token).name == "alice"
    assert accounts.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    _, new = accounts.rotate("alice")
    assert accounts.authenticate(token) is None and accounts.authenticate(new).name == "alice"
    accounts.revoke("alice")
    assert accounts.authenticate(new) is None
