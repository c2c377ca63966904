"""S3 validation by key range: one task per range (the copy's partitions), and inside a range chunks of at most
CHUNK_KEYS keys of both listings merged as they stream (tasks/move/s3_walk.py), so a task holds a chunk, never its
range, let alone a bucket. Each range's mismatches are written where they are found, to the checkpoint
table (target region, encrypted under the migration key, reachable from every task runner's machine: a local
path is not, across Dask workers), and only counts come back to the flow, which adds them up
(add_counts) and reads the mismatches back once for the CSV (collect_mismatches)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import CheckpointStore
from tasks.move.keys import range_sk, validation_pk
from tasks.move.s3_walk import merged, range_pages, read_ahead
from tasks.names import resource_names
from tasks.steps import step
from tasks.validate.compare import KIND_DTYPE, STRING, empty_mismatches
from tasks.validate.s3 import DEFAULT_WORKERS, Level, check_listed, listing_frame

# CSV characters per checkpoint record: a DynamoDB item is at most 400 KB, keys and attribute names included.
CHUNK_CHARS = 300_000
CHUNK_KEYS = 2_000  # keys (either side) compared at once: a chunk's frames, never a whole range's
COUNTS = (
    "sourceObjects",
    "targetObjects",
    "bytesSource",
    "bytesTarget",
    "missing",
    "extra",
    "different",
    "encryption",
    "foreign",
    "checked",
    "checksumCompared",
    "streamHashed",
    "streamedOneSide",
    "streamedBytes",
)


def whole_bucket(ranges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ranges to validate: the plan's, or one open range (an empty source can still have target objects)."""
    return ranges or [{"id": "p00000", "start_after": None, "end": None}]


@step("validate-s3-range", retries=2, run_name="validate-{source_bucket}-{key_range[id]}")
def validate_partition(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    key_range: dict[str, Any],
    run_id: str,
    level: Level = "full",
    workers: int = DEFAULT_WORKERS,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """validate_bucket's counts for the keys start_after < key <= end; its mismatches go to the checkpoint
    table under (validation_pk(target, run_id), range sk). A retry rewrites the same records."""
    start_after, end = key_range.get("start_after"), key_range.get("end")
    parts: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    for src, dst in range_chunks(backend, cfg, source_bucket, target_bucket, start_after, end):
        part = check_listed(backend, cfg, source_bucket, target_bucket, src, dst, level, workers, kms_key_arn)
        frames.append(part.pop("mismatches"))
        parts.append(part)
    mismatches = [f for f in frames if not f.empty]
    frame = pd.concat(mismatches, ignore_index=True) if mismatches else empty_mismatches("key")
    store = CheckpointStore(backend, cfg.target_region, resource_names(cfg).checkpoint_table)
    write_mismatch_chunks(store, validation_pk(target_bucket, run_id), range_sk(start_after, end), frame)
    return sum_counts(parts) | {
        "source": source_bucket,
        "target": target_bucket,
        "level": level,
        "partition": str(key_range.get("id", "")),
    }


def range_chunks(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    start_after: str | None,
    end: str | None,
    chunk_keys: int | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(source [key, size], target [key, size, etag]) frames of consecutive key intervals of the range, each at most
    `chunk_keys` keys: both listings merged in key order, so a key is in the same chunk on both sides."""
    limit = chunk_keys or CHUNK_KEYS
    src_s3, dst_s3 = backend.client("s3", cfg.source_region), backend.client("s3", cfg.target_region)
    src: list[tuple[str, int, str]] = []  # (key, size, etag): what the comparison reads, not the whole row
    dst: list[tuple[str, int, str]] = []
    sent = False
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3vlist") as reads:
        walk = merged(
            read_ahead(range_pages(src_s3, source_bucket, start_after, end), reads),
            read_ahead(range_pages(dst_s3, target_bucket, start_after, end), reads),
        )
        for key, s, d in walk:
            if s is not None:
                src.append((key, int(s["size"]), s["etag"]))
            if d is not None:
                dst.append((key, int(d["size"]), d["etag"]))
            if len(src) + len(dst) >= limit:
                yield listing_frame(src), listing_frame(dst, etags=True)
                src, dst, sent = [], [], True
        if src or dst or not sent:  # an empty range is one empty chunk: its counts are zeros, not missing
            yield listing_frame(src), listing_frame(dst, etags=True)


def mismatch_chunks(frame: pd.DataFrame) -> list[str]:
    """The mismatch rows [key, kind, detail] as CSV texts of at most about CHUNK_CHARS characters each."""
    chunks: list[str] = []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for key, kind, detail in zip(frame["key"], frame["kind"], frame["detail"], strict=True):
        writer.writerow([key, kind, "" if pd.isna(detail) else detail])
        if buf.tell() >= CHUNK_CHARS:
            chunks.append(buf.getvalue())
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        chunks.append(buf.getvalue())
    return chunks


def write_mismatch_chunks(store: CheckpointStore, pk: str, sk: str, frame: pd.DataFrame) -> None:
    """Put a range's mismatch chunks (sk#00000, ...) and drop any left over by an earlier attempt of it."""
    chunks = mismatch_chunks(frame)
    store.put_many(pk, [(f"{sk}#{i:05d}", {"rows": text}) for i, text in enumerate(chunks)])
    for old_sk, _ in store.query(pk, sk_prefix=f"{sk}#"):
        if int(old_sk.rsplit("#", 1)[1]) >= len(chunks):
            store.delete(pk, old_sk)


@step("collect-s3-mismatches", retries=2, run_name="collect-mismatches-{target_bucket}")
def collect_mismatches(backend: Backend, cfg: MigrationConfig, target_bucket: str, run_id: str) -> pd.DataFrame:
    """Every mismatch the run's ranges wrote, as one frame [key, kind, detail] sorted by key; then removed
    from the checkpoint table (the CSV next to the report holds them). Memory: the mismatches, not the keys."""
    store = CheckpointStore(backend, cfg.target_region, resource_names(cfg).checkpoint_table)
    pk = validation_pk(target_bucket, run_id)
    frame = read_mismatch_chunks(store, pk)
    store.delete_pk(pk)
    return frame


def read_mismatch_chunks(store: CheckpointStore, pk: str, exclude: str | None = None) -> pd.DataFrame:
    """The mismatch rows written under pk (records whose sort key starts with `exclude` skipped), as one
    frame [key, kind, detail] sorted by key."""
    texts = [rec["rows"] for sk, rec in store.query(pk) if not (exclude and sk.startswith(exclude))]
    rows = [row for text in texts for row in csv.reader(io.StringIO(text))]
    if not rows:
        return empty_mismatches("key")
    frame = pd.DataFrame(
        {
            "key": pd.array([r[0] for r in rows], dtype=STRING),
            "kind": pd.Series([r[1] for r in rows]).astype(KIND_DTYPE),
            "detail": pd.array([r[2] for r in rows], dtype=STRING),
        }
    )
    return frame.sort_values(["key", "kind"], kind="stable", ignore_index=True)


def sum_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The COUNTS of several checks added up, and every backend gap any of them named."""
    out: dict[str, Any] = {k: sum(int(p.get(k, 0) or 0) for p in parts) for k in COUNTS}
    gaps = {k: v for p in parts for k, v in (p.get("notSupportedByBackend") or {}).items()}
    if gaps:
        out["notSupportedByBackend"] = gaps
    return out


def add_counts(source: str, target: str, level: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One bucket's validation row from its ranges' counts (a range that failed for good: `error`)."""
    out: dict[str, Any] = {"source": source, "target": target, "level": level, **sum_counts(parts)}
    errors = [str(p["error"]) for p in parts if p.get("error")]
    if errors:
        out["error"] = f"{len(errors)} of {len(parts)} key ranges failed: {errors[0]}"
    out["partitions"] = len(parts)
    return out
