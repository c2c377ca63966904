"""compare_frames vs datacompy.PandasCompare on N source/target pairs (key + digest + size).

    .venv/bin/python benchmarks/bench_validate.py --rows 1000000 --diffs 300 --runs 3

Injects `--diffs` rows of each kind (missing in target, extra in target, different digest, different size),
times both tools on the same frames (median of --runs), checks that both find the same mismatches, and
prints the peak resident memory of each phase (sampled from /proc every 5 ms: pyarrow and numpy buffers are
not seen by tracemalloc).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.validate.compare import compare_frames

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Current resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """Samples RSS in a thread while a phase runs; peak and delta over the phase's starting RSS."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.start = self.peak = rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def delta(self) -> int:
        return self.peak - self.start


def make_frames(rows: int, diffs: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Source and target frames that are identical except for `diffs` injected rows of each kind."""
    rng = np.random.default_rng(seed)
    keys = pd.array([f"data/2026/11/part-{i:09d}.parquet" for i in range(rows)], dtype="string[pyarrow]")
    digest = rng.integers(0, np.iinfo(np.uint64).max, size=rows, dtype=np.uint64, endpoint=True)
    size = rng.integers(0, 10**9, size=rows, dtype=np.int64)
    src = pd.DataFrame({"key": keys, "digest": digest, "size": size})

    picks = rng.choice(rows, size=3 * diffs, replace=False)
    drop, change_digest, change_size = picks[:diffs], picks[diffs : 2 * diffs], picks[2 * diffs :]
    dst_digest, dst_size = digest.copy(), size.copy()
    dst_digest[change_digest] ^= np.uint64(0x5A5A)  # low bits only: lost if anything went through float64
    dst_size[change_size] += 1
    keep = np.ones(rows, dtype=bool)
    keep[drop] = False
    dst = pd.DataFrame({"key": keys[keep], "digest": dst_digest[keep], "size": dst_size[keep]})
    extra = pd.DataFrame(
        {
            "key": pd.array([f"data/extra/{i:06d}" for i in range(diffs)], dtype="string[pyarrow]"),
            "digest": rng.integers(0, 2**63, size=diffs, dtype=np.uint64),
            "size": rng.integers(0, 10**9, size=diffs, dtype=np.int64),
        }
    )
    dst = pd.concat([dst, extra], ignore_index=True)
    # Shuffle the target so neither tool benefits from both sides being in the same order.
    dst = dst.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    expected = {"missing": diffs, "extra": diffs, "different": 2 * diffs}
    return src, dst, expected


def run_ours(src: pd.DataFrame, dst: pd.DataFrame) -> dict[str, int]:
    out = compare_frames(src, dst, "key", ["digest", "size"])
    counts = out["kind"].value_counts()
    return {
        "missing": int(counts.get("missing_in_target", 0)),
        "extra": int(counts.get("extra_in_target", 0)),
        "different": int(counts.get("different", 0)),
    }


def run_datacompy(src: pd.DataFrame, dst: pd.DataFrame) -> dict[str, int]:
    import datacompy

    cmp = datacompy.PandasCompare(src, dst, join_columns="key")
    return {
        "missing": len(cmp.df1_unq_rows),
        "extra": len(cmp.df2_unq_rows),
        "different": len(cmp.all_mismatch()),
    }


def timed(fn: Callable[[], dict[str, int]], runs: int) -> tuple[float, list[float], float, dict[str, int], PeakRss]:
    """(median wall s, all wall times, median CPU s, result, memory). CPU time is printed too because on
    a shared machine wall time swings with other people's load while CPU time barely moves."""
    times: list[float] = []
    cpu: list[float] = []
    result: dict[str, int] = {}
    peak = PeakRss()
    with peak:
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            result = fn()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            gc.collect()
    return statistics.median(times), times, statistics.median(cpu), result, peak


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--diffs", type=int, default=300, help="injected rows of each kind")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-datacompy", action="store_true")
    args = parser.parse_args(argv)

    with PeakRss() as gen:
        src, dst, expected = make_frames(args.rows, args.diffs)
    mem = src.memory_usage(deep=True).sum() + dst.memory_usage(deep=True).sum()
    print(
        f"rows: source {len(src):,}, target {len(dst):,}; frames {mib(int(mem))}; "
        f"generate peak RSS {mib(gen.peak)} (+{mib(gen.delta)})"
    )
    print(f"expected mismatches: {expected}")

    ours_t, ours_all, ours_cpu, ours, ours_mem = timed(lambda: run_ours(src, dst), args.runs)
    print(
        f"compare_frames : median {ours_t:7.3f} s (cpu {ours_cpu:.3f} s)  runs {[round(t, 3) for t in ours_all]}  "
        f"mismatches {ours}  peak RSS {mib(ours_mem.peak)} (+{mib(ours_mem.delta)})"
    )
    ok = ours == expected
    if not args.skip_datacompy:
        dc_t, dc_all, dc_cpu, dc, dc_mem = timed(lambda: run_datacompy(src, dst), args.runs)
        print(
            f"datacompy      : median {dc_t:7.3f} s (cpu {dc_cpu:.3f} s)  runs {[round(t, 3) for t in dc_all]}  "
            f"mismatches {dc}  peak RSS {mib(dc_mem.peak)} (+{mib(dc_mem.delta)})"
        )
        print(f"speed-up: {dc_t / ours_t:.1f}x wall, {dc_cpu / ours_cpu:.1f}x cpu  (target >= 5x)")
        print(f"mismatch counts agree: {dc == ours}")
        ok = ok and dc == ours
    print(f"process max RSS (getrusage): {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
