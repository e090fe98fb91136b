"""Issue 23 item 9: a request slot never waits on the ledger for the request count. The first
attempt of a job is counted while the job waits for its slot; one counted and never sent is
given back, so limits.daily_requests still counts exactly what was sent."""

from __future__ import annotations

import threading

from avatargen.ledger import Ledger
from avatargen.request_count import AttemptCounter
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from test_generate_e2e import make_photos


def test_the_first_attempt_is_counted_before_the_slot_and_never_twice(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        counter = AttemptCounter(ledger, "m", None, None)
        counter.count_ahead()
        assert ledger.requests_today("m") == 1  # counted while waiting for a slot
        counter.attempt()  # the first send uses it
        counter.attempt()  # a retry is counted on its own
        counter.give_back()
        assert ledger.requests_today("m") == 2
        never_sent = AttemptCounter(ledger, "m", None, None)
        never_sent.count_ahead()
        never_sent.give_back()  # stopped, failed before sending, or resumed without a submit
        assert ledger.requests_today("m") == 2


def test_at_concurrency_1_the_next_job_is_counted_while_a_request_is_in_flight(tmp_path, monkeypatch, capsys):
    from avatargen.ledger.limits import Limits
    from avatargen.providers import http_client

    in_flight, seen_at_count, lock = [0], [], threading.Lock()
    real_send, real_count = http_client.send_capped, Limits.count_request

    def counting_send(client, method, url, **kwargs):
        with lock:
            in_flight[0] += 1
        try:
            return real_send(client, method, url, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    def recording_count(self, model, *limits):
        with lock:
            seen_at_count.append(in_flight[0])
        return real_count(self, model, *limits)

    monkeypatch.setattr(http_client, "send_capped", counting_send)
    monkeypatch.setattr("avatargen.providers.http_provider.send_capped", counting_send)
    monkeypatch.setattr(Limits, "count_request", recording_count)
    make_photos(tmp_path / "photos", 4)
    with FakeEndpoint(delay=0.3) as endpoint:
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--identity-scale", "0", "--concurrency", "1", "--json",
        )  # fmt: skip
        posts = sum(1 for r in endpoint.requests if r.get("method") == "POST" and "inputs" in r)
    assert code == 0, err
    # Before: counted only once the slot was held, so never beside the one request allowed.
    assert any(n == 1 for n in seen_at_count), seen_at_count
    from avatargen.ledger import open_ledger

    with open_ledger() as ledger:
        assert ledger.requests_today() == posts == 4  # exactly what was sent
