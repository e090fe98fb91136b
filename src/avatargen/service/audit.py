"""Checking the service's ledger: every user's running totals against their movements, and
every generation's reservation against its own movements and status. Used by the tests (under
kill -9) and by `avatargen users show NAME --verify`."""

from __future__ import annotations

from avatargen.service.db import Database

# Each generation's state -> what its reservation must be.
EXPECTED = {
    "pending": "open",
    "processing": "open",
    "completed": "settled",
    "failed": "refunded",
    "cancelled": "refunded",
}


def verify(db: Database) -> list[str]:
    """Every mismatch found, as a sentence; [] when the ledger is exact."""
    problems: list[str] = []
    with db.tx() as cur:  # one snapshot (SQLite: the write lock; PostgreSQL: one transaction)
        users = cur.all("SELECT * FROM svc_users")
        sums = {
            (r["user_id"], r["kind"]): int(r["total"])
            for r in cur.all(
                "SELECT user_id, kind, SUM(amount) AS total FROM svc_movements GROUP BY user_id, kind"
            )
        }
        gens = cur.all("SELECT id, user_id, status, reservation, reserved FROM svc_generations")
        per_gen = {}
        for r in cur.all(
            "SELECT generation_id, kind, COUNT(*) AS n, SUM(amount) AS total FROM svc_movements "
            "WHERE generation_id IS NOT NULL GROUP BY generation_id, kind"
        ):
            per_gen[(r["generation_id"], r["kind"])] = (int(r["n"]), int(r["total"]))
        counts = {
            (r["user_id"], r["status"], r["priority"]): int(r["n"])
            for r in cur.all(
                "SELECT user_id, status, priority, COUNT(*) AS n FROM svc_generations GROUP BY user_id, status, priority"
            )
        }
    for user in users:
        uid = user["id"]

        def s(kind: str, uid=uid) -> int:
            return sums.get((uid, kind), 0)

        if user["balance"] != s("grant") - s("reserve") + s("refund"):
            problems.append(
                f"{user['name']}: balance {user['balance']} but movements give {s('grant') - s('reserve') + s('refund')}"
            )
        held = sum(int(g["reserved"]) for g in gens if g["user_id"] == uid and g["reservation"] == "open")
        if user["reserved"] != s("reserve") - s("settle") - s("refund") or user["reserved"] != held:
            problems.append(
                f"{user['name']}: reserved {user['reserved']}, movements give {s('reserve') - s('settle') - s('refund')}, open jobs hold {held}"
            )
        for priority, column in ((1, "pending_hi"), (0, "pending_lo")):
            if user[column] != counts.get((uid, "pending", priority), 0):
                problems.append(
                    f"{user['name']}: {column} {user[column]} but {counts.get((uid, 'pending', priority), 0)} pending"
                )
        running = counts.get((uid, "processing", 0), 0) + counts.get((uid, "processing", 1), 0)
        if user["running"] != running:
            problems.append(f"{user['name']}: running {user['running']} but {running} processing")
    for g in gens:
        if EXPECTED[g["status"]] != g["reservation"]:
            problems.append(f"generation {g['id']}: {g['status']} with a {g['reservation']} reservation")
        reserve = per_gen.get((g["id"], "reserve"), (0, 0))[1]
        settles, settled = per_gen.get((g["id"], "settle"), (0, 0))
        refunds = per_gen.get((g["id"], "refund"), (0, 0))[1]
        if settles > 1:
            problems.append(f"generation {g['id']}: settled {settles} times")
        if g["reservation"] == "settled" and reserve - refunds != settled:
            problems.append(f"generation {g['id']}: reserved {reserve - refunds} but settled {settled}")
        if g["reservation"] == "refunded" and (reserve != refunds or settles):
            problems.append(
                f"generation {g['id']}: reserved {reserve}, refunded {refunds}, settled {settled}"
            )
        if g["reservation"] == "open" and (reserve - refunds != int(g["reserved"]) or settles):
            problems.append(
                f"generation {g['id']}: open with {g['reserved']} but movements hold {reserve - refunds}"
            )
    return problems
