"""Pure planning for the S3 move: key-range partitions, skip decisions, replication rule bodies.

No AWS calls here, so every decision the copier makes can be unit-tested without an emulator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


ROW_SUM_MOD = 1 << 256


def row_sum(key: str, etag: str, size: int) -> int:
    """One object's share of a range's listing sum: the SHA-256 of (key, ETag, size) as a number.

    Shares add up (mod 2^256) over any split of a range, in any order, so planning sums the source page by
    page as it lists, and a re-run proves a range unchanged without listing the source a second time."""
    return int.from_bytes(hashlib.sha256(f"{key}\0{etag}\0{size}".encode()).digest(), "big")


def listing_sum(rows: Iterable[tuple[str, str, int]]) -> str:
    """The sum of (key, ETag, size) rows as planning writes it in a range ("srcSum"), and the store keeps it."""
    return f"{sum(row_sum(*r) for r in rows) % ROW_SUM_MOD:064x}"


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


# --------------------------------------------------------------------------------------------------
# Planning at scale: partition sizes, split points, ranges cut from per-piece samples
# --------------------------------------------------------------------------------------------------

PARTITIONS_PER_WORKER = 4  # so a slow partition does not leave the other task workers idle
# Below this a partition's own cost (a Prefect task run, a listing of its range on each side) is a large share of
# its copies: 1,000 keys is the size every benchmark before issue 10 ran with, so small buckets plan as before.
MIN_PARTITION_KEYS = 1_000
MAX_PARTITION_KEYS = 100_000  # a retried partition re-walks its listings (its copies are skipped by the manifest)
MAX_PARTITIONS = 10_000  # Prefect (and a Dask scheduler) stay healthy at ~10^4 task runs per flow
SAMPLE_BUDGET = 4 * MAX_PARTITIONS  # boundary keys a plan keeps at most, whatever the object count


def partition_size(objects: int, task_workers: int) -> int:
    """Keys per partition for a bucket of `objects` keys and `task_workers` task runs side by side.

    Small buckets get >= PARTITIONS_PER_WORKER partitions per worker (never under MIN_PARTITION_KEYS keys);
    big ones at most MAX_PARTITION_KEYS keys each, until that would exceed MAX_PARTITIONS partitions: then
    the count wins (10^9 objects -> 10^4 partitions of 10^5 keys)."""
    want = -(-max(objects, 1) // max(1, task_workers * PARTITIONS_PER_WORKER))
    size = min(max(want, MIN_PARTITION_KEYS), MAX_PARTITION_KEYS)
    return max(size, -(-objects // MAX_PARTITIONS))


def _between(a: int, b: int, parts: int) -> list[int]:
    """Up to parts-1 code points evenly spread strictly between a and b, allowed in a key (no surrogates)."""
    out: list[int] = []
    for j in range(1, parts):
        c = a + (b - a) * j // parts
        if 0xD800 <= c <= 0xDFFF:
            c = 0xD7FF if a < 0xD7FF else 0xE000
        if a < c < b and (not out or c > out[-1]):
            out.append(c)
    return out


def split_points(lo: str, hi: str | None, parts: int = 2) -> list[str]:
    """Up to parts-1 increasing strings strictly between lo and hi (hi None = no upper bound) in S3's order,
    evenly spread in character space at the first character where they differ.

    S3 lists "in UTF-8 character encoding in lexicographical order"; for valid strings Python's str order
    (by code point) is that same order, so the points compare the way S3 compares them."""
    if hi is None:  # no upper bound: spread toward the end of printable ASCII, or of Unicode past it
        hi = "\x7f" if (not lo or ord(lo[0]) < 0x7E) else "\U0010ffff"
    if not lo < hi:
        return []
    i = 0
    while i < len(lo) and lo[i] == hi[i]:
        i += 1
    bottom = ord(lo[i]) if i < len(lo) else 0x1F  # lo is a prefix of hi: extend it with a printable char
    points = [hi[:i] + chr(c) for c in _between(bottom, ord(hi[i]), parts)]
    if points or i >= len(lo):
        return points
    # adjacent characters: keep lo's and spread its tail against no bound
    return [lo[: i + 1] + tail for tail in split_points(lo[i + 1 :], None, parts)]


def common_prefix(lo: str | None, hi: str | None) -> str:
    """The Prefix a listing of (lo, hi] may use: every string strictly between two strings starts with
    their common prefix, so the listing ends at the prefix's end instead of reading past hi."""
    if lo is None or hi is None:
        return ""
    n = 0
    while n < len(lo) and n < len(hi) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


@dataclass
class Piece:
    """One listed key range (lo, hi]: its count, bytes and boundary samples (local count, key).

    A sample is kept at every `step`-th key, so a piece's memory is its share of SAMPLE_BUDGET, not its
    object count."""

    lo: str | None
    hi: str | None
    cursor: str | None = None  # last key listed; the next page starts after it
    done: bool = False
    pages: int = 0  # LIST calls this piece has made
    count: int = 0
    bytes: int = 0
    samples: list[tuple[int, str]] = field(default_factory=list)
    marked: int = 0  # keys the listing's `mark` picked (e.g. objects full validation must stream)
    marked_bytes: int = 0
    sum: int = 0  # row_sum of every key counted (mod ROW_SUM_MOD)
    sample_sums: list[int] = field(default_factory=list)  # the running sum at each sample

    def take(self, keys: Iterable[tuple[str, int, bool, int]], step: int) -> None:
        """Count the keys of one page that lie in the piece (listing order), sampling every step-th;
        each key comes with its size, whether it is marked, and its row_sum."""
        for key, size, mark, share in keys:
            if self.hi is not None and key > self.hi:
                self.done = True
                return
            self.count += 1
            self.bytes += size
            self.sum = (self.sum + share) % ROW_SUM_MOD
            if mark:
                self.marked += 1
                self.marked_bytes += size
            self.cursor = key
            if self.count % step == 0:
                self.samples.append((self.count, key))
                self.sample_sums.append(self.sum)

    def thin(self, step: int) -> None:
        """Keep only the samples on multiples of a (doubled) step."""
        kept = [(s, t) for s, t in zip(self.samples, self.sample_sums, strict=True) if s[0] % step == 0]
        self.samples, self.sample_sums = [s for s, _ in kept], [t for _, t in kept]


def cut_ranges(pieces: Iterable[Piece], size: int) -> list[dict[str, Any]]:
    """Key ranges {"id", "start_after", "end", "keys", "bytes"} from pieces listed in key order.

    Ranges end only at a sample key or a piece's upper bound, and tile the key space exactly as the
    pieces do: each range starts after the previous range's end, the first after nothing, the last is
    open-ended (new keys still land somewhere). A range holds `size` keys or more; "keys" is exact,
    "bytes" is split by the keys' share within a piece (exact at piece ends). A range that holds keys also
    carries "srcSum", the listing_sum of its source rows as listed, exact (copy_partition's re-run proof)."""
    marks: list[tuple[int, str, int, int]] = []  # (cumulative count, key, cumulative bytes estimate, running sum)
    base = nbytes = total = 0
    for p in pieces:
        for (local, key), at in zip(p.samples, p.sample_sums, strict=True):
            marks.append((base + local, key, nbytes + (p.bytes * local // p.count if p.count else 0), total + at))
        base, nbytes, total = base + p.count, nbytes + p.bytes, total + p.sum
        if p.hi is not None:
            marks.append((base, p.hi, nbytes, total))
    ranges: list[dict[str, Any]] = []
    start, last, last_bytes, last_sum = None, 0, 0, 0
    for cum, key, cum_bytes, cum_sum in marks:
        if cum - last >= size and cum < base:
            ranges.append(_range(len(ranges), start, key, cum - last, cum_bytes - last_bytes, cum_sum - last_sum))
            start, last, last_bytes, last_sum = key, cum, cum_bytes, cum_sum
    ranges.append(_range(len(ranges), start, None, base - last, nbytes - last_bytes, total - last_sum))
    return ranges


def _range(i: int, start: str | None, end: str | None, keys: int, nbytes: int, rows: int) -> dict[str, Any]:
    out = {"id": f"p{i:05d}", "start_after": start, "end": end, "keys": keys, "bytes": nbytes}
    return {**out, "srcSum": f"{rows % ROW_SUM_MOD:064x}"} if keys else out


def plan_summary(ranges: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What the planning counted, for the report: objects and bytes over its ranges, and how many ranges
    (= copy task runs) the bucket maps to."""
    rows = list(ranges)
    return {
        "objects": sum(int(r.get("keys", 0)) for r in rows),
        "bytes": sum(int(r.get("bytes", 0)) for r in rows),
        "partitions": len(rows),
    }
