"""Issue 23 item 9: the request count, made inside a request slot before every attempt, is one
SQL statement (checks and count together), not a BEGIN, a check, a count and a COMMIT; the
limits hold exactly as before, across connections racing for the last requests."""

from __future__ import annotations

import threading

import pytest

from avatargen.errors import LimitError
from avatargen.ledger import Ledger


def _statements(ledger, call) -> list[str]:
    seen: list[str] = []
    ledger._db.set_trace_callback(seen.append)
    try:
        call()
    finally:
        ledger._db.set_trace_callback(None)
    return seen


@pytest.mark.parametrize("limits", [(None, None), (100, None), (None, 100), (100, 100)])
def test_a_request_is_counted_in_one_statement(tmp_path, limits):
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.count_request("m")
        seen = _statements(ledger, lambda: ledger.count_request("m", *limits))
        assert len(seen) == 1, seen  # before: BEGIN IMMEDIATE, (a check,) the count, COMMIT
        assert ledger.requests_today("m") == 2


def test_the_limits_refuse_the_request_that_would_cross_them(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        for _ in range(3):
            ledger.count_request("a", limit_total=5, limit_model=3)
        with pytest.raises(LimitError, match=r"limit for a reached: 3 of 3 \(limits.models.a\)"):
            ledger.count_request("a", limit_total=5, limit_model=3)
        ledger.count_request("b", limit_total=5)
        ledger.count_request("b", limit_total=5)
        with pytest.raises(
            LimitError, match=r"daily request limit reached: 5 of 5 \(limits.daily_requests\)"
        ):
            ledger.count_request("b", limit_total=5)
        assert (ledger.requests_today("a"), ledger.requests_today("b"), ledger.requests_today()) == (3, 2, 5)


def test_connections_racing_for_the_last_requests_never_pass_the_limit(tmp_path):
    path, limit = tmp_path / "l.db", 40
    Ledger(path).close()
    ledgers = [Ledger(path) for _ in range(3)]  # one connection each, as separate processes have
    passed, refused, lock = [0], [0], threading.Lock()

    def worker(ledger) -> None:
        for _ in range(25):
            try:
                ledger.count_request("m", limit_total=limit)
            except LimitError:
                with lock:
                    refused[0] += 1
            else:
                with lock:
                    passed[0] += 1

    threads = [threading.Thread(target=worker, args=(ledgers[i % 3],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert passed[0] == limit and refused[0] == 6 * 25 - limit
    assert ledgers[0].requests_today() == limit
    for ledger in ledgers:
        ledger.close()
