"""Ledger benchmark (issue 15, finding 3): what the credit ledger costs per job, and whether that
cost grows with the ledger's history or with the batch's own size.

Each job makes the ledger calls a batch makes (enqueue, reserve, mark_running, count_request,
mark_done = settle); "reserve+settle" times reserve + mark_done, "all calls" the five.
Printed, measured side by side in one run (chunks of jobs alternate between the ledgers compared,
so a busy machine slows both alike):
  1. one batch of 1,000 jobs vs one batch of 20,000 (per job, whole batch; and the first vs the
     last 1,000 jobs of the big batch)                                   target flat (<= 1.1x)
  2. a new batch of 1,000 jobs on a fresh ledger vs on one holding 20,000 past jobs  target <= 1.1x

Usage: python bench/ledger.py [--history 20000] [--batch 1000] [--chunk 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from avatargen.ledger import MAX_GRANT, Ledger  # noqa: E402

MODEL = "model-a"


class Run:
    """One batch on one ledger, advanced a chunk at a time; per-job times kept in order."""

    def __init__(self, ledger: Ledger, batch_id: str, total: int) -> None:
        self.ledger, self.batch_id, self.total = ledger, batch_id, total
        self.done = 0
        self.reserve_settle: list[float] = []
        self.all_calls: list[float] = []
        ledger.start_batch(batch_id, ["bench"], "/tmp", "/tmp/out")

    def step(self, count: int) -> None:
        ledger, clock = self.ledger, time.perf_counter
        for _ in range(min(count, self.total - self.done)):
            key = f"{self.batch_id}-{self.done:06d}"
            self.done += 1
            t0 = clock()
            ledger.enqueue(job_record(key), self.batch_id)
            t1 = clock()
            ledger.reserve(key, MODEL, 3, self.batch_id)
            t2 = clock()
            ledger.mark_running(key)
            ledger.count_request(MODEL, limit_total=10**9, limit_model=10**9)
            t3 = clock()
            ledger.mark_done(key, MODEL, 1, 0.5)
            t4 = clock()
            self.reserve_settle.append((t2 - t1) + (t4 - t3))
            self.all_calls.append(t4 - t0)

    @property
    def finished(self) -> bool:
        return self.done >= self.total


def job_record(key: str) -> dict:
    return {
        "job_key": key,
        "input_path": f"photos/{key}.jpg",
        "input_hash": "h" * 64,
        "pose": "wave",
        "model": MODEL,
        "params": {"steps": 20, "prompt": "an avatar"},
        "seed": 7,
        "output_path": f"out/{key}.png",
    }


def open_ledger(path: Path) -> Ledger:
    ledger = Ledger(path, starter_credits=0)
    ledger.grant(MAX_GRANT, "bench")
    return ledger


def interleave(runs: list[Run], chunk: int) -> None:
    """Advance every unfinished run by one chunk in turn; the small one's chunks are spread over
    the big one's (each gets a share of chunks in proportion to its size)."""
    while not all(r.finished for r in runs):
        for run in runs:
            share = max(1, round(chunk * run.total / max(r.total for r in runs)))
            run.step(share)


def ms(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:6.3f} ms  mean {statistics.fmean(values) * 1000:6.3f} ms"
    )


def ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(a) / statistics.median(b)


def verdict(value: float, limit: float = 1.1) -> str:
    return "meets" if value <= limit else "misses"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=int, default=20000, help="jobs in the big batch / the history")
    parser.add_argument("--batch", type=int, default=1000, help="jobs in the small batch")
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    small_n, big_n = args.batch, args.history

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with open_ledger(root / "small.db") as small_l, open_ledger(root / "big.db") as big_l:
            # 1. Batch size: one batch of 1,000 and one of 20,000, side by side.
            started = time.perf_counter()
            small, big = Run(small_l, "small", small_n), Run(big_l, "big", big_n)
            interleave([small, big], args.chunk)
            build_s = time.perf_counter() - started
            # 2. History: a new batch on a fresh ledger and on the one that now holds the big batch.
            with open_ledger(root / "fresh.db") as fresh_l:
                fresh, old = Run(fresh_l, "fresh", small_n), Run(big_l, "after", small_n)
                interleave([fresh, old], args.chunk // 2)

    print(f"ledger cost per job ({sys.version.split()[0]}, SQLite WAL in {tempfile.gettempdir()})")
    print(f"1. batch size ({build_s:.1f} s for both batches)")
    print(
        f"   batch of {small_n:>6,}: reserve+settle {ms(small.reserve_settle)}   all calls {ms(small.all_calls)}"
    )
    print(f"   batch of {big_n:>6,}: reserve+settle {ms(big.reserve_settle)}   all calls {ms(big.all_calls)}")
    head, tail = big.reserve_settle[:small_n], big.reserve_settle[-small_n:]
    print(f"     its first {small_n:,}: reserve+settle {ms(head)}")
    print(f"     its last  {small_n:,}: reserve+settle {ms(tail)}")
    size_ratio = ratio(big.reserve_settle, small.reserve_settle)
    drift = ratio(tail, head)
    print(
        f"   ratio batch {big_n:,} / batch {small_n:,} per job: {size_ratio:.2f} ({verdict(size_ratio)} <= 1.1)"
    )
    print(f"   ratio last / first {small_n:,} of the big batch: {drift:.2f} ({verdict(drift)} <= 1.1)")
    print(f"2. history: a batch of {small_n:,} jobs")
    print(
        f"   fresh ledger        : reserve+settle {ms(fresh.reserve_settle)}   all calls {ms(fresh.all_calls)}"
    )
    print(
        f"   after {big_n:>6,} jobs : reserve+settle {ms(old.reserve_settle)}   all calls {ms(old.all_calls)}"
    )
    history_ratio = ratio(old.reserve_settle, fresh.reserve_settle)
    all_ratio = ratio(old.all_calls, fresh.all_calls)
    print(
        f"   ratio reserve+settle after history / fresh: {history_ratio:.2f} ({verdict(history_ratio)} <= 1.1)"
    )
    print(f"   ratio all calls      after history / fresh: {all_ratio:.2f} ({verdict(all_ratio)} <= 1.1)")


if __name__ == "__main__":
    main()
