"""S3 data movement: a replication rule for new writes, plus a resumable backfill / catch-up copy.

Replication never copies objects that existed before the rule, so a server-side copy backfills them,
key range by key range (one Prefect task per range, never one per object). A manifest in the
checkpoint table links each source ETag to the target ETag it produced, so a re-run decides what is
already done from three listings alone and issues no per-object call on the skip path.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from boto3.s3.transfer import TransferConfig

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend, error_code
from tasks.consistency import Lag, retry_until_consistent
from tasks.errors import UserError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.s3_plan import (
    DEFAULT_MULTIPART_THRESHOLD,
    PENDING_GRACE_S,
    VERSIONING_SK,
    bucket_arn,
    catchup_action,
    encryption_problem,
    is_done,
    listing_rows,
    manifest_pk,
    next_priority,
    partition_ranges,
    range_digest,
    range_pk,
    range_sk,
    redirect_args,
    replication_rule,
    replication_rule_id,
    rule_drift,
    storage_class_args,
    v1_rules,
    versioning_pk,
)
from tasks.provision.s3 import get_replication
from tasks.steps import step
from tasks.validate.s3 import checksum_verdict, classify_target_only, object_checksums

log = logging.getLogger(__name__)

Mode = Literal["backfill", "catchup"]

PROGRESS_EVERY_S = 5.0
MANIFEST_FLUSH = 25  # one BatchWriteItem: a kill -9 loses at most this many records (plus copies in flight)
MULTIPART_CONCURRENCY = 4  # threads per large object, on top of the partition's workers
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
_VANISHED = frozenset({"NoSuchKey", "404", "NotFound"})
_CHANGE_RETRIES = 3
_ENABLED = "ENABLED"
KEYS_LISTED = 100  # deleted / foreign keys named per partition result (the counts are exact)


# --------------------------------------------------------------------------------------------------
# Replication rule on the source bucket
# --------------------------------------------------------------------------------------------------


# PutBucketReplication needs versioning Enabled on both buckets, and "If you enable versioning on a bucket for the
# first time, it might take up to 15 minutes for the change to be fully propagated" (S3 User Guide): right after
# we enabled it, S3 answers InvalidRequest with one of these messages. Retried for those 15 minutes, no longer.
REPLICATION_LAGS: tuple[Lag, ...] = (
    Lag("InvalidRequest", "Destination bucket must have versioning enabled", "S3: the target bucket's versioning"),
    Lag(
        "InvalidRequest",
        "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
        "S3: the source bucket's versioning",
    ),
)
VERSIONING_PROPAGATION_S = 15 * 60.0


def record_source_versioning(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, versioning_before: str, checkpoint_table: str
) -> bool:
    """Record a source bucket's versioning as the migration first found it; True when this call wrote it."""
    store = CheckpointStore(backend, cfg.targetRegion, checkpoint_table)
    return store.put_if_absent(
        versioning_pk(source_bucket),
        VERSIONING_SK,
        {"versioningBefore": versioning_before, "enabledByUs": versioning_before != "Enabled"},
    )


@step("s3-replication", run_name="s3-replication-{source_bucket}")
def ensure_replication(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    role_arn: str,
    kms_key_arn: str,
    checkpoint_table: str | None = None,
) -> dict[str, Any]:
    """Versioning + our replication rule on the source bucket, merged with other owners' rules.

    Before versioning is touched, what it was is recorded durably (first writer wins), so teardown knows
    whether *we* enabled it even after a re-run, whose own read says 'Enabled'.

    PutBucketReplication replaces the whole rule set, so we read it, swap in only our rule and write it
    back. A bucket has one replication role: when other rules exist under another role we keep theirs
    (ours is reported as needing its permissions) rather than break someone else's replication.
    """
    s3 = backend.client("s3", cfg.sourceRegion)
    rule_id = replication_rule_id(cfg)
    destination = bucket_arn(target_bucket, cfg.targetRegion)
    changed: list[str] = []
    warnings: list[str] = []

    before_cfg = get_replication(s3, source_bucket)
    rules = list(before_cfg.get("Rules", [])) if before_cfg else []
    foreign = [r for r in rules if r.get("ID") != rule_id]
    old_v1 = v1_rules(foreign)
    if old_v1:
        raise UserError(
            f"s3://{source_bucket} has replication rules in the old V1 schema ({', '.join(old_v1)}), "
            "which S3 will not mix with the Filter-based rule this migration adds; "
            "rewrite them with Filter and Priority"
        )

    versioning_before = s3.get_bucket_versioning(Bucket=source_bucket).get("Status") or "Disabled"
    if checkpoint_table:
        record_source_versioning(backend, cfg, source_bucket, versioning_before, checkpoint_table)
    if versioning_before != "Enabled":
        s3.put_bucket_versioning(Bucket=source_bucket, VersioningConfiguration={"Status": "Enabled"})
        changed.append(f"enabled versioning on s3://{source_bucket} (was {versioning_before})")

    ours_before = next((r for r in rules if r.get("ID") == rule_id), None)
    priority = int(ours_before["Priority"]) if ours_before and ours_before.get("Priority") else next_priority(foreign)
    desired = replication_rule(rule_id, priority, destination, kms_key_arn)

    role = role_arn
    current_role = before_cfg.get("Role") if before_cfg else None
    if foreign and current_role and current_role != role_arn:
        role = current_role
        warnings.append(
            f"kept replication role {current_role} used by other rules "
            f"({', '.join(str(r.get('ID')) for r in foreign)}); "
            f"it needs the permissions of {role_arn} on {destination} and the target key, or our rule's "
            "objects fail to replicate and are copied by the catch-up"
        )

    drift_before = rule_drift(desired, ours_before)
    role_drift = current_role != role
    created = ours_before is None
    repaired: list[str] = []
    unsupported: list[str] = []
    after_cfg = before_cfg
    if drift_before or role_drift:
        retry_until_consistent(
            lambda: s3.put_bucket_replication(
                Bucket=source_bucket,
                ReplicationConfiguration={"Role": role, "Rules": [*foreign, desired]},
            ),
            REPLICATION_LAGS,
            what=f"put the replication rule on s3://{source_bucket}",
            budget_s=VERSIONING_PROPAGATION_S,
        )
        after_cfg = get_replication(s3, source_bucket)
        ours_after = _find_rule(after_cfg, rule_id)
        drift_after = rule_drift(desired, ours_after)
        # Fields the backend does not keep are measured, not fixed: they differ before and after a put.
        unsupported = [f"replication rule {p}" for p in drift_after]
        if ours_after is not None and not created:
            repaired = [f"replication rule {p}" for p in drift_before if p not in drift_after]
            if role_drift and after_cfg and after_cfg.get("Role") == role:
                repaired.append("replication role")
        if created:
            changed.append(f"added replication rule {rule_id} on s3://{source_bucket} -> {destination}")
        elif repaired:
            changed.append(f"updated replication rule {rule_id} on s3://{source_bucket}: {', '.join(repaired)}")

    ours = _find_rule(after_cfg, rule_id) or {}
    after_ids = {r.get("ID") for r in (after_cfg or {}).get("Rules", [])}
    versioning_now = s3.get_bucket_versioning(Bucket=source_bucket).get("Status") or "Disabled"
    dest = ours.get("Destination", {})
    return {
        "bucket": source_bucket,
        "versioningBefore": versioning_before,
        "versioningNow": versioning_now,
        "ruleId": ours.get("ID"),
        "ruleStatus": ours.get("Status"),
        "priority": ours.get("Priority"),
        "destination": dest.get("Bucket"),
        "replicaKmsKeyId": dest.get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID"),
        "role": (after_cfg or {}).get("Role"),
        "foreignRules": sorted(str(r.get("ID")) for r in foreign),
        "foreignRulesPreserved": all(r.get("ID") in after_ids for r in foreign),
        "created": created and bool(ours),
        "repaired": repaired,
        "notSupportedByBackend": unsupported,
        "sourceChanged": changed,
        "warnings": warnings,
    }


def _find_rule(config: dict[str, Any] | None, rule_id: str) -> dict[str, Any] | None:
    return next((r for r in (config or {}).get("Rules", []) if r.get("ID") == rule_id), None)


# --------------------------------------------------------------------------------------------------
# Partitions
# --------------------------------------------------------------------------------------------------


@step("s3-partitions", run_name="s3-partitions-{bucket}")
def plan_partitions(
    backend: Backend, region: str, bucket: str, max_keys_per_partition: int = 1000
) -> list[dict[str, Any]]:
    """Key ranges {"id", "start_after", "end"} of at most max_keys_per_partition keys each.

    One listing pass, keys only (held one page at a time), so Prefect maps O(partitions) tasks.
    """
    s3 = backend.client("s3", region)

    def keys() -> Iterator[str]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    return partition_ranges(keys(), max_keys_per_partition)


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
            key = obj["Key"]
            yield (
                key,
                {
                    "key": key,
                    "etag": obj["ETag"],
                    "size": int(obj["Size"]),
                    "lastModified": obj.get("LastModified"),
                    "storageClass": obj.get("StorageClass"),
                },
            )


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
class _Ctx:
    """What every copy worker of one partition shares (clients are thread-safe)."""

    src: Any
    dst: Any
    source_bucket: str
    target_bucket: str
    kms_key_arn: str
    threshold: int
    transfer: TransferConfig
    mode: Mode
    pending_grace_s: float
    backend_id: str = ""


@dataclass
class _Outcome:
    key: str
    status: Literal["copied", "vanished", "failed", "replicated", "pending", "adopted"]
    src_etag: str = ""
    size: int = 0
    dst_etag: str = ""
    multipart: bool = False
    error: str = ""
    reencrypted: str = ""  # "update" (UpdateObjectEncryption) or "copy" (a copy onto itself under the key)


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
    src_s3 = backend.client("s3", cfg.sourceRegion)
    dst_s3 = backend.client("s3", cfg.targetRegion)
    store = CheckpointStore(backend, cfg.targetRegion, checkpoint_table)
    pk = manifest_pk(target_bucket)
    digest_key = (range_pk(target_bucket), range_sk(start_after, end))

    # Both listings and the stored digest are independent reads: do them at once (a re-run is only these).
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="s3list") as reads:
        src_f = reads.submit(_list_range, src_s3, source_bucket, start_after, end)
        dst_f = reads.submit(_list_range, dst_s3, target_bucket, start_after, end)
        stored_f = reads.submit(store.get, *digest_key)
        src = src_f.result()
        dst, stored = dst_f.result(), stored_f.result()
    stats = _Stats(partition=str(key_range.get("id", "")), mode=mode)
    stats.seen = len(src)
    stats.bytes_seen = sum(o["size"] for o in src.values())
    target_only = [k for k in dst if k not in src and not k.startswith(PROBE_PREFIX)]
    stats.target_only = len(target_only)
    if target_only and mode == "catchup":
        _mirror_deletes(stats, src_s3, dst_s3, store, pk, source_bucket, target_bucket, target_only, dst)

    # Fast path: both listings match the digest stored when this range last finished clean.
    if src and stored and stored.get("digest") == range_digest(listing_rows(src, dst)):
        stats.skipped = stats.seen
        return _finish(stats, source_bucket, target_bucket, mode, t0)

    manifest = dict(store.query_range(pk, start_after, end, attributes=["srcEtag", "dstEtag"]))
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

    ctx = _Ctx(
        src=src_s3,
        dst=dst_s3,
        source_bucket=source_bucket,
        target_bucket=target_bucket,
        kms_key_arn=kms_key_arn,
        threshold=multipart_threshold,
        transfer=TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize or multipart_threshold,
            max_concurrency=MULTIPART_CONCURRENCY,
        ),
        mode=mode,
        pending_grace_s=pending_grace_s,
        backend_id=backend.describe(),
    )
    label = _label(stats, source_bucket, target_bucket, mode)
    records: list[tuple[str, dict[str, Any]]] = []
    last_log = time.monotonic()
    if todo:
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="s3copy")
        futures: dict[Future[_Outcome], str] = {
            pool.submit(_move_one, ctx, obj, dst.get(obj["key"])): obj["key"] for obj in todo
        }
        consumed: set[Future[_Outcome]] = set()
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
        stats.update_unsupported = _cached_update_support(ctx) or ""
    if stats.failed == 0 and stats.pending_replication == 0:
        store.put(*digest_key, {"digest": range_digest(done_rows), "objects": len(done_rows)})
    elif stored:
        store.delete(*digest_key)
    return _finish(stats, source_bucket, target_bucket, mode, t0)


def _label(stats: _Stats, source_bucket: str, target_bucket: str, mode: str) -> str:
    return f"s3://{source_bucket} -> s3://{target_bucket} {stats.partition or 'range'} ({mode})"


def _finish(stats: _Stats, source_bucket: str, target_bucket: str, mode: str, t0: float) -> dict[str, Any]:
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
        "duration_s": round(time.monotonic() - t0, 3),
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
    o: _Outcome,
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


def _move_one(ctx: _Ctx, obj: dict[str, Any], dst: dict[str, Any] | None) -> _Outcome:
    """Decide and copy one object; every ordinary error becomes an outcome, not an exception.

    A target object of the same size with no manifest record (a replica, or a copy made after the last
    manifest flush of a killed run) is compared by S3 checksums first: equal ones mean the target already
    holds this content, so it is recorded (and put under the migration key if it is not) instead of copied.
    """
    key = obj["key"]
    try:
        etag, size, storage_class = obj["etag"], obj["size"], obj.get("storageClass")
        head: dict[str, Any] | None = None
        action = "copy"
        if ctx.mode == "catchup":
            head = _head(ctx.src, ctx.source_bucket, key, checksums=True)
            if head is None:
                return _Outcome(key, "vanished")
            etag, size = head["ETag"], int(head["ContentLength"])
            storage_class = head.get("StorageClass", storage_class)
            modified = head.get("LastModified") or obj.get("lastModified")
            age = (datetime.now(UTC) - modified).total_seconds() if modified else float("inf")
            action = catchup_action(head.get("ReplicationStatus"), age, dst, size, ctx.pending_grace_s)
            if action == "pending":
                return _Outcome(key, "pending", etag, size)
        if dst is not None and int(dst["size"]) == int(size):
            held = _already_held(ctx, key, head, replicated=action == "replicated")
            if held is not None:
                return held
        return _copy_current(ctx, key, etag, size, storage_class)
    except Exception as err:
        return _Outcome(key, "failed", error=_describe(err))


def _already_held(ctx: _Ctx, key: str, src_head: dict[str, Any] | None, replicated: bool) -> _Outcome | None:
    """The outcome for a target object that already holds the source's content, or None (then copy).

    Two HEADs with ChecksumMode (one when the catch-up has the source's already). Equal checksums of one
    type prove equal content; S3 replication says COMPLETED for its own replicas when no common checksum
    decides. Either way the object must be under the migration key: replicas of SSE-S3 objects are not.
    """
    if src_head is None:
        src_head = _head(ctx.src, ctx.source_bucket, key, checksums=True)
        if src_head is None:
            return None  # gone meanwhile: the copy path reports it as vanished
    dst_head = _head(ctx.dst, ctx.target_bucket, key, checksums=True)
    if dst_head is None or int(dst_head["ContentLength"]) != int(src_head["ContentLength"]):
        return None
    same, _how = checksum_verdict(object_checksums(src_head), object_checksums(dst_head))
    if same is False or (same is None and not replicated):
        return None
    try:
        dst_etag, method = _ensure_key(ctx, key, dst_head)
    except Exception as err:
        if _code(err) in _PRECONDITION:  # the target object changed under the re-encryption: next pass decides
            return _Outcome(key, "pending", src_head["ETag"], int(src_head["ContentLength"]))
        raise
    status: Literal["adopted", "replicated"] = "replicated" if replicated else "adopted"
    return _Outcome(key, status, src_head["ETag"], int(src_head["ContentLength"]), dst_etag, reencrypted=method)


# --------------------------------------------------------------------------------------------------
# Re-encryption under the migration key
# --------------------------------------------------------------------------------------------------

PROBE_PREFIX = ".region-migration-probe/"
PROBE_LEFTOVER_S = 3600.0  # a probe object this old was left by a killed run
UPDATE_PROBE_TTL_S = 15 * 60.0  # one probe per bucket per run (a run is minutes; a sync every 15 minutes)
_update_support: dict[tuple[str, str], tuple[float, str]] = {}
_update_lock = threading.Lock()


def clear_update_support() -> None:
    """Forget every UpdateObjectEncryption probe result (tests; a long-lived worker forgets after the TTL)."""
    with _update_lock:
        _update_support.clear()


def _ensure_key(ctx: _Ctx, key: str, dst_head: dict[str, Any]) -> tuple[str, str]:
    """(target ETag, how it was re-encrypted: '' when it already was under the key, 'update' or 'copy').

    UpdateObjectEncryption re-encrypts in place (no data movement; ETag, metadata, checksums and storage
    class kept: S3 API reference) and only for SSE-S3 / SSE-KMS objects (an unencrypted object answers
    InvalidRequest): where the backend lacks it, or for such an object, a copy onto itself under the key.
    """
    if not encryption_problem(dst_head, ctx.kms_key_arn):
        return str(dst_head["ETag"]), ""
    version = {"VersionId": dst_head["VersionId"]} if dst_head.get("VersionId") not in (None, "null") else {}
    if not _cached_update_support(ctx, probe=True):
        try:
            ctx.dst.update_object_encryption(
                Bucket=ctx.target_bucket,
                Key=key,
                ObjectEncryption={"SSEKMS": {"KMSKeyArn": ctx.kms_key_arn, "BucketKeyEnabled": True}},
                **version,
            )
            after = ctx.dst.head_object(Bucket=ctx.target_bucket, Key=key, **version)
            if not encryption_problem(after, ctx.kms_key_arn):
                return str(after["ETag"]), "update"
        except Exception as err:
            if _code(err) != "InvalidRequest":
                raise
    return _self_copy(ctx, key, dst_head), "copy"


def _self_copy(ctx: _Ctx, key: str, head: dict[str, Any]) -> str:
    """A copy of the object onto itself under the migration key (a new version; metadata, content headers,
    tags, storage class and checksum algorithm kept), pinned to the ETag just read.

    The copy source is the current object, never a VersionId: a pinned version would pass its own
    If-Match and put older content back on top of a newer version or a delete marker that replication
    delivered in between; unpinned, S3 answers 412 and the next pass decides again."""
    if int(head["ContentLength"]) >= ctx.threshold:
        return _managed_copy(ctx, key, str(head["ETag"]), src=ctx.dst, src_bucket=ctx.target_bucket)
    return _simple_copy(ctx, key, str(head["ETag"]), head.get("StorageClass"), src_bucket=ctx.target_bucket)


def _cached_update_support(ctx: _Ctx, probe: bool = False) -> str | None:
    """Why UpdateObjectEncryption cannot be used on the target bucket ('' = it can), probed at most once per
    bucket and run; None when not probed yet and `probe` is False."""
    cache_key = (ctx.backend_id, ctx.target_bucket)
    with _update_lock:
        hit = _update_support.get(cache_key)
        if hit is not None and time.monotonic() - hit[0] < UPDATE_PROBE_TTL_S:
            return hit[1]
        if not probe:
            return None
        why = probe_update_encryption(ctx.dst, ctx.target_bucket, ctx.kms_key_arn)
        _update_support[cache_key] = (time.monotonic(), why)
    if why:
        log.warning("s3://%s: %s; re-encrypting by a copy onto itself instead", ctx.target_bucket, why)
    return why


def probe_update_encryption(s3: Any, bucket: str, kms_key_arn: str) -> str:
    """'' when UpdateObjectEncryption really re-encrypts in place here, else what was measured.

    Tried on an object of our own, never on data, and judged by the read-back: moto 5.2.5 answers 200
    but stores the request's XML body as a new version of the object (it takes the call for a PutObject).
    Every version of the probe object is removed afterwards.
    """
    key = f"{PROBE_PREFIX}update-object-encryption-{uuid.uuid4().hex}"
    body = b"region-migration: does UpdateObjectEncryption work here?"
    _remove_probe(s3, bucket, PROBE_PREFIX, older_than_s=PROBE_LEFTOVER_S)  # a killed run's probe
    try:
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
        version = {"VersionId": put["VersionId"]} if put.get("VersionId") not in (None, "null") else {}
        try:
            s3.update_object_encryption(
                Bucket=bucket,
                Key=key,
                ObjectEncryption={"SSEKMS": {"KMSKeyArn": kms_key_arn, "BucketKeyEnabled": True}},
                **version,
            )
        except Exception as err:
            return f"UpdateObjectEncryption not available ({_describe(err)[:200]})"
        listed = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        got = s3.get_object(Bucket=bucket, Key=key)
        data = got["Body"].read()
        if len([v for v in listed if v["Key"] == key]) != 1 or data != body:
            return "UpdateObjectEncryption answered but wrote a new object version instead of re-encrypting in place"
        problem = encryption_problem(got, kms_key_arn)
        if problem:
            return f"UpdateObjectEncryption answered but the object kept {problem}"
        return ""
    except Exception as err:
        return f"UpdateObjectEncryption could not be probed ({_describe(err)[:200]})"
    finally:
        _remove_probe(s3, bucket, key)


def _remove_probe(s3: Any, bucket: str, prefix: str, older_than_s: float = 0.0) -> None:
    """Delete every version and delete marker under our probe key (or, with older_than_s, the probe prefix's
    leftovers of that age): our own objects only, nothing else is touched."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                mine = v["Key"] == prefix or (older_than_s and v["Key"].startswith(PROBE_PREFIX))
                if mine and (not older_than_s or v["LastModified"] < cutoff):
                    s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    except Exception as err:  # never fail a copy over the probe's cleanup; say what is left
        log.warning("could not remove probe objects s3://%s/%s: %s", bucket, prefix, _describe(err))


# --------------------------------------------------------------------------------------------------
# Deletes on the source
# --------------------------------------------------------------------------------------------------


def _mirror_deletes(
    stats: _Stats,
    src_s3: Any,
    dst_s3: Any,
    store: CheckpointStore,
    pk: str,
    source_bucket: str,
    target_bucket: str,
    target_only: list[str],
    dst: dict[str, dict[str, Any]],
) -> None:
    """Mirror source deletes onto the target: only objects this migration wrote, as delete markers.

    A plain DeleteObject (no VersionId) on the versioned target adds a delete marker; the object's
    versions stay (recoverable). It is conditional on the ETag we recorded (If-Match: conditional deletes
    work on general purpose buckets and apply to the current version), and only after a HEAD shows the
    source key still gone. Objects the migration did not write are listed and left alone.
    """
    with ThreadPoolExecutor(max_workers=min(8, len(target_only)), thread_name_prefix="s3mirror") as pool:
        records = dict(zip(target_only, pool.map(lambda k: store.get(pk, k), target_only), strict=True))
    ours, foreign = classify_target_only(dst_s3, target_bucket, target_only, dst, records)
    stats.target_only_foreign += len(foreign)
    stats.foreign_keys.extend(foreign)
    if foreign:
        log.warning(
            "s3://%s: %d object(s) not in the source and not written by this migration, left untouched: %s",
            target_bucket,
            len(foreign),
            ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else ""),
        )
    if not ours:
        return
    versioning = dst_s3.get_bucket_versioning(Bucket=target_bucket).get("Status") or "Disabled"
    for key in ours:
        if versioning != "Enabled":
            stats.failed += 1
            stats.failures.append(
                {"key": key, "error": f"source deleted it, but target versioning is {versioning}: not deleted"}
            )
            continue
        try:
            if _head(src_s3, source_bucket, key) is not None:
                continue  # written again since the listing: the next pass copies it
            dst_s3.delete_object(Bucket=target_bucket, Key=key, IfMatch=dst[key]["etag"])
            store.delete(pk, key)
            stats.deleted += 1
            stats.deleted_keys.append(key)
        except Exception as err:
            if _code(err) in _PRECONDITION:
                continue  # the target object changed since the listing: decided again next pass
            stats.failed += 1
            stats.failures.append({"key": key, "error": _describe(err)})
    if stats.deleted:
        log.info("s3://%s: %d object(s) deleted on the source got a delete marker", target_bucket, stats.deleted)


def _copy_current(ctx: _Ctx, key: str, etag: str, size: int, storage_class: str | None) -> _Outcome:
    """Copy exactly the version with `etag`; if it was overwritten meanwhile, copy the new current one."""
    for _ in range(_CHANGE_RETRIES):
        try:
            if size >= ctx.threshold:
                return _Outcome(key, "copied", etag, size, _managed_copy(ctx, key, etag), multipart=True)
            return _Outcome(key, "copied", etag, size, _simple_copy(ctx, key, etag, storage_class))
        except Exception as err:
            code = _code(err)
            if code in _VANISHED:
                return _Outcome(key, "vanished")
            if code not in _PRECONDITION:
                raise
        head = _head(ctx.src, ctx.source_bucket, key)
        if head is None:
            return _Outcome(key, "vanished")
        etag, size = head["ETag"], int(head["ContentLength"])
        storage_class = head.get("StorageClass", storage_class)
    return _Outcome(key, "failed", error=f"source changed during {_CHANGE_RETRIES} copy attempts")


def _simple_copy(ctx: _Ctx, key: str, etag: str, storage_class: str | None, src_bucket: str = "") -> str:
    """CopyObject keeps metadata, content headers and tags itself (COPY directives); returns target ETag.
    From the source bucket, or (src_bucket = the target) onto itself to re-encrypt."""
    resp = ctx.dst.copy_object(
        Bucket=ctx.target_bucket,
        Key=key,
        CopySource={"Bucket": src_bucket or ctx.source_bucket, "Key": key},
        CopySourceIfMatch=etag,
        MetadataDirective="COPY",
        TaggingDirective="COPY",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=ctx.kms_key_arn,
        BucketKeyEnabled=True,
        **storage_class_args(storage_class),
    )
    return str(resp["CopyObjectResult"]["ETag"])


def _managed_copy(ctx: _Ctx, key: str, etag: str, src: Any = None, src_bucket: str = "") -> str:
    """Multipart copy through s3transfer, pinned to `etag`; returns the target ETag.

    s3transfer >= 0.19.1 gives the multipart copy CopyObject's directives: it carries the source's metadata and
    content headers from its own HeadObject, and under TaggingDirective COPY reads the source's tags
    (GetObjectTagging) and puts them on the new object (PutObjectTagging) after CompleteMultipartUpload. Not among
    what it carries: the storage class and WebsiteRedirectLocation (which S3 never copies by directive), passed
    here from our HEAD; nor, on a copy onto itself, the tags: by then the key's current object is the new,
    untagged one, so they are re-applied from the version we copied. s3transfer refuses BucketKeyEnabled here;
    the target bucket's default bucket-key setting applies.
    """
    src = src or ctx.src
    src_bucket = src_bucket or ctx.source_bucket
    head = src.head_object(Bucket=src_bucket, Key=key, IfMatch=etag)
    extra: dict[str, Any] = {
        **redirect_args(head),
        **storage_class_args(head.get("StorageClass")),
        "CopySourceIfMatch": etag,
        "MetadataDirective": "COPY",
        "TaggingDirective": "COPY",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": ctx.kms_key_arn,
    }
    ctx.dst.copy(
        CopySource={"Bucket": src_bucket, "Key": key},
        Bucket=ctx.target_bucket,
        Key=key,
        ExtraArgs=extra,
        SourceClient=src,
        Config=ctx.transfer,
    )
    out = ctx.dst.head_object(Bucket=ctx.target_bucket, Key=key)
    want_tags = int(head.get("TagCount") or 0)
    if src_bucket == ctx.target_bucket and want_tags and int(out.get("TagCount") or 0) != want_tags:
        version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        tags = src.get_object_tagging(Bucket=src_bucket, Key=key, **version)["TagSet"]
        ctx.dst.put_object_tagging(Bucket=ctx.target_bucket, Key=key, Tagging={"TagSet": tags})
    return str(out["ETag"])


def _head(s3: Any, bucket: str, key: str, checksums: bool = False) -> dict[str, Any] | None:
    try:
        if checksums:
            return s3.head_object(Bucket=bucket, Key=key, ChecksumMode=_ENABLED)
        return s3.head_object(Bucket=bucket, Key=key)
    except Exception as err:
        if _code(err) in _VANISHED:
            return None
        raise


def _code(err: BaseException) -> str:
    """AWS error code of err or of an error it was raised from (`raise ... from err`)."""
    seen: BaseException | None = err
    while seen is not None:
        code = error_code(seen)
        if code:
            return code
        seen = seen.__cause__
    return ""


def _describe(err: BaseException) -> str:
    code = _code(err)
    text = str(err) or type(err).__name__
    return f"{code}: {text}" if code and code not in text else text
