"""S3 backfill / catch-up copy: key ranges (one Prefect task per range, never one per object) and their copy loop.

Replication (tasks/move/s3_replication.py) never copies objects that existed before the rule, so a server-side
copy backfills them range by range; one object's copy is tasks/move/s3_object.py, the catch-up's delete mirror
tasks/move/s3_mirror.py. A manifest in the checkpoint table links each source ETag to the target ETag it produced,
so a re-run decides what is already done from listings alone and issues no per-object call on the skip path; an
unchanged range (its source rows summed by planning, its target listing matching the sums stored when it finished
clean) lists only its target side. A range is walked page by page (tasks/move/s3_walk.py), so a task's memory is a
page of each listing and a window of copies, whatever its range's size.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
    manifest_pk,
    partition_size,
    range_pk,
    range_sk,
)
from tasks.move.s3_walk import Done, Records, listing_total, merged, range_pages, read_ahead, row
from tasks.steps import step

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
MANIFEST_FLUSH = 25  # one BatchWriteItem: a kill -9 loses at most this many records (plus copies in flight)
MULTIPART_CONCURRENCY = 4  # threads per large object, on top of the partition's workers
KEYS_LISTED = 100  # deleted / foreign keys named per partition result (the counts are exact)
WINDOW_PER_WORKER = 4  # copies in flight per copy worker: the walk lists no further ahead than this (and a page)
MIRROR_CHUNK = 1_000  # target-only keys handed to the catch-up's delete mirror at a time


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


def _listed(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """One key's listing row (a prefix listing starts with the key itself when it exists), or None."""
    found = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return row(found[0]) if found and found[0]["Key"] == key else None


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

    Both listings are merged as they stream, with at most WINDOW_PER_WORKER copies per worker in flight and the
    range's sums built as it goes. Per-object errors are counted and listed, never raised, so one bad object does
    not redo a whole partition; an interruption (KeyboardInterrupt, cancellation) still records every finished copy
    in the manifest before it propagates, so the re-run copies only the rest.
    """
    if mode not in ("backfill", "catchup"):
        raise ValueError(f"mode must be 'backfill' or 'catchup' (got {mode!r})")
    t0 = time.monotonic()
    start_after, end = key_range.get("start_after"), key_range.get("end")
    src_s3 = backend.client("s3", cfg.source_region)
    dst_s3 = backend.client("s3", cfg.target_region)
    store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
    digest_key = (range_pk(target_bucket), range_sk(start_after, end))
    stats = _Stats(partition=str(key_range.get("id", "")), mode=mode)
    stored = store.get(*digest_key)
    if stored and _unchanged(stored, key_range, src_s3, dst_s3, source_bucket, target_bucket):
        stats.seen = stats.skipped = int(stored["objects"])
        stats.bytes_seen = int(stored.get("bytes") or 0)
        return _finish(stats, source_bucket, target_bucket, mode, t0)

    ctx = _context(backend, src_s3, dst_s3, source_bucket, target_bucket, kms_key_arn, mode, multipart_threshold)
    ctx.transfer.multipart_chunksize, ctx.pending_grace_s = multipart_chunksize or multipart_threshold, pending_grace_s
    walk = _Walk(ctx, store, manifest_pk(target_bucket), stats, max(1, workers), int(key_range.get("keys") or 0))
    walk.run(start_after, end)
    # Only a range whose every object is done gets its record (written after the objects' records).
    if walk.copies and ctx.kms_key_arn:
        stats.update_unsupported = update_support(ctx) or ""
    if stats.failed == 0 and stats.pending_replication == 0:
        store.put(*digest_key, walk.done.record())
    elif stored:
        store.delete(*digest_key)
    return _finish(stats, source_bucket, target_bucket, mode, t0)


def _unchanged(
    stored: dict[str, Any], key_range: dict[str, Any], src_s3: Any, dst_s3: Any, source_bucket: str, target_bucket: str
) -> bool:
    """True when both sides of the range are what it last finished clean with: the target's listing summed as it
    streams, and the source's taken from planning's sum (srcSum) where it has one, else summed the same way. A
    re-run of an unchanged range is this: one GetItem and the target's listing, no manifest read."""
    start_after, end, keys = key_range.get("start_after"), key_range.get("end"), int(key_range.get("keys") or 0)
    planned = key_range.get("srcSum") if keys else None
    if planned and (stored.get("srcSum") != planned or int(stored.get("objects", -1)) != keys):
        return False  # the source changed since: the walk decides

    def total(s3: Any, bucket: str, skip_probes: bool) -> tuple[int, str]:
        rows = (r for page in range_pages(s3, bucket, start_after, end) for r in page)
        return listing_total(r for r in rows if not (skip_probes and r["key"].startswith(PROBE_PREFIX)))

    want = int(stored.get("objects", -1))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3sum") as reads:
        dst_f = reads.submit(total, dst_s3, target_bucket, True)
        src = (keys, planned) if planned else total(src_s3, source_bucket, False)
        return src == (want, stored.get("srcSum")) and dst_f.result() == (want, stored.get("dstSum"))


class _Walk:
    """One range's walk: the merged listings decide object by object, a bounded window of copies in flight."""

    def __init__(self, ctx: CopyContext, store: CheckpointStore, pk: str, stats: _Stats, workers: int, expect: int):
        self.ctx, self.store, self.pk, self.stats, self.workers, self.expect = ctx, store, pk, stats, workers, expect
        self.done = Done()
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.orphans: dict[str, dict[str, Any]] = {}  # target-only keys waiting for the catch-up's delete mirror
        self.copies = 0
        self.t0 = self.last_log = time.monotonic()
        self.label = _label(stats, ctx.source_bucket, ctx.target_bucket, ctx.mode)

    def run(self, start_after: str | None, end: str | None) -> None:
        """Walk the range; an interruption still records every finished copy before it propagates."""
        ctx, stats = self.ctx, self.stats
        records = Records(self.store, self.pk, start_after, end)
        window: dict[Future[Outcome], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="s3copy")
        reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="s3list")
        try:
            src = read_ahead(range_pages(ctx.src, ctx.source_bucket, start_after, end), reads)
            dst = read_ahead(range_pages(ctx.dst, ctx.target_bucket, start_after, end), reads)
            for key, s, d in merged(src, dst):
                if s is None:
                    self._target_only(key, d)
                    continue
                stats.seen += 1
                stats.bytes_seen += s["size"]
                if d is not None and is_done(s, d, records.get(key)):
                    stats.skipped += 1
                    self.done.add(key, s["etag"], s["size"], d["etag"], int(d["size"]))
                    continue
                window[pool.submit(move_one, ctx, s, d)] = key
                self.copies += 1
                if len(window) >= WINDOW_PER_WORKER * self.workers:
                    finished, _ = wait(window, return_when=FIRST_COMPLETED)
                    self._settle(window, finished)
            self._settle(window, set(window))
            self._mirror()
        finally:
            # Finish in-flight copies and record them, so an interruption loses no finished work.
            pool.shutdown(wait=True, cancel_futures=True)
            reads.shutdown(wait=True, cancel_futures=True)
            for fut in window:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    _account(stats, fut.result(), self.records, self.done)
            self._flush()

    def _settle(self, window: dict[Future[Outcome], str], finished: set[Future[Outcome]]) -> None:
        for fut in finished:
            outcome = fut.result()  # an interruption raised by a copy propagates from here
            del window[fut]
            _account(self.stats, outcome, self.records, self.done)
            if len(self.records) >= MANIFEST_FLUSH:
                self._flush()
        if time.monotonic() - self.last_log >= PROGRESS_EVERY_S:
            self.last_log = time.monotonic()
            _log_progress(self.label, self.stats, self.expect, self.t0)

    def _flush(self) -> None:
        if self.records:
            self.store.put_many(self.pk, self.records)
            self.records.clear()

    def _target_only(self, key: str, d: dict[str, Any] | None) -> None:
        if key.startswith(PROBE_PREFIX) or d is None:
            return
        self.stats.target_only += 1
        if self.ctx.mode == "catchup":
            self.orphans[key] = d
            if len(self.orphans) >= MIRROR_CHUNK:
                self._mirror()

    def _mirror(self) -> None:
        """The catch-up's delete mirror over the target-only keys gathered so far (a chunk at a time)."""
        if not self.orphans:
            return
        ctx, stats = self.ctx, self.stats
        keys, rows = list(self.orphans), dict(self.orphans)
        self.orphans.clear()
        out = mirror_deletes(ctx.src, ctx.dst, self.store, self.pk, ctx.source_bucket, ctx.target_bucket, keys, rows)
        stats.target_only_foreign += len(out.foreign)
        stats.foreign_keys.extend(out.foreign[: max(0, KEYS_LISTED - len(stats.foreign_keys))])
        stats.deleted += len(out.deleted)
        stats.deleted_keys.extend(out.deleted[: max(0, KEYS_LISTED - len(stats.deleted_keys))])
        stats.failed += len(out.failures)
        stats.failures.extend(out.failures)


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
            _account(stats, outcome or Outcome(key, "vanished"), records, Done())
    if records:
        store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
        store.put_many(manifest_pk(target_bucket), records)
    return _finish(stats, source_bucket, target_bucket, "catchup", t0)


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
    done: Done,
) -> None:
    if o.reencrypted == "update":
        stats.reencrypted_update += 1
    elif o.reencrypted == "copy":
        stats.reencrypted_copy += 1
    if o.status in ("copied", "replicated", "adopted"):
        done.add(o.key, o.src_etag, o.size, o.dst_etag, o.size)
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


def _log_progress(label: str, stats: _Stats, expect: int, t0: float) -> None:
    elapsed = max(time.monotonic() - t0, 1e-6)
    log.info(
        "%s: %d of ~%d objects walked (%d copied, %d skipped, %d failed), %.0f objects/s, %.1f MiB copied",
        label,
        stats.seen,
        expect,
        stats.copied,
        stats.skipped,
        stats.failed,
        stats.copied / elapsed,
        stats.bytes_copied / 2**20,
    )
