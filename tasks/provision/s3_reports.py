"""The migration-owned reports bucket of S3 Batch Operations, in the source region.

S3 Batch Replication writes its generated manifest and its completion report here, never into a target data
bucket: "a stored generated manifest must live in the source bucket's region", and "completion reports are always
encrypted with Amazon S3 managed keys (SSE-S3)" (S3 User Guide), so the bucket's default is SSE-S3. Tagged like
every migration resource, public access blocked, TLS-only, found and removed by teardown. Created only when a bucket
takes the Batch Replication path.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.names import resource_names
from tasks.provision.s3 import (
    _read,
    bucket_tags,
    create_or_claim,
    describe_bucket,
    ensure_tls_only,
    head,
    tag_and_block_public,
)
from tasks.steps import step

SSE_S3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}


@step("provision-reports-bucket")
def ensure_reports_bucket(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Create or converge the reports bucket (source region); its settings read back plus created/repaired."""
    region, bucket = cfg.source_region, resource_names(cfg).reports_bucket
    s3 = backend.client("s3", region)
    created = create_or_claim(s3, cfg, bucket, region)
    fixed = tag_and_block_public(s3, cfg, bucket)
    unsupported: dict[str, str] = {}
    enc = _read(s3.get_bucket_encryption, Bucket=bucket)
    rules = enc.get("ServerSideEncryptionConfiguration", {}).get("Rules", []) if isinstance(enc, dict) else []
    if [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules] != ["AES256"]:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=SSE_S3)
        fixed.append("encryption")
    if ensure_tls_only(s3, bucket, region, unsupported):
        fixed.append("tlsOnlyPolicy")
    return describe_bucket(backend, region, bucket) | {
        "created": created,
        "repaired": [] if created else fixed,
        "notSupportedByBackend": unsupported,
    }


def find_reports_bucket(backend: Backend, cfg: MigrationConfig) -> dict[str, Any] | None:
    """The reports bucket with our name in the source region, and whether its tags say it is ours (teardown)."""
    region, bucket = cfg.source_region, resource_names(cfg).reports_bucket
    s3 = backend.client("s3", region)
    state = head(s3, bucket)
    if state == "absent":
        return None
    if state == "forbidden":
        return {"name": bucket, "region": region, "owned": False, "reason": "the name is another account's bucket"}
    return {"name": bucket, "region": region, "owned": cfg.owns(bucket_tags(s3, bucket))}
