"""S3 validation: source bucket against target bucket, every key, size and (at level "full") content.

An ETag is not a content hash for multipart uploads or SSE-KMS objects, and the target is always SSE-KMS,
so contents are proven with S3's own checksums when both sides carry the same full-object checksum, and
otherwise with a SHA-256 this validator streams from both objects. Cost is spent only where needed: keys and
sizes come from the listings; contents are checked only for keys present on both sides with equal sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend, is_not_found
from tasks.move.checkpoints import CheckpointStore
from tasks.move.keys import manifest_pk
from tasks.move.s3_plan import encryption_problem, split_target_only
from tasks.move.s3_walk import range_pages
from tasks.names import resource_names
from tasks.provision.kms import find_key_arn
from tasks.steps import step
from tasks.validate.checksums import (
    Checksum,
    checksum_verdict,
    hasher,
    object_checksums,
    one_side_plan,
    usable_checksums,
)
from tasks.validate.compare import KIND_DTYPE, STRING, compare_frames, empty_mismatches

__all__ = ["Checksum", "checksum_verdict", "object_checksums"]  # their home is tasks/validate/checksums.py

Level = Literal["keys", "full"]
STREAM_CHUNK = 1 << 20
DEFAULT_WORKERS = SETTINGS.s3_validate_workers


def list_frame(backend: Backend, region: str, bucket: str, etags: bool = False) -> pd.DataFrame:
    """Current objects of a whole bucket as [key, size] (plus `etag`) from the listing alone (one request per 1,000
    keys); a validation partition compares its range in chunks instead (s3_partition.range_chunks)."""
    pages = range_pages(backend.client("s3", region), bucket, None, None)
    return listing_frame([(r["key"], int(r["size"]), r["etag"]) for page in pages for r in page], etags)


def listing_frame(rows: list[tuple[str, int, str]], etags: bool = False) -> pd.DataFrame:
    """(key, size, etag) listing rows as [key, size] (plus `etag`), the columns the comparison reads."""
    frame = pd.DataFrame(
        {
            "key": pd.array([r[0] for r in rows], dtype=STRING),
            "size": np.array([r[1] for r in rows], dtype=np.int64),
        }
    )
    if etags:
        frame["etag"] = pd.array([r[2] for r in rows], dtype=STRING)
    return frame


def s3_frame(
    backend: Backend, region: str, bucket: str, level: Level = "keys", workers: int = DEFAULT_WORKERS
) -> pd.DataFrame:
    """[key, size] for every current object; level "full" adds `sha256`, streamed from every object.

    A standalone inventory: its fingerprints are comparable with any other bucket's. validate_bucket does
    not use level "full" (it hashes only the objects whose content it cannot prove otherwise).
    """
    frame = list_frame(backend, region, bucket)
    if level == "full":
        s3 = backend.client("s3", region)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hashes = list(pool.map(lambda k: stream_sha256(s3, bucket, k), frame["key"].tolist()))
        frame["sha256"] = pd.array(hashes, dtype=STRING)
    return frame


def stream_sha256(s3: Any, bucket: str, key: str) -> str:
    """SHA-256 hex of an object's content, read in 1 MiB chunks (memory stays flat for any size)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        for chunk in body.iter_chunks(STREAM_CHUNK):
            digest.update(chunk)
    finally:
        body.close()
    return digest.hexdigest()


def stream_checksum(s3: Any, bucket: str, key: str, algorithm: str) -> tuple[str, int]:
    """(the object's `algorithm` checksum in S3's base64 form, bytes read), streamed in 1 MiB chunks."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hasher(algorithm)
    read = 0
    try:
        for chunk in body.iter_chunks(STREAM_CHUNK):
            digest.update(chunk)
            read += len(chunk)
    finally:
        body.close()
    return str(digest.b64digest()), read


@dataclass(frozen=True)
class ContentResult:
    """Outcome of one content comparison."""

    key: str
    same: bool
    method: str  # "checksum CRC32", "SHA256 (source streamed)", "sha256 (streamed)", ...
    detail: str = ""
    encryption: str = ""  # what is wrong with the target object's encryption ('' = under the migration key)
    streamed_bytes: int = 0  # bytes read to decide (0 when stored checksums decided)
    gaps: tuple[tuple[str, str], ...] = ()  # stored checksums that cannot be what they claim


def compare_contents(
    backend: Backend,
    source: tuple[str, str],
    target: tuple[str, str],
    keys: list[str],
    workers: int = DEFAULT_WORKERS,
    kms_key: str | None = None,
) -> list[ContentResult]:
    """Compare the contents of `keys` between (region, bucket) pairs with a bounded thread pool.

    Stored checksums decide where both sides have one of the same algorithm and type; else the side that
    lacks a full-object checksum is streamed and hashed with the other side's algorithm (half the bytes of
    streaming both); only where neither side has one this client can compute are both streamed (SHA-256).
    With `kms_key`, each target object's encryption is checked too, from the HEAD the comparison makes anyway.
    """
    src_s3 = backend.client("s3", source[0])
    dst_s3 = backend.client("s3", target[0])
    sides = {"source": (src_s3, source[1]), "target": (dst_s3, target[1])}

    def one(key: str) -> ContentResult:
        try:
            head_src = src_s3.head_object(Bucket=source[1], Key=key, ChecksumMode="ENABLED")
            head_dst = dst_s3.head_object(Bucket=target[1], Key=key, ChecksumMode="ENABLED")
            encryption = encryption_problem(head_dst, kms_key) if kms_key is not None else ""
            src_cs, src_bad = usable_checksums(head_src)
            dst_cs, dst_bad = usable_checksums(head_dst)
            gaps = tuple(sorted({**src_bad, **dst_bad}.items()))
            same, how = checksum_verdict(src_cs, dst_cs)
            if same is not None:
                detail = "" if same else f"content: {how} differs"
                return ContentResult(key, same, how, detail, encryption, gaps=gaps)
            plan = one_side_plan(src_cs, dst_cs)
            if plan is not None:
                side, stored = plan
                got, read = stream_checksum(*sides[side], key, stored.algorithm)
                other = "target" if side == "source" else "source"
                same, how = got == stored.value, f"{stored.algorithm} ({side} streamed)"
                detail = f"content: {stored.algorithm.lower()} of the {side} {got} != the {other}'s {stored.value}"
                return ContentResult(key, same, how, "" if same else detail, encryption, read, gaps)
            a, read_a = stream_checksum(src_s3, source[1], key, "SHA256")
            b, read_b = stream_checksum(dst_s3, target[1], key, "SHA256")
            detail = "" if a == b else f"content: sha256 {a[:16]}... != {b[:16]}..."
            return ContentResult(key, a == b, "sha256 (streamed)", detail, encryption, read_a + read_b, gaps)
        except Exception as err:
            if not is_not_found(err):
                raise
            return ContentResult(key, False, "head", "object disappeared during validation (still being written?)")

    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys)))) as pool:
        return list(pool.map(one, keys))


@step("validate-bucket", retries=2, run_name="validate-{source_bucket}")
def validate_bucket(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    level: Level = "full",
    workers: int = DEFAULT_WORKERS,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """Counts plus `mismatches` (a DataFrame [key, kind, detail]: every missing, extra or different object).

    Level "keys" compares keys and sizes only; "full" also proves the content of every object present on
    both sides with equal size, and that each is under the migration key (`kms_key_arn`, else the key its
    alias names). Target-only objects this migration did not write (no manifest record of that object) are
    `extra_foreign`: listed, but not a mismatch of the migration (the catch-up deletes only its own). The
    counts are JSON-able; the flow writes `mismatches` with write_mismatches and keeps only the counts.
    One task for the whole bucket: the flow runs validate_partition per key range instead
    (tasks/validate/s3_partition.py), which holds one range in memory.
    """
    src = list_frame(backend, cfg.source_region, source_bucket)
    dst = list_frame(backend, cfg.target_region, target_bucket, etags=True)
    return check_listed(backend, cfg, source_bucket, target_bucket, src, dst, level, workers, kms_key_arn)


def check_listed(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    src: pd.DataFrame,
    dst: pd.DataFrame,
    level: Level,
    workers: int = DEFAULT_WORKERS,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """validate_bucket's counts and mismatches for listings `src` / `dst` (a whole bucket or one key range)."""
    mismatches = compare_frames(src, dst, "key", ["size"])
    mismatches = _mark_foreign(backend, cfg, target_bucket, mismatches, dst)

    results: list[ContentResult] = []
    if level == "full":
        # On both sides with equal size = every source key not already reported missing or different.
        excluded = mismatches.loc[mismatches["kind"] != "extra_in_target", "key"]
        same_size = src.loc[~src["key"].isin(excluded), "key"].tolist()
        results = compare_contents(
            backend,
            (cfg.source_region, source_bucket),
            (cfg.target_region, target_bucket),
            same_size,
            workers,
            kms_key=kms_key_arn or migration_key(backend, cfg),
        )
    rows = [(r.key, "different", r.detail) for r in results if not r.same]
    rows += [(r.key, "encryption", r.encryption) for r in results if r.encryption]
    if rows:
        content = pd.DataFrame(
            {
                "key": pd.array([r[0] for r in rows], dtype=STRING),
                "kind": pd.Series([r[1] for r in rows]).astype(KIND_DTYPE),
                "detail": pd.array([r[2] for r in rows], dtype=STRING),
            }
        )
        mismatches = pd.concat([mismatches, content], ignore_index=True).sort_values(
            ["key", "kind"], kind="stable", ignore_index=True
        )
    if mismatches.empty:
        mismatches = empty_mismatches("key")
    kinds = mismatches["kind"].value_counts()
    return {
        "source": source_bucket,
        "target": target_bucket,
        "level": level,
        "sourceObjects": len(src),
        "targetObjects": len(dst),
        "bytesSource": int(src["size"].sum()),
        "bytesTarget": int(dst["size"].sum()),
        "missing": int(kinds.get("missing_in_target", 0)),
        "extra": int(kinds.get("extra_in_target", 0)),
        "different": int(kinds.get("different", 0)),
        "encryption": int(kinds.get("encryption", 0)),
        "foreign": int(kinds.get("extra_foreign", 0)),
        "checked": len(results),
        **content_counts(results),
        "mismatches": mismatches,
    }


def content_counts(results: list[ContentResult]) -> dict[str, Any]:
    """How the contents were proven: by stored checksums alone, by streaming one side, by streaming both."""
    one_side = sum(1 for r in results if r.method.endswith(("(source streamed)", "(target streamed)")))
    both = sum(1 for r in results if r.method == "sha256 (streamed)")
    out: dict[str, Any] = {
        "checksumCompared": sum(1 for r in results if r.method.startswith("checksum")),
        "streamHashed": one_side + both,  # objects whose content was read at all
        "streamedOneSide": one_side,
        "streamedBytes": sum(r.streamed_bytes for r in results),
    }
    gaps = {f"checksum {algo}": why for r in results for algo, why in r.gaps}
    if gaps:
        out["notSupportedByBackend"] = gaps
    return out


def migration_key(backend: Backend, cfg: MigrationConfig) -> str:
    """The migration key's ARN (the alias itself when it does not exist, so every object is reported as not
    under it rather than passing unchecked)."""
    return find_key_arn(backend, cfg) or resource_names(cfg).kms_alias


def classify_target_only(
    s3: Any,
    bucket: str,
    target_only: list[str],
    dst: Mapping[str, Mapping[str, Any]],
    manifest: Mapping[str, Mapping[str, Any] | None],
) -> tuple[list[str], list[str]]:
    """(ours, foreign) among target keys whose source key is gone: the manifest's rule (split_target_only),
    plus the objects S3 replication delivered (HEAD: ReplicationStatus REPLICA). Only our rule replicates into
    a migration bucket, so a replica whose source key is gone (a lifecycle expiration on the source, a delete
    made before the rule took effect) is ours to mirror too; it has no manifest record of ours."""
    ours, foreign = split_target_only(target_only, dst, manifest)
    if not foreign:
        return ours, foreign

    def replica(key: str) -> bool:
        try:
            return s3.head_object(Bucket=bucket, Key=key).get("ReplicationStatus") == "REPLICA"
        except Exception as err:
            if is_not_found(err):
                return False
            raise

    with ThreadPoolExecutor(max_workers=min(8, len(foreign)), thread_name_prefix="s3replica") as pool:
        replicas = {k for k, r in zip(foreign, pool.map(replica, foreign), strict=True) if r}
    return sorted([*ours, *replicas]), [k for k in foreign if k not in replicas]


def _mark_foreign(
    backend: Backend, cfg: MigrationConfig, target_bucket: str, mismatches: pd.DataFrame, dst: pd.DataFrame
) -> pd.DataFrame:
    """Re-label extra_in_target rows whose object this migration did not write (same rule as the catch-up's
    delete mirror: a manifest record naming that exact target ETag) as extra_foreign."""
    extra = mismatches["kind"] == "extra_in_target"
    if not extra.any():
        return mismatches
    keys = mismatches.loc[extra, "key"].tolist()
    store = CheckpointStore(backend, cfg.target_region, resource_names(cfg).checkpoint_table)
    pk = manifest_pk(target_bucket)
    try:
        with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
            records: dict[str, Any] = dict(zip(keys, pool.map(lambda k: store.get(pk, k), keys), strict=True))
    except Exception as err:
        if not is_not_found(err):
            raise
        return mismatches  # no checkpoint table: nothing is known to be foreign
    etags = dst.set_index("key")["etag"]
    listing = {k: {"etag": etags[k]} for k in keys}
    _ours, foreign = classify_target_only(
        backend.client("s3", cfg.target_region), target_bucket, keys, listing, records
    )
    if not foreign:
        return mismatches
    out = mismatches.copy()
    marked = extra & out["key"].isin(foreign)
    out.loc[marked, "kind"] = "extra_foreign"
    out.loc[marked, "detail"] = "in the target only and not written by this migration: left untouched"
    return out
