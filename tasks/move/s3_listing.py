"""Parallel listing of a source bucket for planning: split the key space, list the pieces concurrently.

A sequential listing of 10^9 keys is 10^6 LIST calls one after the other (about a day at ~80 ms each).
Here the key space is cut first at the bucket's common prefixes (Delimiter "/", a level deeper while
there are few), then while fewer pieces are open than there are listing threads, every open piece is
cut again at split points between its last listed key and its upper bound. Pieces are listed a page
at a time on a bounded thread pool, counting keys and keeping only every `step`-th key as a boundary,
so memory stays O(partitions) whatever the object count (the pure parts are in tasks/move/s3_plan.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tasks.move.s3_plan import SAMPLE_BUDGET, Piece, common_prefix, split_points

LIST_WORKERS = 16  # LIST calls in flight while planning one bucket
TARGET_PIECES = 2 * LIST_WORKERS  # pieces kept open, so every listing thread has one
MAX_PIECES = 1024  # split points taken from common prefixes at most (evenly spread)
PREFIX_DEPTH = 3  # levels of common prefixes looked at while there are fewer than TARGET_PIECES
MAX_FANOUT = 8  # new pieces cut from one open piece per round at most
PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys per call


@dataclass
class Survey:
    """What a parallel listing measured: the pieces in key order, the LIST calls it took, the sampling step."""

    pieces: list[Piece]
    list_calls: int = 0
    step: int = 1
    rounds: int = 0
    peak_open: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def objects(self) -> int:
        return sum(p.count for p in self.pieces)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.pieces)


class _Calls:
    """LIST calls made, counted from the listing threads."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.n += 1


def survey(s3: Any, bucket: str, step: int = 100, workers: int = LIST_WORKERS) -> Survey:
    """Count every current object of `bucket` (and sample boundaries every `step` keys), listing in parallel."""
    calls = _Calls()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3plan") as pool:
        splits = _prefix_splits(s3, bucket, pool, calls)
        bounds: list[str | None] = [None, *splits]
        pieces = [Piece(lo=lo, hi=hi) for lo, hi in zip(bounds, [*splits, None], strict=True)]
        out = Survey(pieces=pieces, step=step)
        while True:
            open_ = [p for p in out.pieces if not p.done]
            if not open_:
                break
            out.rounds += 1
            out.peak_open = max(out.peak_open, len(open_))
            for _ in pool.map(lambda p: _page(s3, bucket, p, out.step, calls), open_):
                pass
            while sum(len(p.samples) for p in out.pieces) > SAMPLE_BUDGET:
                out.step *= 2
                for p in out.pieces:
                    p.thin(out.step)
            still = sum(not p.done for p in out.pieces)
            if still < TARGET_PIECES:
                out.pieces = _split_open(out.pieces, min(MAX_FANOUT, -(-TARGET_PIECES // still)) if still else 2)
    out.list_calls = calls.n
    return out


def _prefix_splits(s3: Any, bucket: str, pool: ThreadPoolExecutor, calls: _Calls) -> list[str]:
    """Common prefixes ("a/", "a/b/", ...) as split points, a level deeper while there are few of them.

    The first page of each delimiter listing is enough: the split points only balance the work, the
    tiling is exact whatever they are."""
    found: set[str] = set()
    level = [""]
    for _ in range(PREFIX_DEPTH):

        def prefixes(prefix: str) -> list[str]:
            calls.add()
            resp = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=PAGE)
            return [str(cp["Prefix"]) for cp in resp.get("CommonPrefixes", [])]

        level = [cp for batch in pool.map(prefixes, level) for cp in batch if cp not in found]
        found.update(level)
        if not level or len(found) >= TARGET_PIECES:
            break
    splits = sorted(found)
    if len(splits) > MAX_PIECES:
        splits = [splits[i * len(splits) // MAX_PIECES] for i in range(MAX_PIECES)]
    return splits


def _page(s3: Any, bucket: str, piece: Piece, step: int, calls: _Calls) -> None:
    """List the next page of one piece: after its cursor (or its lower bound), within its common prefix."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": PAGE}
    after = piece.cursor if piece.cursor is not None else piece.lo
    if after is not None:
        kwargs["StartAfter"] = after
    prefix = common_prefix(piece.lo, piece.hi)
    if prefix:
        kwargs["Prefix"] = prefix
    calls.add()
    resp = s3.list_objects_v2(**kwargs)
    contents = resp.get("Contents", [])
    piece.take(((str(o["Key"]), int(o.get("Size", 0))) for o in contents), step)
    if not resp.get("IsTruncated") or not contents:
        piece.done = True


def _split_open(pieces: list[Piece], parts: int) -> list[Piece]:
    """Cut every open piece that has listed something in `parts` between its cursor and its bound: (lo, m1]
    goes on from its cursor, (m1, m2] ... (mk, hi] are new pieces."""
    out: list[Piece] = []
    for p in pieces:
        out.append(p)
        if p.done or p.cursor is None:
            continue
        points = split_points(p.cursor, p.hi, parts)
        if not points:
            continue
        out.extend(Piece(lo=lo, hi=hi) for lo, hi in zip(points, [*points[1:], p.hi], strict=True))
        p.hi = points[0]
    return out
