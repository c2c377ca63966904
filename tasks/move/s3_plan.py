"""Pure planning for the S3 move: key-range partitions, skip decisions, replication rule bodies.

No AWS calls here, so every decision the copier makes can be unit-tested without an emulator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from config.model import MigrationConfig
from tasks.aws import bucket_arn, partition_of  # noqa: F401  (re-exported: the one partition source)
from tasks.move.keys import VERSIONING_SK, manifest_pk, range_pk, range_sk, versioning_pk  # noqa: F401 (re-exported)

MIB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * MIB
# Replication normally completes within minutes; older PENDING objects are copied by the catch-up.
PENDING_GRACE_S = 15 * 60

# Storage classes worth keeping on the copy (CopyObject otherwise writes STANDARD). Archive classes
# (GLACIER, DEEP_ARCHIVE) cannot be copied without a restore and fail loudly instead.
KEPT_STORAGE_CLASSES = frozenset({"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"})

CatchupAction = Literal["replicated", "pending", "copy"]


def range_digest(rows: Iterable[tuple[str, str, int, str, int]]) -> str:
    """Digest of (key, source ETag, source size, target ETag, target size) rows, in key order.

    Stored when a range finishes clean; a re-run whose two listings give the same digest knows every
    object is done without reading a single manifest record."""
    h = hashlib.sha256()
    for key, src_etag, src_size, dst_etag, dst_size in sorted(rows):
        h.update(f"{key}\0{src_etag}\0{src_size}\0{dst_etag}\0{dst_size}\n".encode())
    return h.hexdigest()


def listing_rows(
    src: Mapping[str, Mapping[str, Any]], dst: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str, int, str, int]]:
    """Digest rows from a source and a target listing of the same range ('' / -1 for a missing target)."""
    rows = []
    for key, s in src.items():
        d = dst.get(key)
        rows.append((key, s["etag"], int(s["size"]), d["etag"] if d else "", int(d["size"]) if d else -1))
    return rows


def partition_ranges(keys: Iterable[str], max_keys: int = 1000) -> list[dict[str, Any]]:
    """Key ranges of at most `max_keys` listed keys each, from keys in listing order.

    `start_after` is exclusive and `end` inclusive; the last range is open-ended (end None) so keys
    written after planning still land in some partition. An empty bucket gives one open range.
    """
    if max_keys < 1:
        raise ValueError(f"max_keys must be at least 1 (got {max_keys})")
    bounds: list[str] = []
    count = 0
    for key in keys:
        count += 1
        if count % max_keys == 0:
            bounds.append(key)
    if bounds and count % max_keys == 0:
        bounds.pop()  # the last full chunk is the open-ended tail
    ranges: list[dict[str, Any]] = []
    start: str | None = None
    for i, end in enumerate([*bounds, None]):
        ranges.append({"id": f"p{i:05d}", "start_after": start, "end": end})
        start = end
    return ranges


def in_range(key: str, start_after: str | None, end: str | None) -> bool:
    """True when start_after < key <= end (None = unbounded); str order is S3's UTF-8 byte order."""
    return (start_after is None or key > start_after) and (end is None or key <= end)


def is_done(src: Mapping[str, Any], dst: Mapping[str, Any] | None, record: Mapping[str, Any] | None) -> bool:
    """An object needs no copy when the target holds it at the same size and the manifest says that
    exact source ETag was copied to that exact target ETag (SSE-KMS ETags differ between the two, so
    only the manifest links them). Decided from listings alone: no per-object call on the skip path."""
    if dst is None or record is None:
        return False
    return (
        int(dst["size"]) == int(src["size"])
        and record.get("srcEtag") == src["etag"]
        and record.get("dstEtag") == dst["etag"]
    )


def catchup_action(
    replication_status: str | None,
    age_s: float,
    dst: Mapping[str, Any] | None,
    size: int,
    pending_grace_s: float = PENDING_GRACE_S,
) -> CatchupAction:
    """What the catch-up does with an object replication may already handle.

    COMPLETED with the target present at the same size: replication did it, just record it. PENDING
    and young: leave it to replication this round. FAILED, no status (written before the rule, or a
    backend that never replicates), or PENDING for too long: copy it ourselves.
    """
    status = (replication_status or "").upper()
    if status == "COMPLETED" and dst is not None and int(dst["size"]) == int(size):
        return "replicated"
    if status == "PENDING" and age_s < pending_grace_s:
        return "pending"
    return "copy"


def redirect_args(head: Mapping[str, Any]) -> dict[str, str]:
    """A HeadObject's WebsiteRedirectLocation as copy ExtraArgs: "unique to each object and is not copied when
    using the x-amz-metadata-directive header" (S3 API reference, CopyObject), so a multipart copy passes it."""
    location = head.get("WebsiteRedirectLocation")
    return {"WebsiteRedirectLocation": str(location)} if location else {}


def storage_class_args(storage_class: str | None) -> dict[str, str]:
    """StorageClass to request on the copy, when the source's class is worth keeping."""
    return {"StorageClass": storage_class} if storage_class in KEPT_STORAGE_CLASSES else {}


def replication_rule_id(cfg: MigrationConfig) -> str:
    """Our rule's ID on a source bucket: batch + environment, so teardown finds exactly ours."""
    return f"region-migration-{cfg.migration_batch}-{cfg.environment_suffix}"


def replication_rule(rule_id: str, priority: int, destination_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """Our replication rule (V2 schema): every object, delete markers too, SSE-KMS objects included,
    replicas re-encrypted with the target CMK."""
    return {
        "ID": rule_id,
        "Priority": priority,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": {
            "Bucket": destination_arn,
            "EncryptionConfiguration": {"ReplicaKmsKeyID": kms_key_arn},
            # Without replication metrics S3 publishes no ReplicationLatency / OperationsFailedReplication,
            # and the alarms on them would never fire.
            "Metrics": {"Status": "Enabled"},
        },
    }


def next_priority(rules: Iterable[Mapping[str, Any]]) -> int:
    """A priority above every other rule's (V2 rules need distinct priorities)."""
    return max((int(r.get("Priority") or 0) for r in rules), default=0) + 1


def v1_rules(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """IDs of rules in the old V1 schema (top-level Prefix, no Filter), which S3 won't mix with V2."""
    return [str(r.get("ID", "?")) for r in rules if "Filter" not in r and "Prefix" in r]


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(_flatten(v, path))
        else:
            out[path] = v
    return out


def rule_drift(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> list[str]:
    """Dotted paths of `desired` whose value `actual` lacks or differs on (all of them if no rule)."""
    want = _flatten(desired)
    if actual is None:
        return sorted(want)
    have = _flatten(actual)
    return sorted(p for p, v in want.items() if p not in have or str(have[p]) != str(v))


# --------------------------------------------------------------------------------------------------
# Encryption of target objects, and source deletes
# --------------------------------------------------------------------------------------------------


def key_matches(returned: str | None, key_arn: str) -> bool:
    """True when S3's SSEKMSKeyId names the migration key (S3 returns the key ARN; an id alone also counts)."""
    if not returned or not key_arn:
        return False
    return returned == key_arn or returned == key_arn.rsplit("/", 1)[-1]


def encryption_problem(head: Mapping[str, Any], key_arn: str) -> str:
    """'' when a HeadObject response shows SSE-KMS under the migration key, else what is wrong with it.

    Replicas of SSE-S3 source objects keep SSE-S3: neither the destination's default encryption nor the
    rule's ReplicaKmsKeyID (SSE-KMS sources only) applies to them (S3 User Guide, replicating encrypted objects).
    """
    sse = head.get("ServerSideEncryption")
    key = head.get("SSEKMSKeyId")
    if sse == "aws:kms" and key_matches(key, key_arn):
        return ""
    have = "no server-side encryption" if not sse else (f"{sse} with {key}" if key else str(sse))
    return f"encryption: {have}, not aws:kms with {key_arn}"


def split_target_only(
    target_only: Iterable[str],
    dst: Mapping[str, Mapping[str, Any]],
    manifest: Mapping[str, Mapping[str, Any] | None],
) -> tuple[list[str], list[str]]:
    """(ours, foreign) among target keys whose source key is gone.

    Ours: the manifest records that this migration put exactly the target's current object there (same
    target ETag), so mirroring the source's delete is ours to do. Anything else (no record, or the target
    object changed since we wrote it) was written by someone else: listed, never touched.
    """
    ours: list[str] = []
    foreign: list[str] = []
    for key in sorted(target_only):
        record = manifest.get(key)
        if record is not None and record.get("dstEtag") == dst[key]["etag"]:
            ours.append(key)
        else:
            foreign.append(key)
    return ours, foreign
