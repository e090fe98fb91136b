"""Per-job overhead of the batch engine (issue 15, finding 5): fewer ledger transactions per job
without a window where credits are held by a job still shown as queued, --concurrency bounding
the requests in flight (not the photo work and writes around them), and a connection pool that
keeps a connection per request in flight."""

from __future__ import annotations

import threading

import pytest

from avatargen.errors import CreditsError
from avatargen.ledger import JobBusy, Ledger
from cli_helpers import run_main
from fake_endpoint import FakeEndpoint
from test_generate_e2e import make_photos
from test_ledger import record


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.db", starter_credits=10) as led:
        yield led


# ------------------------------------------------------------------ ledger transactions
def test_reserve_and_start_holds_the_credits_and_marks_the_job_running_together(ledger):
    ledger.enqueue_many([record("a"), record("b")], "b1")
    ledger.reserve_and_start("a", "model-a", 4, "b1")
    assert ledger.job("a")["status"] == "running" and ledger.job("a")["started_at"]
    assert ledger.totals().reserved == 4 and ledger.balance() == 6
    # Refused (not enough credits, or the job is held): nothing reserved, the job stays queued.
    with pytest.raises(CreditsError):
        ledger.reserve_and_start("b", "model-a", 7, "b1")
    with pytest.raises(JobBusy):
        ledger.reserve_and_start("a", "model-a", 1, "b1")
    assert ledger.job("b")["status"] == "queued" and ledger.job("b")["started_at"] is None
    assert ledger.totals().reserved == 4 and ledger.balance() == 6
    assert ledger.verify().ok


def test_enqueue_many_records_a_plan_and_adopts_earlier_jobs_like_enqueue(ledger):
    ledger.enqueue(record("done", "/out/one.png"), "b1")
    ledger.reserve_and_start("done", "model-a", 1, "b1")
    ledger.mark_done("done", "model-a", 1, 0.1)
    statuses = ledger.enqueue_many([record("new", "/out/new.png"), record("done", "/elsewhere.png")], "b2")
    assert statuses == ["queued", "done"]
    assert ledger.job("done")["output_path"] == "/out/one.png"  # where it really was written
    assert ledger.job("done")["batch_id"] == ledger.job("new")["batch_id"] == "b2"


@pytest.mark.slow
def test_a_batch_commits_the_ledger_at_most_three_times_per_job(tmp_path, monkeypatch, capsys):
    """Plan (one commit for all), reserve + start, the request count, settle: 5 per job before."""
    from avatargen.ledger import store

    commits = []
    real_tx = store.Store._tx

    def counting_tx(self):
        commits.append(1)
        return real_tx(self)

    monkeypatch.setattr(store.Store, "_tx", counting_tx)
    make_photos(tmp_path / "photos", 8)
    with FakeEndpoint() as endpoint:
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--identity-scale", "0", "--json",
        )  # fmt: skip
    assert code == 0, err
    fixed = 6  # migrations, batch start and finish, reconcile and the like, once per run
    assert len(commits) <= 3 * 8 + fixed, len(commits)


# ------------------------------------------------------------------ concurrency
@pytest.mark.slow
def test_concurrency_bounds_requests_in_flight_not_the_work_around_them(tmp_path, monkeypatch, capsys):
    """With --concurrency 1, the next request goes out while the previous output is written."""
    import avatargen.images
    from avatargen.providers import http_client

    in_flight = peak = 0
    lock = threading.Lock()
    real_send = http_client.send_capped

    def counting_send(client, method, url, **kwargs):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return real_send(client, method, url, **kwargs)
        finally:
            with lock:
                in_flight -= 1

    posts = []
    overlapped = []
    real_write = avatargen.images.write_output

    def slow_write(path, image, meta, overwrite=False, png_chunks=None):
        # Hold the first output until another job's request was sent (or give up after 5 s).
        if not overlapped:
            seen = len(posts)
            deadline = threading.Event()
            for _ in range(100):
                if len(posts) > seen:
                    break
                deadline.wait(0.05)
            overlapped.append(len(posts) > seen)
        return real_write(path, image, meta, overwrite=overwrite, png_chunks=png_chunks)

    monkeypatch.setattr("avatargen.providers.http_provider.send_capped", counting_send)
    monkeypatch.setattr(avatargen.images, "write_output", slow_write)
    make_photos(tmp_path / "photos", 4)
    with FakeEndpoint(delay=0.05) as endpoint:
        real_post = endpoint.requests

        class Watching(list):
            def append(self, item):
                if item.get("method") == "POST":
                    posts.append(1)
                super().append(item)

        endpoint.requests = Watching(real_post)
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--identity-scale", "0", "--concurrency", "1", "--json",
        )  # fmt: skip
    assert code == 0, err
    assert peak == 1  # never more than --concurrency requests at once
    assert overlapped == [True]  # the first output was written while the next request ran


# ------------------------------------------------------------------ the photo's preparation
def _photo(path, size=(768, 1024)):
    from PIL import Image, ImageDraw

    img = Image.linear_gradient("L").resize(size).convert("RGB")
    ImageDraw.Draw(img).ellipse((100, 200, 600, 900), fill=(200, 40, 90))
    img.save(path, quality=90)
    return path


@pytest.mark.parametrize(
    "size, lossless, method",
    [
        ((768, 1024), False, "BOX"),  # shrunk for the VAE: the area average
        ((300, 400), False, "BILINEAR"),  # enlarged: a box would show blocks
        ((768, 1024), True, "BICUBIC"),  # read as it is (control image, editing model)
    ],
)
def test_the_init_image_filter_suits_its_use(tmp_path, size, lossless, method):
    """The JPEG init image goes through the VAE and is noised: the cheapest antialiased filter.
    A photo read as a control image or kept by an editing model (PNG) keeps bicubic."""
    import io

    from PIL import Image, ImageOps

    from avatargen.photo_prep import PhotoCache

    path = _photo(tmp_path / "p.jpg", size)
    cache = PhotoCache(keep=2, min_side=1024)
    with Image.open(path) as img:
        upright = img.convert("RGB")
    sent = cache.init_image(path, "key", 512, 512, lossless)
    with Image.open(io.BytesIO(sent)) as got:
        assert got.format == ("PNG" if lossless else "JPEG") and got.size == (512, 512)
    expected = ImageOps.fit(upright, (512, 512), getattr(Image.Resampling, method))
    buffer = io.BytesIO()
    expected.save(buffer, format="PNG") if lossless else expected.save(buffer, format="JPEG", quality=95)
    assert sent == buffer.getvalue()


# ------------------------------------------------------------------ connections
@pytest.mark.slow
def test_past_twenty_requests_in_flight_each_connection_is_kept(tmp_path, monkeypatch, capsys):
    """--concurrency 24: 24 connections serve all 72 requests (httpx's default pool keeps 20
    alive, so the others were opened again for each request)."""
    make_photos(tmp_path / "photos", 72)
    assert run_main(monkeypatch, capsys, "credits", "add", "200")[0] == 0
    with FakeEndpoint(delay=0.3) as endpoint:
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--identity-scale", "0", "--concurrency", "24", "--json",
        )  # fmt: skip
        connections = {r["client"] for r in endpoint.requests if r["method"] == "POST"}
    assert code == 0, err
    assert endpoint.posts == 72 and len(connections) <= 24, len(connections)


@pytest.mark.slow
def test_a_big_photo_is_decoded_only_as_large_as_the_batch_sends_it(tmp_path, monkeypatch, capsys):
    """No face crop, no pose from the photo: a 512x512 model's batch decodes at >= 512 a side
    (a 12 MP JPEG at 1/4 scale: 25 % less CPU than the catalog's 1024)."""
    import avatargen.images

    sides = []
    real_load = avatargen.images.load_photo

    def recording_load(path, min_side=None):
        sides.append(min_side)
        return real_load(path, min_side=min_side)

    monkeypatch.setattr(avatargen.images, "load_photo", recording_load)
    (tmp_path / "photos").mkdir()
    _photo(tmp_path / "photos" / "big.jpg", size=(2400, 3200))
    with FakeEndpoint() as endpoint:
        code, _out, err = run_main(
            monkeypatch, capsys, "generate", str(tmp_path / "photos"), "--endpoint", endpoint.url,
            "-o", str(tmp_path / "out"), "--model", "controlnet-openpose-sd15", "--identity-scale", "0",
            "--strength", "0.75", "--no-fallback", "--json",
        )  # fmt: skip
    assert code == 0, err
    assert sides == [512]


# ------------------------------------------------------------------ planning
def test_a_big_folder_is_hashed_on_threads_with_the_same_result_and_first_error(tmp_path, monkeypatch):
    import os
    import threading

    import avatargen.identity as identity
    from avatargen.errors import InputError
    from avatargen.images import file_hash

    paths = []
    for i in range(40):
        path = tmp_path / f"p{i:02d}.jpg"
        path.write_bytes(os.urandom(3000) + bytes([i]))
        paths.append(path)
    threads = set()
    real = identity.hash_photo
    monkeypatch.setattr(
        identity, "hash_photo", lambda p: threads.add(threading.current_thread().name) or real(p)
    )
    assert identity.hash_photos(paths) == {p: file_hash(p) for p in paths}
    assert threading.current_thread().name not in threads  # read on the pool's threads
    paths[30].unlink()
    paths[7].unlink()
    with pytest.raises(InputError, match="p07.jpg: cannot be read"):  # the first in order
        identity.hash_photos(paths)


def test_a_photo_is_let_go_of_once_its_last_job_took_what_it_needed(tmp_path):
    """A decoded phone photo is MBs: held for as long as a job still needs it, not until
    the cache happens to push it out."""
    from avatargen.photo_prep import PhotoCache

    a, b = _photo(tmp_path / "a.jpg"), _photo(tmp_path / "b.jpg", (600, 800))
    cache = PhotoCache(keep=8)
    cache.expect({"a": 2, "b": 1})
    for path, key in ((a, "a"), (b, "b"), (a, "a")):
        cache.init_image(path, key, 512, 512, lossless=False)
    assert cache.held == 2 and cache.decoded == 2  # the second job of a reuses its decode
    cache.release("a")
    assert cache.held == 2  # one more job of a to come
    cache.release("b")
    cache.release("a")
    assert cache.held == 0
    cache.init_image(a, "a", 768, 768, lossless=False)  # a later need (a fallback): decoded again
    assert cache.decoded == 3 and cache.held == 1
