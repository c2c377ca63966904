"""One S3 object: decide, copy (CopyObject, or a multipart copy through s3transfer) pinned to the listed ETag,
recognise a target that already holds the content (by S3 checksums), and put it under the migration key
(UpdateObjectEncryption where a probe shows it works, else a copy onto itself). Every ordinary error becomes an
Outcome, so one bad object never fails its partition."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from boto3.s3.transfer import TransferConfig

from tasks.aws import error_code
from tasks.move.s3_plan import catchup_action, encryption_problem, redirect_args, storage_class_args
from tasks.validate.checksums import (
    MULTIPART_COPY_CHECKSUM,
    checksum_gap,
    checksum_verdict,
    copy_algorithm,
    object_checksums,
)

log = logging.getLogger(__name__)

Mode = Literal["backfill", "catchup"]

PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
_VANISHED = frozenset({"NoSuchKey", "404", "NotFound"})
_CHANGE_RETRIES = 3
_ENABLED = "ENABLED"


@dataclass
class CopyContext:
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
class Outcome:
    """What happened to one object; its partition counts it and records the done ones in the manifest."""

    key: str
    status: Literal["copied", "vanished", "failed", "replicated", "pending", "adopted"]
    src_etag: str = ""
    size: int = 0
    dst_etag: str = ""
    multipart: bool = False
    error: str = ""
    reencrypted: str = ""  # "update" (UpdateObjectEncryption) or "copy" (a copy onto itself under the key)
    checksum_gap: str = ""  # why the copy's read-back has no checksum S3 computed ('' = it has one)


def move_one(ctx: CopyContext, obj: dict[str, Any], dst: dict[str, Any] | None) -> Outcome:
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
            head = head_or_none(ctx.src, ctx.source_bucket, key, checksums=True)
            if head is None:
                return Outcome(key, "vanished")
            etag, size = head["ETag"], int(head["ContentLength"])
            storage_class = head.get("StorageClass", storage_class)
            modified = head.get("LastModified") or obj.get("lastModified")
            age = (datetime.now(UTC) - modified).total_seconds() if modified else float("inf")
            action = catchup_action(head.get("ReplicationStatus"), age, dst, size, ctx.pending_grace_s)
            if action == "pending":
                return Outcome(key, "pending", etag, size)
        if dst is not None and int(dst["size"]) == int(size):
            held = _already_held(ctx, key, head, replicated=action == "replicated")
            if held is not None:
                return held
        return _copy_current(ctx, key, etag, size, storage_class, obj)
    except Exception as err:
        return Outcome(key, "failed", error=describe_error(err))


def _already_held(ctx: CopyContext, key: str, src_head: dict[str, Any] | None, replicated: bool) -> Outcome | None:
    """The outcome for a target object that already holds the source's content, or None (then copy).

    Two HEADs with ChecksumMode (one when the catch-up has the source's already). Equal checksums of one
    type prove equal content; S3 replication says COMPLETED for its own replicas when no common checksum
    decides. Either way the object must be under the migration key: replicas of SSE-S3 objects are not.
    """
    if src_head is None:
        src_head = head_or_none(ctx.src, ctx.source_bucket, key, checksums=True)
        if src_head is None:
            return None  # gone meanwhile: the copy path reports it as vanished
    dst_head = head_or_none(ctx.dst, ctx.target_bucket, key, checksums=True)
    if dst_head is None or int(dst_head["ContentLength"]) != int(src_head["ContentLength"]):
        return None
    same, _how = checksum_verdict(object_checksums(src_head), object_checksums(dst_head))
    if same is False or (same is None and not replicated):
        return None
    try:
        dst_etag, method = ensure_key(ctx, key, dst_head)
    except Exception as err:
        # The target object changed under the re-encryption: the next pass decides.
        if chained_error_code(err) in PRECONDITION_FAILED:
            return Outcome(key, "pending", src_head["ETag"], int(src_head["ContentLength"]))
        raise
    status: Literal["adopted", "replicated"] = "replicated" if replicated else "adopted"
    return Outcome(key, status, src_head["ETag"], int(src_head["ContentLength"]), dst_etag, reencrypted=method)


def _copy_current(
    ctx: CopyContext, key: str, etag: str, size: int, storage_class: str | None, listed: dict[str, Any]
) -> Outcome:
    """Copy exactly the version with `etag`; if it was overwritten meanwhile, copy the new current one.

    Every copy leaves the target a checksum S3 computed (tasks/validate/checksums.py copy_algorithm): the
    source's own full-object one where it has it, else the one asked for; the read-back says if it did not.
    """
    for _ in range(_CHANGE_RETRIES):
        try:
            multipart = size >= ctx.threshold
            algo = copy_algorithm(listed, multipart)
            if multipart:
                out = _managed_copy(ctx, key, etag, checksum=algo)
            else:
                out = _simple_copy(ctx, key, etag, storage_class, checksum=algo)
            gap = checksum_gap(out, algo)
            return Outcome(key, "copied", etag, size, str(out["ETag"]), multipart=multipart, checksum_gap=gap)
        except Exception as err:
            code = chained_error_code(err)
            if code in _VANISHED:
                return Outcome(key, "vanished")
            if code not in PRECONDITION_FAILED:
                raise
        head = head_or_none(ctx.src, ctx.source_bucket, key, checksums=True)
        if head is None:
            return Outcome(key, "vanished")
        etag, size = head["ETag"], int(head["ContentLength"])
        storage_class = head.get("StorageClass", storage_class)
        listed = {"checksumAlgorithm": list(object_checksums(head)), "checksumType": head.get("ChecksumType")}
    return Outcome(key, "failed", error=f"source changed during {_CHANGE_RETRIES} copy attempts")


def _simple_copy(
    ctx: CopyContext,
    key: str,
    etag: str,
    storage_class: str | None,
    src_bucket: str = "",
    checksum: str | None = None,
) -> dict[str, Any]:
    """CopyObject keeps metadata, content headers and tags itself (COPY directives); returns the
    CopyObjectResult (ETag, checksums). From the source bucket, or (src_bucket = the target) onto itself to
    re-encrypt. `checksum`: the ChecksumAlgorithm to ask for (None keeps the source's)."""
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
        **({"ChecksumAlgorithm": checksum} if checksum else {}),
    )
    return dict(resp["CopyObjectResult"])


def _managed_copy(
    ctx: CopyContext, key: str, etag: str, src: Any = None, src_bucket: str = "", checksum: str | None = None
) -> dict[str, Any]:
    """Multipart copy through s3transfer, pinned to `etag`; returns the new object's HEAD (ETag, checksums).

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
        **({"ChecksumAlgorithm": checksum} if checksum else {}),
    }
    ctx.dst.copy(
        CopySource={"Bucket": src_bucket, "Key": key},
        Bucket=ctx.target_bucket,
        Key=key,
        ExtraArgs=extra,
        SourceClient=src,
        Config=ctx.transfer,
    )
    out = ctx.dst.head_object(Bucket=ctx.target_bucket, Key=key, ChecksumMode=_ENABLED)
    want_tags = int(head.get("TagCount") or 0)
    if src_bucket == ctx.target_bucket and want_tags and int(out.get("TagCount") or 0) != want_tags:
        version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        tags = src.get_object_tagging(Bucket=src_bucket, Key=key, **version)["TagSet"]
        ctx.dst.put_object_tagging(Bucket=ctx.target_bucket, Key=key, Tagging={"TagSet": tags})
    return dict(out)


def head_or_none(s3: Any, bucket: str, key: str, checksums: bool = False) -> dict[str, Any] | None:
    try:
        if checksums:
            return s3.head_object(Bucket=bucket, Key=key, ChecksumMode=_ENABLED)
        return s3.head_object(Bucket=bucket, Key=key)
    except Exception as err:
        if chained_error_code(err) in _VANISHED:
            return None
        raise


def chained_error_code(err: BaseException) -> str:
    """AWS error code of err or of an error it was raised from (`raise ... from err`)."""
    seen: BaseException | None = err
    while seen is not None:
        code = error_code(seen)
        if code:
            return code
        seen = seen.__cause__
    return ""


def describe_error(err: BaseException) -> str:
    code = chained_error_code(err)
    text = str(err) or type(err).__name__
    return f"{code}: {text}" if code and code not in text else text


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


def ensure_key(ctx: CopyContext, key: str, dst_head: dict[str, Any]) -> tuple[str, str]:
    """(target ETag, how it was re-encrypted: '' when it already was under the key, 'update' or 'copy').

    UpdateObjectEncryption re-encrypts in place (no data movement; ETag, metadata, checksums and storage
    class kept: S3 API reference) and only for SSE-S3 / SSE-KMS objects (an unencrypted object answers
    InvalidRequest): where the backend lacks it, or for such an object, a copy onto itself under the key.
    """
    if not encryption_problem(dst_head, ctx.kms_key_arn):
        return str(dst_head["ETag"]), ""
    version = {"VersionId": dst_head["VersionId"]} if dst_head.get("VersionId") not in (None, "null") else {}
    if not update_support(ctx, probe=True):
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
            if chained_error_code(err) != "InvalidRequest":
                raise
    return _self_copy(ctx, key, dst_head), "copy"


def _self_copy(ctx: CopyContext, key: str, head: dict[str, Any]) -> str:
    """A copy of the object onto itself under the migration key (a new version; metadata, content headers,
    tags, storage class and checksum algorithm kept), pinned to the ETag just read.

    The copy source is the current object, never a VersionId: a pinned version would pass its own
    If-Match and put older content back on top of a newer version or a delete marker that replication
    delivered in between; unpinned, S3 answers 412 and the next pass decides again."""
    if int(head["ContentLength"]) >= ctx.threshold:
        out = _managed_copy(
            ctx, key, str(head["ETag"]), src=ctx.dst, src_bucket=ctx.target_bucket, checksum=MULTIPART_COPY_CHECKSUM
        )
    else:
        out = _simple_copy(ctx, key, str(head["ETag"]), head.get("StorageClass"), src_bucket=ctx.target_bucket)
    return str(out["ETag"])


def update_support(ctx: CopyContext, probe: bool = False) -> str | None:
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
            return f"UpdateObjectEncryption not available ({describe_error(err)[:200]})"
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
        return f"UpdateObjectEncryption could not be probed ({describe_error(err)[:200]})"
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
        log.warning("could not remove probe objects s3://%s/%s: %s", bucket, prefix, describe_error(err))
