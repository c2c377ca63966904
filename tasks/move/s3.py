"""S3 backfill / catch-up copy: key ranges (one Prefect task per range, never one per object) and their copy loop.

Replication (tasks/move/s3_replication.py) never copies objects that existed before the rule, so a server-side
copy backfills them range by range; one object's copy is tasks/move/s3_object.py, the catch-up's delete mirror
tasks/move/s3_mirror.py. A manifest in the checkpoint table links each source ETag to the target ETag it produced,
so a re-run decides what is already done from listings alone and issues no per-object call on the skip path; an
unchanged range (its source rows summed by planning, its target listing matching the sums stored when it finished
clean) lists only its target side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from boto3.s3.transfer import TransferConfig

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend
from tasks.move.checkpoints import CheckpointStore
from tasks.move.s3_listing import survey
from tasks.move.s3_mirror import mirror_deletes
from tasks.move.s3_object import PROBE_PREFIX, CopyContext, Mode, Outcome, move_one, update_support
from tasks.move.s3_plan import (
    DEFAULT_MULTIPART_THRESHOLD,
    MIN_PARTITION_KEYS,
    PENDING_GRACE_S,
    cut_ranges,
    is_done,
    listing_rows,
    listing_sum,
    manifest_pk,
    partition_size,
    range_digest,
    range_pk,
    range_sk,
)
from tasks.steps import step

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
MANIFEST_FLUSH = 25  # one BatchWriteItem: a kill -9 loses at most this many records (plus copies in flight)
MULTIPART_CONCURRENCY = 4  # threads per large object, on top of the partition's workers
KEYS_LISTED = 100  # deleted / foreign keys named per partition result (the counts are exact)


# --------------------------------------------------------------------------------------------------
# Partitions
# --------------------------------------------------------------------------------------------------


@step("s3-partitions", run_name="s3-partitions-{bucket}")
def plan_partitions(
    backend: Backend, region: str, bucket: str, max_keys_per_partition: int | None = None
) -> list[dict[str, Any]]:
    """Key ranges {"id", "start_after", "end", "keys", "bytes"} covering the bucket, listed in parallel.

    Sized by s3_plan.partition_size for the measured object count (or max_keys_per_partition keys each,
    when given); memory is O(partitions): only boundary keys are kept (tasks/move/s3_listing.py). A big
    partition is no expensive retry: copy_partition records every MANIFEST_FLUSH copies (and every finished
    copy on an exception), so a retry re-lists its range and skips what the manifest proves done; a kill -9
    re-does at most MANIFEST_FLUSH - 1 unrecorded copies plus the copies in flight.
    """
    fixed = max_keys_per_partition
    found = survey(backend.client("s3", region), bucket, step=min(fixed or MIN_PARTITION_KEYS, MIN_PARTITION_KEYS))
    size = fixed or partition_size(found.objects, SETTINGS.migrate_task_workers)
    ranges = cut_ranges(found.pieces, size)
    log.info(
        "%s: %d objects in %d partitions of ~%d keys, from %d LIST calls over %d pieces (%d rounds)",
        bucket,
        found.objects,
        len(ranges),
        size,
        found.list_calls,
        len(found.pieces),
        found.rounds,
    )
    return ranges


def _iter_listing(
    s3: Any, bucket: str, start_after: str | None, page_size: int | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, {key, etag, size, lastModified, storageClass}) of current objects after start_after, in order."""
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if start_after is not None:
        kwargs["StartAfter"] = start_after
    if page_size:
        kwargs["PaginationConfig"] = {"PageSize": page_size}
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            yield obj["Key"], _row(obj)


def _row(obj: dict[str, Any]) -> dict[str, Any]:
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


def _listed(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """One key's listing row (a prefix listing starts with the key itself when it exists), or None."""
    found = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return _row(found[0]) if found and found[0]["Key"] == key else None


def _list_range(
    s3: Any, bucket: str, start_after: str | None, end: str | None, expect: int | None = None
) -> dict[str, dict[str, Any]]:
    """Current objects with start_after < key <= end, in key order, as key -> {etag, size, ...}.

    Stops at `end` itself rather than fetching the next page to see a key past it, and when about
    `expect` keys are expected asks for pages of that size: a moto page of 1,000 keys costs ~0.3 s.
    """
    out: dict[str, dict[str, Any]] = {}
    page_size = min(1000, max(expect + 1, 50)) if expect is not None else None
    for key, obj in _iter_listing(s3, bucket, start_after, page_size):
        if end is not None and key > end:
            break
        out[key] = obj
        if key == end:
            break
    return out


# --------------------------------------------------------------------------------------------------
# Copy
# --------------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    partition: str
    mode: str
    seen: int = 0
    copied: int = 0
    skipped: int = 0
    replicated: int = 0
    failed: int = 0
    vanished: int = 0
    pending_replication: int = 0
    multipart: int = 0
    target_only: int = 0
    bytes_seen: int = 0
    bytes_copied: int = 0
    adopted: int = 0
    reencrypted_update: int = 0
    reencrypted_copy: int = 0
    deleted: int = 0
    target_only_foreign: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    vanished_keys: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)
    update_unsupported: str = ""
    checksummed: int = 0  # copies whose read-back carries a checksum S3 computed
    checksum_unsupported: str = ""


@step("s3-copy", retries=4, run_name="s3-{mode}-{source_bucket}-{key_range[id]}")
def copy_partition(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    key_range: dict[str, Any],
    kms_key_arn: str,
    checkpoint_table: str,
    mode: Mode = "backfill",
    workers: int = SETTINGS.s3_copy_workers,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    multipart_chunksize: int | None = None,
    pending_grace_s: float = PENDING_GRACE_S,
) -> dict[str, Any]:
    """Copy one key range server-side from the source region, skipping what the manifest proves done.

    Per-object errors are counted and listed, never raised, so one bad object does not redo a whole
    partition; an interruption (KeyboardInterrupt, cancellation) still records every finished copy
    in the manifest before it propagates, so the re-run copies only the rest.
    """
    if mode not in ("backfill", "catchup"):
        raise ValueError(f"mode must be 'backfill' or 'catchup' (got {mode!r})")
    t0 = time.monotonic()
    start_after, end = key_range.get("start_after"), key_range.get("end")
    src_s3 = backend.client("s3", cfg.source_region)
    dst_s3 = backend.client("s3", cfg.target_region)
    store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
    pk = manifest_pk(target_bucket)
    digest_key = (range_pk(target_bucket), range_sk(start_after, end))

    stats = _Stats(partition=str(key_range.get("id", "")), mode=mode)
    # The listings and the stored digest are independent reads: done at once. A re-run is only these, and
    # where planning summed this range's source as it listed it (srcSum), only the target's listing.
    planned = key_range.get("srcSum") if int(key_range.get("keys") or 0) else None
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="s3list") as reads:
        dst_f = reads.submit(_list_range, dst_s3, target_bucket, start_after, end)
        stored_f = reads.submit(store.get, *digest_key)
        src_f = None if planned else reads.submit(_list_range, src_s3, source_bucket, start_after, end)
        stored = stored_f.result()
        same_source = _same_source(stored, planned, int(key_range.get("keys") or 0))
        if src_f is None and not same_source:
            src_f = reads.submit(_list_range, src_s3, source_bucket, start_after, end)
        dst = dst_f.result()
        if stored and same_source and _same_target(stored, dst):
            stats.seen = stats.skipped = int(stored["objects"])
            stats.bytes_seen = int(stored.get("bytes") or 0)
            return _finish(stats, source_bucket, target_bucket, mode, t0)
        src = src_f.result() if src_f is not None else _list_range(src_s3, source_bucket, start_after, end)
    stats.seen = len(src)
    stats.bytes_seen = sum(o["size"] for o in src.values())
    target_only = [k for k in dst if k not in src and not k.startswith(PROBE_PREFIX)]
    stats.target_only = len(target_only)
    if target_only and mode == "catchup":
        mirrored = mirror_deletes(src_s3, dst_s3, store, pk, source_bucket, target_bucket, target_only, dst)
        stats.target_only_foreign, stats.foreign_keys = len(mirrored.foreign), mirrored.foreign
        stats.deleted, stats.deleted_keys = len(mirrored.deleted), mirrored.deleted
        stats.failed, stats.failures = len(mirrored.failures), mirrored.failures

    # Fast path: both listings match the digest stored when this range last finished clean.
    if src and stored and stored.get("digest") == range_digest(listing_rows(src, dst)):
        stats.skipped = stats.seen
        return _finish(stats, source_bucket, target_bucket, mode, t0)

    # Only an object the target holds can be proven done by its record: a first pass over an empty target reads none.
    held = any(key in dst for key in src)
    manifest = dict(store.query_range(pk, start_after, end, attributes=["srcEtag", "dstEtag"])) if held else {}
    todo: list[dict[str, Any]] = []
    done_rows: list[tuple[str, str, int, str, int]] = []
    for key, obj in src.items():
        d = dst.get(key)
        if d is not None and is_done(obj, d, manifest.get(key)):
            stats.skipped += 1
            done_rows.append((key, obj["etag"], obj["size"], d["etag"], int(d["size"])))
        else:
            todo.append(obj)
    del manifest

    ctx = _context(backend, src_s3, dst_s3, source_bucket, target_bucket, kms_key_arn, mode, multipart_threshold)
    ctx.transfer.multipart_chunksize, ctx.pending_grace_s = multipart_chunksize or multipart_threshold, pending_grace_s
    label = _label(stats, source_bucket, target_bucket, mode)
    records: list[tuple[str, dict[str, Any]]] = []
    last_log = time.monotonic()
    if todo:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3copy")
        futures: dict[Future[Outcome], str] = {
            pool.submit(move_one, ctx, obj, dst.get(obj["key"])): obj["key"] for obj in todo
        }
        consumed: set[Future[Outcome]] = set()
        try:
            for fut in as_completed(futures):
                consumed.add(fut)
                _account(stats, fut.result(), records, done_rows)
                if len(records) >= MANIFEST_FLUSH:
                    store.put_many(pk, records)
                    records.clear()
                if time.monotonic() - last_log >= PROGRESS_EVERY_S:
                    last_log = time.monotonic()
                    _log_progress(label, stats, len(todo), t0)
        finally:
            # Finish in-flight copies and record them, so an interruption loses no finished work.
            pool.shutdown(wait=True, cancel_futures=True)
            for fut in futures:
                if fut not in consumed and fut.done() and not fut.cancelled() and fut.exception() is None:
                    _account(stats, fut.result(), records, done_rows)
            if records:
                store.put_many(pk, records)
                records.clear()

    # Only a range whose every object is done gets a digest (written after its records).
    if todo and ctx.kms_key_arn:
        stats.update_unsupported = update_support(ctx) or ""
    if stats.failed == 0 and stats.pending_replication == 0:
        store.put(*digest_key, {"digest": range_digest(done_rows), "objects": len(done_rows), **_sums(done_rows)})
    elif stored:
        store.delete(*digest_key)
    return _finish(stats, source_bucket, target_bucket, mode, t0)


def _context(
    backend: Backend,
    src_s3: Any,
    dst_s3: Any,
    source_bucket: str,
    target_bucket: str,
    kms_key_arn: str,
    mode: Mode,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
) -> CopyContext:
    """What every copy worker of one task run shares."""
    transfer = TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_threshold,
        max_concurrency=MULTIPART_CONCURRENCY,
    )
    # Positional, in CopyContext's field order: src, dst, buckets, key, threshold, transfer, mode, grace, backend.
    args = (src_s3, dst_s3, source_bucket, target_bucket, kms_key_arn, multipart_threshold, transfer, mode)
    return CopyContext(*args, PENDING_GRACE_S, backend.describe())


@step("s3-copy-keys", retries=4, run_name="s3-copy-keys-{source_bucket}")
def copy_keys(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    keys: list[str],
    kms_key_arn: str,
    checkpoint_table: str,
    workers: int = SETTINGS.s3_copy_workers,
) -> dict[str, Any]:
    """The client copy of named keys (the ones an S3 Batch Replication job reported failed), as the catch-up copies
    one object: the source HEAD decides (replicated, pending, copy); done ones go to the manifest."""
    t0 = time.monotonic()
    src_s3, dst_s3 = backend.client("s3", cfg.source_region), backend.client("s3", cfg.target_region)
    ctx = _context(backend, src_s3, dst_s3, source_bucket, target_bucket, kms_key_arn, "catchup")
    stats = _Stats(partition="failed-keys", mode="catchup")
    records: list[tuple[str, dict[str, Any]]] = []

    def one(key: str) -> Outcome | None:
        obj = _listed(src_s3, source_bucket, key)
        if obj is None:
            return None
        return move_one(ctx, obj, _listed(dst_s3, target_bucket, key))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3keys") as pool:
        for key, outcome in zip(keys, pool.map(one, keys), strict=True):
            stats.seen += 1
            _account(stats, outcome or Outcome(key, "vanished"), records, [])
    if records:
        store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
        store.put_many(manifest_pk(target_bucket), records)
    return _finish(stats, source_bucket, target_bucket, "catchup", t0)


def _sums(done_rows: list[tuple[str, str, int, str, int]]) -> dict[str, Any]:
    """What a later pass compares without listing the source: both sides' listing sums, and the bytes."""
    return {
        "srcSum": listing_sum((key, etag, size) for key, etag, size, _, _ in done_rows),
        "dstSum": listing_sum((key, etag, size) for key, _, _, etag, size in done_rows),
        "bytes": sum(row[2] for row in done_rows),
    }


def _same_source(stored: dict[str, Any] | None, planned: str | None, keys: int) -> bool:
    """True when the source listing planning summed is the one this range last finished clean with."""
    return bool(stored and planned and stored.get("srcSum") == planned and int(stored.get("objects", -1)) == keys)


def _same_target(stored: dict[str, Any], dst: dict[str, dict[str, Any]]) -> bool:
    """True when the target holds exactly the objects the range last finished clean with (none else)."""
    rows = [(k, str(d["etag"]), int(d["size"])) for k, d in dst.items() if not k.startswith(PROBE_PREFIX)]
    return len(rows) == int(stored.get("objects", -1)) and listing_sum(rows) == stored.get("dstSum")


def _label(stats: _Stats, source_bucket: str, target_bucket: str, mode: str) -> str:
    return f"s3://{source_bucket} -> s3://{target_bucket} {stats.partition or 'range'} ({mode})"


def _finish(stats: _Stats, source_bucket: str, target_bucket: str, mode: str, t0: float) -> dict[str, Any]:
    elapsed, now = time.monotonic() - t0, time.time()
    out: dict[str, Any] = {
        "partition": stats.partition,
        "mode": mode,
        "seen": stats.seen,
        "copied": stats.copied,
        "skipped": stats.skipped,
        "replicated": stats.replicated,
        "failed": stats.failed,
        "failures": stats.failures,
        "vanished": stats.vanished,
        "vanishedKeys": stats.vanished_keys,
        "pending_replication": stats.pending_replication,
        "multipart": stats.multipart,
        "target_only": stats.target_only,
        "bytes_seen": stats.bytes_seen,
        "bytes_copied": stats.bytes_copied,
        "adopted": stats.adopted,
        "reencrypted_update": stats.reencrypted_update,
        "reencrypted_copy": stats.reencrypted_copy,
        "deleted": stats.deleted,
        "deletedKeys": stats.deleted_keys[:KEYS_LISTED],
        "target_only_foreign": stats.target_only_foreign,
        "foreignKeys": stats.foreign_keys[:KEYS_LISTED],
        "updateObjectEncryptionUnsupported": stats.update_unsupported,
        "checksummed": stats.checksummed,
        "checksumUnsupported": stats.checksum_unsupported,
        "duration_s": round(elapsed, 3),
        "span": [round(now - elapsed, 3), round(now, 3)],  # wall clock: the summary's first start to last end
    }
    log.info(
        "%s done: seen %d, copied %d, skipped %d, failed %d, vanished %d, pending %d in %.1fs",
        _label(stats, source_bucket, target_bucket, mode),
        stats.seen,
        stats.copied,
        stats.skipped,
        stats.failed,
        stats.vanished,
        stats.pending_replication,
        out["duration_s"],
    )
    return out


def _account(
    stats: _Stats,
    o: Outcome,
    records: list[tuple[str, dict[str, Any]]],
    done_rows: list[tuple[str, str, int, str, int]],
) -> None:
    if o.reencrypted == "update":
        stats.reencrypted_update += 1
    elif o.reencrypted == "copy":
        stats.reencrypted_copy += 1
    if o.status in ("copied", "replicated", "adopted"):
        done_rows.append((o.key, o.src_etag, o.size, o.dst_etag, o.size))
        records.append((o.key, {"srcEtag": o.src_etag, "size": o.size, "dstEtag": o.dst_etag}))
    if o.status == "copied":
        stats.copied += 1
        if o.checksum_gap:
            stats.checksum_unsupported = stats.checksum_unsupported or o.checksum_gap
        else:
            stats.checksummed += 1
        stats.bytes_copied += o.size
        stats.multipart += int(o.multipart)
    elif o.status == "replicated":
        stats.replicated += 1
        stats.skipped += 1
    elif o.status == "adopted":
        stats.adopted += 1
        stats.skipped += 1
    elif o.status == "pending":
        stats.pending_replication += 1
        stats.skipped += 1
    elif o.status == "vanished":
        stats.vanished += 1
        stats.vanished_keys.append(o.key)
    else:
        stats.failed += 1
        stats.failures.append({"key": o.key, "error": o.error})


def _log_progress(label: str, stats: _Stats, todo: int, t0: float) -> None:
    done = stats.copied + stats.failed + stats.vanished + stats.replicated + stats.pending_replication
    elapsed = max(time.monotonic() - t0, 1e-6)
    log.info(
        "%s: %d/%d to copy handled (%d copied, %d failed), %.0f objects/s, %.1f MiB copied",
        label,
        done,
        todo,
        stats.copied,
        stats.failed,
        stats.copied / elapsed,
        stats.bytes_copied / 2**20,
    )
