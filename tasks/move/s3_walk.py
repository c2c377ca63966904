"""A key range walked page by page: both listings merged in key order, the manifest read alongside, sums built as
the walk goes. What copy_partition holds at once is a page of each side and its window of copies in flight, never
the range, so a task's memory does not grow with its partition's size (up to MAX_PARTITION_KEYS keys).

S3 lists keys "in UTF-8 character encoding in lexicographical order" and DynamoDB orders string sort keys by UTF-8
bytes: for valid strings both are Python's str order, so one comparison merges all three streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from tasks.move.checkpoints import CheckpointStore
from tasks.move.s3_plan import ROW_SUM_MOD, listing_sum, row_sum

Row = dict[str, Any]
T = TypeVar("T")
LIST_PAGE = 1000  # keys per ListObjectsV2 page (S3's maximum): what the walk holds of each side at a time


def row(obj: dict[str, Any]) -> Row:
    """One ListObjectsV2 entry as the copy loop reads it."""
    return {
        "key": obj["Key"],
        "etag": obj["ETag"],
        "size": int(obj["Size"]),
        "lastModified": obj.get("LastModified"),
        "storageClass": obj.get("StorageClass"),
        "checksumAlgorithm": obj.get("ChecksumAlgorithm"),  # which checksums S3 holds, if any
        "checksumType": obj.get("ChecksumType"),
    }


def range_pages(s3: Any, bucket: str, start_after: str | None, end: str | None) -> Iterator[list[Row]]:
    """Pages of current objects with start_after < key <= end, in key order; stops at `end` rather than fetching
    the next page to see a key past it."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "PaginationConfig": {"PageSize": LIST_PAGE}}
    if start_after is not None:
        kwargs["StartAfter"] = start_after
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        rows = [row(o) for o in page.get("Contents", []) if end is None or o["Key"] <= end]
        if rows:
            yield rows
        last = page.get("Contents", [])[-1:]
        if end is not None and last and last[0]["Key"] >= end:
            return


def read_ahead(pages: Iterator[list[T]], pool: ThreadPoolExecutor) -> Iterator[T]:
    """The items of `pages`, the next page fetched in `pool` while this one is walked (one page ahead, no more).

    Only one fetch per iterator is ever outstanding, so a generator is never advanced from two threads at once."""
    ahead = pool.submit(next, pages, None)
    while True:
        page = ahead.result()
        if page is None:
            return
        ahead = pool.submit(next, pages, None)
        yield from page


def merged(src: Iterator[Row], dst: Iterator[Row]) -> Iterator[tuple[str, Row | None, Row | None]]:
    """(key, source row or None, target row or None) over two key-ordered listings, in key order."""
    s, d = next(src, None), next(dst, None)
    while s is not None or d is not None:
        if d is None or (s is not None and s["key"] < d["key"]):
            assert s is not None
            yield s["key"], s, None
            s = next(src, None)
        elif s is None or d["key"] < s["key"]:
            yield d["key"], None, d
            d = next(dst, None)
        else:
            yield s["key"], s, d
            s, d = next(src, None), next(dst, None)


class Records:
    """The manifest records of one range, read in key order beside the listings, and only once a key both sides
    hold asks for one: a first pass over an empty target reads none."""

    def __init__(self, store: CheckpointStore, pk: str, start_after: str | None, end: str | None) -> None:
        self._query = (store, pk, start_after, end)
        self._it: Iterator[tuple[str, dict[str, Any]]] | None = None
        self._at: tuple[str, dict[str, Any]] | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of `key`, or None; keys must be asked for in increasing order."""
        if self._it is None:
            store, pk, start_after, end = self._query
            self._it = store.query_range(pk, start_after, end, attributes=["srcEtag", "dstEtag"])
            self._at = next(self._it, None)
        while self._at is not None and self._at[0] < key:
            self._at = next(self._it, None)
        return self._at[1] if self._at is not None and self._at[0] == key else None


@dataclass
class Done:
    """What a range that finished clean stores (its objects, bytes, and both sides' listing sums), added up one
    proven-done object at a time in any order: the sums are s3_plan.row_sum's, mod 2^256."""

    objects: int = 0
    bytes: int = 0
    src: int = 0
    dst: int = 0

    def add(self, key: str, src_etag: str, src_size: int, dst_etag: str, dst_size: int) -> None:
        self.objects += 1
        self.bytes += src_size
        self.src = (self.src + row_sum(key, src_etag, src_size)) % ROW_SUM_MOD
        self.dst = (self.dst + row_sum(key, dst_etag, dst_size)) % ROW_SUM_MOD

    def record(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "srcSum": f"{self.src:064x}",
            "dstSum": f"{self.dst:064x}",
            "bytes": self.bytes,
        }


def listing_total(rows: Iterator[Row]) -> tuple[int, str]:
    """(count, listing sum) of a listing, streamed: what a stored range record is compared with."""
    count = 0

    def counted() -> Iterator[tuple[str, str, int]]:
        nonlocal count
        for r in rows:
            count += 1
            yield r["key"], str(r["etag"]), int(r["size"])

    total = listing_sum(counted())
    return count, total
