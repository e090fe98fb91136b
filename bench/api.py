"""What the service (`avatargen api`, issue 21) costs, measured in one run against loopback fakes.

  (a) accept latency of POST generate, 50 concurrent uploads of a 1 MP JPEG: p50/p99, and the
      ratio to a bare Starlette handler that stores the same bytes (both real processes,
      measured in turns); goal <= 1.5x, p99 < 100 ms
  (b) end-to-end wall of the same N jobs (default 200) through the service vs `avatargen
      generate`, same fake endpoint, same parallelism; goal <= 1.1x
  (c) claim cost (claim + settle) with 100,000 vs 1,000 jobs queued, SQLite and PostgreSQL;
      goal <= 1.2x
  (d) fairness: user A queues 1,000 jobs, then user B queues 1: how many jobs start before B's

Usage: python bench/api.py [--uploads 500] [--jobs 200] [--queued 100000] [--skip a,b,c,d]
PostgreSQL runs when its server programs are found (AVATARGEN_PG_BIN or /usr/lib/postgresql/15/bin).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(SRC))

from fake_endpoint import FakeEndpoint  # noqa: E402
from service_process import ApiProcess, env_for, write_config  # noqa: E402

B = "/api/apps/avatar-generator"
SD15 = "avatar-generator:controlnet-openpose-sd15"

BARE = textwrap.dedent(
    """
    import os, secrets, sys, socket
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    import uvicorn
    folder = sys.argv[1]
    async def handler(request):
        form = await request.form()
        data = await form["image"].read()
        name = os.path.join(folder, secrets.token_hex(12) + ".jpg")
        with open(name, "wb") as fh:
            fh.write(data)
        return JSONResponse({"generationId": secrets.token_hex(12), "status": "pending"}, status_code=202)
    app = Starlette(routes=[Route("/api/apps/avatar-generator/generate", handler, methods=["POST"])])
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(1024)
    print(f"bare on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(sockets=[sock])
    """
)


def photo_1mp() -> bytes:
    from PIL import Image

    img = Image.effect_noise((1000, 1000), 40).convert("RGB")
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _burst(url: str, token: str | None, data: bytes, count: int, concurrency: int) -> list[float]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def one():
            async with sem:
                started = time.perf_counter()
                r = await client.post(f"{B}/generate", files={"image": ("p.jpg", data, "image/jpeg")},
                                      data={"poseTemplateId": "wave", "quality": "sd"})  # fmt: skip
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 202, r.text

        await asyncio.gather(*(one() for _ in range(count)))
    return latencies


def bench_accept(args, tmp: Path) -> None:
    from avatargen.service.accounts import Accounts
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate

    home = tmp / "accept"
    write_config(home, "[service]\nrate_per_minute = 0\nmax_pending_per_user = 1000000\n")
    db = Database(None, home / "data")
    migrate(db)
    token = Accounts(db).add("bench", "basic", 10**9)[1]
    data = photo_1mp()
    bare_dir = tmp / "bare"
    bare_dir.mkdir()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE, str(bare_dir)], stdout=subprocess.PIPE, env=env_for(home)
    )
    bare_url = bare.stdout.readline().decode().split(" on ")[1].strip()
    with FakeEndpoint() as fake, ApiProcess(home, fake.url, workers=0) as api:
        results: dict[str, list[float]] = {"service": [], "bare": []}
        asyncio.run(_burst(api.url, token, data, 50, 50))  # warm both
        asyncio.run(_burst(bare_url, None, data, 50, 50))
        per_round = max(50, args.uploads // 4)
        for _ in range(4):  # in turns, so the machine's noise hits both alike
            results["service"] += asyncio.run(_burst(api.url, token, data, per_round, 50))
            results["bare"] += asyncio.run(_burst(bare_url, None, data, per_round, 50))
    bare.terminate()
    bare.wait()
    s50, s99 = pct(results["service"], 0.5) * 1000, pct(results["service"], 0.99) * 1000
    b50, b99 = pct(results["bare"], 0.5) * 1000, pct(results["bare"], 0.99) * 1000
    print(f"(a) accept, 50 concurrent 1 MP uploads ({len(data) // 1024} KB), {len(results['service'])} each:")
    print(
        f"    service p50 {s50:.1f} ms  p99 {s99:.1f} ms | bare starlette p50 {b50:.1f} ms  p99 {b99:.1f} ms"
    )
    print(f"    ratio p50 {s50 / b50:.2f}x  p99 {s99 / b99:.2f}x   (goal <= 1.5x, p99 < 100 ms)")
    db.close()


def bench_end_to_end(args, tmp: Path) -> None:
    import httpx
    from PIL import Image

    from avatargen.service.accounts import Accounts
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate

    jobs = args.jobs
    photos = tmp / "photos"
    photos.mkdir()
    for i in range(jobs):
        Image.new("RGB", (256, 256), (i % 256, (i * 7) % 256, 90)).save(photos / f"p{i:04d}.jpg")
    workers = 4
    with FakeEndpoint(delay=args.delay) as fake:
        # The CLI: one batch of the same photos, same endpoint, same parallelism.
        cli_home = tmp / "cli"
        write_config(cli_home, f"concurrency = {workers}\n[credits]\nstarter = 100000\n")
        env = env_for(cli_home)
        env["AVATARGEN_HOME"] = str(cli_home)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "avatargen", "generate", str(photos), "--pose", "wave", "--endpoint", fake.url,
             "-o", str(tmp / "out"), "--yes", "--identity-scale", "0", "-c", str(workers), "--json"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        cli_wall = time.perf_counter() - started
        # The service: the same photos POSTed, then polled until all are done.
        home = tmp / "svc"
        write_config(
            home,
            f"[service]\nrate_per_minute = 0\nuser_concurrency = {workers}\nmax_pending_per_user = 100000\n",
        )
        db = Database(None, home / "data")
        migrate(db)
        token = Accounts(db).add("bench", "basic", 10**9)[1]
        with (
            ApiProcess(home, fake.url, workers=workers) as api,
            httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c,
        ):
            started = time.perf_counter()

            def upload(path: Path) -> int:  # many users upload at once, not one after another
                r = c.post(f"{B}/generate", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                           data={"poseTemplateId": "wave", "quality": "sd"})  # fmt: skip
                return r.status_code

            with ThreadPoolExecutor(8) as uploads:
                assert set(uploads.map(upload, sorted(photos.iterdir()))) == {202}
            while True:
                with db.read() as cur:
                    if not cur.scalar(
                        "SELECT COUNT(*) FROM svc_generations WHERE status IN ('pending', 'processing')"
                    ):
                        break
                time.sleep(0.02)
            svc_wall = time.perf_counter() - started
        db.close()
    print(
        f"(b) end to end, {jobs} jobs, {workers} in parallel, fake endpoint {args.delay * 1000:.0f} ms/image:"
    )
    print(f"    avatargen generate {cli_wall:.2f} s (process start included) | service {svc_wall:.2f} s "
          f"(uploads + queue + polling) -> {svc_wall / cli_wall:.2f}x   (goal <= 1.1x)")  # fmt: skip


def _claim_cost(url: str | None, data_dir: Path, queued: int, claims: int = 300) -> float:
    from avatargen.service.accounts import Accounts
    from avatargen.service.db import Database
    from avatargen.service.migrations import migrate
    from avatargen.service.queue import NewJob, Queue

    db = Database(url, data_dir)
    migrate(db)
    accounts = Accounts(db)
    queue = Queue(db)
    users = [accounts.add(f"u{i}", "basic", 10**9)[0] for i in range(10)]
    params = {"pose_spec": "wave"}
    per_user = queue_size = queued // len(users)
    for n, user in enumerate(users):
        left = per_user
        while left:
            chunk = min(left, 5000)
            queue.accept(user.id, {"path": "/x", "sha256": "0" * 64, "content_type": "image/jpeg", "width": 1, "height": 1} if left == per_user else None,
                         f"photo{n}", [NewJob(SD15, "wave", "sd", params, 1, 1, 0)] * chunk)  # fmt: skip
            left -= chunk
    del queue_size
    if db.postgres:
        with db.read() as cur:
            cur.execute("ANALYZE")
    timings = []
    for _ in range(claims):
        started = time.perf_counter()
        job = queue.claim("bench-worker", user_cap=10**6)
        queue.settle(job["id"], "bench-worker", SD15, "/o.png", 1, 0.0)
        timings.append(time.perf_counter() - started)
    db.close()
    return statistics.median(timings)


def bench_claims(args, tmp: Path) -> None:
    from service_db import PG_BIN, fresh_postgres, running_postgres

    print(f"(c) claim + settle, median of 300, with 1,000 vs {args.queued:,} jobs queued (10 users):")
    small = _claim_cost(f"sqlite:///{tmp / 'c-small.db'}", tmp, 1000)
    large = _claim_cost(f"sqlite:///{tmp / 'c-large.db'}", tmp, args.queued)
    print(
        f"    SQLite      {small * 1000:.2f} ms vs {large * 1000:.2f} ms -> {large / small:.2f}x   (goal <= 1.2x)"
    )
    if not (PG_BIN / "pg_ctl").exists():
        print("    PostgreSQL  not measured: no server programs (apt-get install postgresql)")
        return
    with running_postgres() as base:
        small = _claim_cost(fresh_postgres(base), tmp, 1000)
        large = _claim_cost(fresh_postgres(base), tmp, args.queued)
    print(
        f"    PostgreSQL  {small * 1000:.2f} ms vs {large * 1000:.2f} ms -> {large / small:.2f}x   (goal <= 1.2x)"
    )


def bench_fairness(args, tmp: Path) -> None:
    from avatargen.catalog import load_catalog
    from avatargen.service.accounts import Accounts
    from avatargen.service.config import ServiceConfig
    from avatargen.service.db import Database
    from avatargen.service.engine import BackendOptions, SharedEngine, run_settings
    from avatargen.service.migrations import migrate
    from avatargen.service.queue import NewJob, Queue
    from avatargen.service.worker import WorkerPool
    from service_process import jpeg

    db = Database(None, tmp / "fair")
    migrate(db)
    accounts = Accounts(db)
    a = accounts.add("a", "basic", 10**6)[0]
    b = accounts.add("b", "basic", 10**6)[0]
    photo = tmp / "fair.jpg"
    photo.write_bytes(jpeg(64, 64))
    queue = Queue(db)
    params = {"pose_spec": "wave", "prompt": "p", "negative_prompt": "n", "steps": 4, "guidance_scale": 7.5,
              "controlnet_conditioning_scale": 1.0, "width": 512, "height": 512, "strength": None}  # fmt: skip
    row = {"path": str(photo), "sha256": "c" * 64, "content_type": "image/jpeg", "width": 64, "height": 64}
    queue.accept(a.id, row, "pa", [NewJob(SD15, "wave", "sd", params, i, 1, 0) for i in range(1000)])
    with FakeEndpoint(delay=0.05) as fake:
        config = ServiceConfig(data_dir=tmp / "fair", user_concurrency=2)
        pool = WorkerPool(
            queue,
            SharedEngine(load_catalog(), run_settings({}, BackendOptions(endpoint=fake.url))),
            config,
            2,
        )
        pool.start()
        time.sleep(2.0)  # A's jobs are running
        [mine] = queue.accept(b.id, row, "pb", [NewJob(SD15, "wave", "sd", params, 0, 1, 0)])
        submitted = time.time()
        while (got := queue.get(mine["generationId"], None))["started_at"] is None:
            time.sleep(0.005)
        pool.shutdown()
    with db.read() as cur:
        before = cur.scalar("SELECT COUNT(*) FROM svc_generations WHERE user_id = ? AND started_at > ? AND started_at < ?",
                            (a.id, submitted, got["started_at"]))  # fmt: skip
        done = cur.all(
            "SELECT started_at, completed_at FROM svc_generations WHERE status = 'completed' AND user_id = ?",
            (a.id,),
        )
    per_job = statistics.median(r["completed_at"] - r["started_at"] for r in done) if done else float("nan")
    wait = got["started_at"] - submitted
    print(f"(d) fairness: A queued 1,000, then B queued 1: {before} of A's jobs started before B's; "
          f"B waited {wait * 1000:.0f} ms = {wait / per_job:.2f} jobs' time (a job: {per_job * 1000:.0f} ms)   (goal: within 2)")  # fmt: skip
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=400)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("NO_COLOR", "1")
    with tempfile.TemporaryDirectory(prefix="avatargen-bench-api-") as tmp:
        for key, fn in (
            ("a", bench_accept),
            ("b", bench_end_to_end),
            ("c", bench_claims),
            ("d", bench_fairness),
        ):
            if key not in skip:
                folder = Path(tmp) / key
                folder.mkdir()
                fn(args, folder)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
