"""The catch-up's source deletes, mirrored onto the target: target-only keys classified (ours or foreign) and
ours given a delete marker, only while the source key is still gone."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tasks.move.checkpoints import CheckpointStore
from tasks.move.s3_object import PRECONDITION_FAILED, chained_error_code, describe_error, head_or_none
from tasks.validate.s3 import classify_target_only

log = logging.getLogger(__name__)


@dataclass
class Mirrored:
    """What one mirror pass did: keys deleted (a delete marker each), foreign keys left alone, failures."""

    deleted: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)


def mirror_deletes(
    src_s3: Any,
    dst_s3: Any,
    store: CheckpointStore,
    pk: str,
    source_bucket: str,
    target_bucket: str,
    target_only: list[str],
    dst: dict[str, dict[str, Any]],
) -> Mirrored:
    """Mirror source deletes onto the target: only objects this migration wrote, as delete markers.

    A plain DeleteObject (no VersionId) on the versioned target adds a delete marker; the object's
    versions stay (recoverable). It is conditional on the ETag we recorded (If-Match: conditional deletes
    work on general purpose buckets and apply to the current version), and only after a HEAD shows the
    source key still gone. Objects the migration did not write are listed and left alone.
    """
    with ThreadPoolExecutor(max_workers=min(8, len(target_only)), thread_name_prefix="s3mirror") as pool:
        records = dict(zip(target_only, pool.map(lambda k: store.get(pk, k), target_only), strict=True))
    ours, foreign = classify_target_only(dst_s3, target_bucket, target_only, dst, records)
    out = Mirrored(foreign=list(foreign))
    if foreign:
        log.warning(
            "s3://%s: %d object(s) not in the source and not written by this migration, left untouched: %s",
            target_bucket,
            len(foreign),
            ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else ""),
        )
    if not ours:
        return out
    versioning = dst_s3.get_bucket_versioning(Bucket=target_bucket).get("Status") or "Disabled"
    for key in ours:
        if versioning != "Enabled":
            out.failures.append(
                {"key": key, "error": f"source deleted it, but target versioning is {versioning}: not deleted"}
            )
            continue
        try:
            if head_or_none(src_s3, source_bucket, key) is not None:
                continue  # written again since the listing: the next pass copies it
            dst_s3.delete_object(Bucket=target_bucket, Key=key, IfMatch=dst[key]["etag"])
            store.delete(pk, key)
            out.deleted.append(key)
        except Exception as err:
            if chained_error_code(err) in PRECONDITION_FAILED:
                continue  # the target object changed since the listing: decided again next pass
            out.failures.append({"key": key, "error": describe_error(err)})
    if out.deleted:
        log.info("s3://%s: %d object(s) deleted on the source got a delete marker", target_bucket, len(out.deleted))
    return out
