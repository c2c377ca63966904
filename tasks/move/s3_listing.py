"""Parallel listing of a source bucket for planning: split the key space, list the pieces concurrently.

A sequential listing of 10^9 keys is 10^6 LIST calls one after the other (about a day at ~80 ms each).
Here the listing starts as one piece; once it has listed a couple of pages (a small bucket stops there
and pays nothing extra), what is left is cut at the bucket's common prefixes (Delimiter "/", a level
deeper while there are few), and then, while fewer pieces are open than there are listing threads, every
piece that has listed a couple of pages is cut again at split points between its last listed key and its
upper bound. Pieces are listed a page at a time on a bounded thread pool, counting keys and keeping only
every `step`-th key as a boundary, so memory stays O(partitions) whatever the object count (the pure
parts are in tasks/move/s3_plan.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tasks.move.s3_plan import SAMPLE_BUDGET, Piece, common_prefix, row_sum, split_points

LIST_WORKERS = 16  # LIST calls in flight while planning one bucket
TARGET_PIECES = 2 * LIST_WORKERS  # pieces kept open, so every listing thread has one
PREFIX_DEPTH = 3  # levels of common prefixes looked at while there are fewer than TARGET_PIECES
SPLIT_AFTER_PAGES = 2  # a piece is cut only once it has listed this many pages
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

    @property
    def marked(self) -> tuple[int, int]:
        """(objects, bytes) the survey's `mark` picked."""
        return sum(p.marked for p in self.pieces), sum(p.marked_bytes for p in self.pieces)


class _Calls:
    """LIST calls made, counted from the listing threads."""

    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.n += 1


def survey(
    s3: Any,
    bucket: str,
    step: int = 100,
    workers: int = LIST_WORKERS,
    mark: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Survey:
    """Count every current object of `bucket` (and sample boundaries every `step` keys), listing in parallel;
    `mark` picks listing entries to count apart (Survey.marked)."""
    calls = _Calls()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3plan") as pool:
        out = Survey(pieces=[Piece(lo=None, hi=None)], step=step)
        discovered = False
        while True:
            open_ = [p for p in out.pieces if not p.done]
            if not open_:
                break
            out.rounds += 1
            out.peak_open = max(out.peak_open, len(open_))
            for _ in pool.map(lambda p: _page(s3, bucket, p, out.step, calls, mark), open_):
                pass
            while sum(len(p.samples) for p in out.pieces) > SAMPLE_BUDGET:
                out.step *= 2
                for p in out.pieces:
                    p.thin(out.step)
            still = [p for p in out.pieces if not p.done]
            if not still or len(still) >= TARGET_PIECES:
                continue
            if not discovered and still[0].pages >= SPLIT_AFTER_PAGES:
                # A bucket past a couple of pages: cut what is left of it at its common prefixes.
                discovered = True
                want = min(TARGET_PIECES, MAX_FANOUT * still[0].pages)  # no more pieces than its pages justify
                above = [s for s in _prefix_splits(s3, bucket, pool, calls, want) if s > str(still[0].cursor)]
                out.pieces.extend(_cut(still[0], above))
                out.pieces = sorted(out.pieces, key=lambda p: (p.lo is not None, p.lo or ""))
                continue
            out.pieces = _split_open(out.pieces, min(MAX_FANOUT, -(-TARGET_PIECES // len(still))))
    out.list_calls = calls.n
    return out


def _prefix_splits(s3: Any, bucket: str, pool: ThreadPoolExecutor, calls: _Calls, want: int) -> list[str]:
    """About `want` common prefixes ("a/", "a/b/", ...) as split points, a level deeper while there are fewer.

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
        if not level or len(found) >= want:
            break
    splits = sorted(found)
    if len(splits) > want:
        splits = [splits[i * len(splits) // want] for i in range(want)]
    return splits


def _page(
    s3: Any, bucket: str, piece: Piece, step: int, calls: _Calls, mark: Callable[[Mapping[str, Any]], bool] | None
) -> None:
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
    piece.pages += 1
    piece.take((_row(o, mark) for o in contents), step)
    if not resp.get("IsTruncated") or not contents:
        piece.done = True


def _row(obj: Mapping[str, Any], mark: Callable[[Mapping[str, Any]], bool] | None) -> tuple[str, int, bool, int]:
    """(key, size, marked, row_sum) of one listing entry, as Piece.take counts it."""
    key, size = str(obj["Key"]), int(obj.get("Size", 0))
    return key, size, bool(mark and mark(obj)), row_sum(key, str(obj.get("ETag", "")), size)


def _cut(piece: Piece, points: list[str]) -> list[Piece]:
    """New pieces (m1, m2] ... (mk, hi] cut off an open piece at increasing points above its cursor;
    the piece itself keeps (lo, m1] and goes on from its cursor."""
    if not points:
        return []
    new = [Piece(lo=lo, hi=hi) for lo, hi in zip(points, [*points[1:], piece.hi], strict=True)]
    piece.hi = points[0]
    return new


def _split_open(pieces: list[Piece], parts: int) -> list[Piece]:
    """Cut every open piece that has listed SPLIT_AFTER_PAGES pages at points between its cursor and its
    bound, in at most as many parts as it has pages: the extra calls never outgrow the calls made (a
    small bucket pays nothing), while a big one doubles its pieces round after round."""
    out: list[Piece] = []
    for p in pieces:
        out.append(p)
        if p.done or p.cursor is None or p.pages < SPLIT_AFTER_PAGES:
            continue
        out.extend(_cut(p, split_points(p.cursor, p.hi, min(parts, p.pages))))
    return out
