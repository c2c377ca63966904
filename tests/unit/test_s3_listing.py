"""Planning at scale (issue 10, item 1-2): parallel listing, exact tiling, partition sizes."""

from __future__ import annotations

import itertools
import random
import threading
from typing import Any

import pytest

from tasks.aws import Backend
from tasks.move import s3_listing
from tasks.move.s3 import plan_partitions
from tasks.move.s3_listing import survey
from tasks.move.s3_plan import (
    MAX_PARTITIONS,
    PARTITIONS_PER_WORKER,
    cut_ranges,
    in_range,
    listing_sum,
    partition_ranges,
    partition_size,
    split_points,
)
from tests.conftest import SOURCE

# Keys meant to break a splitter: unicode past ASCII and the BMP, runs of '/', keys equal to a prefix
# ("a/" and "a"), empty path segments, characters on either side of '/' ('.' 0x2E, '0' 0x30) and of 0x7F.
ADVERSARIAL = [
    "a", "a/", "a//", "a///b", "a/b", "a/b/", "a/b/c", "a.txt", "a0", "a/\u00e9", "a/\u00e9/x",
    "/", "//", "///x", "/lead", "~", "~~", "\x7f", "\x7fz", "\u00e9", "\u00e9/\u00e9", "\u65e5\u672c/1",
    "\U0001f600", "\U0001f600/x", "\U0010fffd", "z/", "z//", "z/" + "/" * 20 + "deep", " ", " /x", "!",
]  # fmt: skip


class FakeS3:
    """ListObjectsV2 as the S3 API reference describes it (keys in UTF-8 binary order; StartAfter, Prefix,
    Delimiter, MaxKeys), over keys in memory, recording the calls."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(set(keys), key=lambda k: k.encode())
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def list_objects_v2(self, **kw: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(kw)
        prefix, after, delim, limit = kw.get("Prefix", ""), kw.get("StartAfter"), kw.get("Delimiter"), kw["MaxKeys"]
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        truncated = False
        for key in self.keys:
            if not key.startswith(prefix) or (after is not None and key.encode() <= after.encode()):
                continue
            cut = key.find(delim, len(prefix)) if delim else -1
            if cut >= 0:
                cp = key[: cut + 1]
                if prefixes and prefixes[-1] == cp:
                    continue
            if len(contents) + len(prefixes) == limit:
                truncated = True
                break
            if cut >= 0:
                prefixes.append(key[: cut + 1])
            else:
                contents.append({"Key": key, "Size": len(key.encode()), "ETag": f'"{len(key)}"'})
        resp: dict[str, Any] = {"Contents": contents, "IsTruncated": truncated}
        if prefixes:
            resp["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
        return resp


def _assert_tiles(ranges: list[dict[str, Any]], keys: list[str]) -> None:
    """Every key in exactly one range, each range's count exact, ranges chained end to start."""
    assert ranges[0]["start_after"] is None and ranges[-1]["end"] is None
    for a, b in itertools.pairwise(ranges):
        assert a["end"] == b["start_after"] and a["end"] is not None
    for key in keys:
        assert sum(in_range(key, r["start_after"], r["end"]) for r in ranges) == 1, key
    for r in ranges:
        assert r["keys"] == sum(in_range(k, r["start_after"], r["end"]) for k in keys)


def test_python_order_is_s3_order_for_the_adversarial_keys() -> None:
    assert sorted(ADVERSARIAL) == sorted(ADVERSARIAL, key=lambda k: k.encode())


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_ranges_tile_adversarial_keys_exactly(size: int) -> None:
    s3 = FakeS3(ADVERSARIAL)
    found = survey(s3, "b", step=1)
    assert found.objects == len(s3.keys) and found.bytes == sum(len(k.encode()) for k in s3.keys)
    ranges = cut_ranges(found.pieces, size)
    _assert_tiles(ranges, s3.keys)
    assert all(r["keys"] >= size for r in ranges[:-1])
    if size == 1:
        assert len(ranges) == len(s3.keys)  # step 1: a boundary after every key


def test_ranges_tile_a_big_flat_bucket_split_by_probing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No '/' at all: the pieces come from split points between listed keys, listed side by side."""
    rng = random.Random(7)
    keys = [f"{rng.getrandbits(40):010x}" for _ in range(5000)] + [f"obj-{i:06d}" for i in range(3000)]
    monkeypatch.setattr(s3_listing, "PAGE", 100)
    s3 = FakeS3(keys)
    found = survey(s3, "b", step=50)
    assert found.objects == len(s3.keys)
    pages = len(s3.keys) // 100  # a sequential listing's calls, one after the other
    assert found.peak_open >= s3_listing.LIST_WORKERS  # the flat key space was split and listed in parallel
    assert found.rounds <= pages // 2  # rounds of concurrent calls: the wall time
    # each piece costs at most one call more than its keys' pages (the one that crosses its end), and the
    # delimiter discovery one call: the overhead grows with the pieces, not with the objects
    assert len(s3.calls) <= pages + len(found.pieces) + 1
    _assert_tiles(cut_ranges(found.pieces, 400), s3.keys)


def test_each_range_carries_the_exact_sum_of_its_source_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """srcSum (what a re-run compares instead of listing the source again) is exactly listing_sum of the
    range's (key, ETag, size) rows, whatever the pieces, sample thinning and range cuts were."""
    rng = random.Random(11)
    keys = [f"{rng.getrandbits(40):010x}" for _ in range(3000)] + ADVERSARIAL
    monkeypatch.setattr(s3_listing, "PAGE", 100)
    monkeypatch.setattr(s3_listing, "SAMPLE_BUDGET", 40)  # the step doubles: samples thinned mid-listing
    s3 = FakeS3(keys)
    found = survey(s3, "b", step=7)
    assert found.step > 7 and len(found.pieces) > 1
    ranges = cut_ranges(found.pieces, 250)
    _assert_tiles(ranges, s3.keys)
    assert len(ranges) > 2
    for r in ranges:
        rows = [(k, f'"{len(k)}"', len(k.encode())) for k in s3.keys if in_range(k, r["start_after"], r["end"])]
        assert r["srcSum"] == listing_sum(rows), r["id"]
    assert listing_sum([("a", '"1"', 1)]) != listing_sum([("a", '"2"', 1)])  # the ETag counts


def test_empty_bucket_is_one_open_range() -> None:
    found = survey(FakeS3([]), "b")
    assert cut_ranges(found.pieces, 10) == [{"id": "p00000", "start_after": None, "end": None, "keys": 0, "bytes": 0}]


def test_split_points_lie_strictly_between() -> None:
    rng = random.Random(3)
    alphabet = "/.-0aAz~\x7f\u00e9\u65e5\U0001f600\U0010fffd"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(3000)]
    for lo, hi in itertools.pairwise(samples):
        lo, hi = min(lo, hi), max(lo, hi)
        for top in (hi, None):
            for parts in (2, 5):
                points = split_points(lo, top, parts)
                assert len(points) < parts and points == sorted(set(points))
                for m in points:
                    assert lo < m and (top is None or m < top), (lo, top, m)
                    m.encode()  # a valid UTF-8 string (no surrogates): S3 can take it as StartAfter


def test_partition_size_follows_the_work() -> None:
    workers = 6
    assert -(-10_000 // partition_size(10_000, workers)) >= workers  # every worker busy
    for n in (100_000, 1_000_000):
        assert -(-n // partition_size(n, workers)) >= PARTITIONS_PER_WORKER * workers  # and several rounds each
    assert partition_size(600, workers) == 1_000  # a tiny bucket: one task run, not one per handful of keys
    assert partition_size(2_000, workers) == 1_000  # small buckets plan as before issue 10
    assert partition_size(10**9, workers) == 100_000  # 10^9 objects -> 10^4 partitions
    for n in (10**9, 5 * 10**9, 10**10):
        assert -(-n // partition_size(n, workers)) <= MAX_PARTITIONS
    assert partition_size(0, workers) >= 1


def _put_keys(bucket: str, keys: list[str]) -> None:
    """Seed through moto's backend (a PutObject per key through boto3 would take most of the test's time)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    store = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for key in keys:
        store.put_object(bucket, key, b"x")


def test_parallel_plan_covers_what_the_sequential_listing_covers(backend: Backend) -> None:
    """A few thousand keys under several prefixes: same keys, each once, and LIST calls in flight together."""
    s3 = backend.client("s3", SOURCE)
    s3.create_bucket(Bucket="plan-src")
    keys = [f"{p}/{i:05d}" for p in ("dt=2026-11-01", "dt=2026-11-02", "logs", "raw/x") for i in range(500)]
    keys += ["top", "dt=2026-11-01/", "raw/"]
    _put_keys("plan-src", keys)
    sequential = partition_ranges(
        (
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="plan-src")
            for o in page["Contents"]
        ),
        100,
    )

    inflight, peak, lock = [0], [0], threading.Lock()
    calls: list[str] = []

    def before(**_: Any) -> None:
        with lock:
            calls.append("list")
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])

    def after(**_: Any) -> None:
        with lock:
            inflight[0] -= 1

    s3.meta.events.register("before-call.s3.ListObjectsV2", before)
    s3.meta.events.register("after-call.s3.ListObjectsV2", after)
    ranges = plan_partitions.fn(backend, SOURCE, "plan-src", max_keys_per_partition=100)
    listed = sorted(keys)
    _assert_tiles(ranges, listed)
    covered = sorted(k for k in listed if any(in_range(k, r["start_after"], r["end"]) for r in sequential))
    assert covered == listed and sum(r["keys"] for r in ranges) == len(listed)
    assert peak[0] > 1  # pieces listed concurrently
    assert len(calls) <= 3 * len(listed) // 1000 + 16  # discovery + ~one page per piece, not per key
