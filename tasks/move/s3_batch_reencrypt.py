"""Re-encrypt a Batch-replicated bucket's SSE-S3 replicas under the migration key with one S3 Batch Operations job.

Replicas of SSE-S3 source objects keep SSE-S3 (the replication rule can only re-encrypt SSE-KMS sources). After
the bucket's Batch Replication job (tasks/move/s3_batch.py) replicated at least one object, one more job, in the
TARGET bucket's region, copies each such replica onto itself (S3PutObjectCopy, SSEAwsKmsKeyId = the migration key,
BucketKeyEnabled) over a manifest S3 generates from the target bucket, filtered to replicas stored SSE-S3 in
STANDARD of at most 5 GB. Like the replication job, its JobId is recorded (its own sort key) before it is waited on,
a re-run reads it back, and the keys its completion report lists as failed go to the client copy. What the filter
leaves out (bigger objects, other storage classes, replicas written after the job) the catch-up re-encrypts one
by one, as before. The target is versioned and the filter has no "current version only": should S3 list a
noncurrent SSE-S3 replica version and copy it onto its key, the catch-up that follows finds the target differing
from the source and copies the source's object again (the source is never touched).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, bucket_arn
from tasks.move.keys import BATCH_REENCRYPT_SK
from tasks.move.s3_batch import client_request_token, finish_job, job_common, job_prefix, start_once
from tasks.names import resource_names
from tasks.steps import step

# CopyObject "creates a copy of an object that is up to 5 GB in size in a single atomic action" (S3 API
# reference); the Batch Copy operation is CopyObject, so a bigger replica stays for the client (multipart) copy.
COPY_MAX_BYTES = 5 * 1024**3
# A copy without StorageClass writes STANDARD: only STANDARD replicas are copied, so none changes class.
FILTER: dict[str, Any] = {
    "ObjectReplicationStatuses": ["REPLICA"],
    "MatchAnyObjectEncryption": [{"SSES3": {}}],
    "MatchAnyStorageClass": ["STANDARD"],
    "ObjectSizeLessThanBytes": COPY_MAX_BYTES + 1,
}
TITLE = "S3 Batch re-encryption"


def reencrypt_prefix(source_bucket: str) -> str:
    """Where the re-encryption job's completion report goes (under the prefix the Batch role may write)."""
    return f"{job_prefix(source_bucket)}/reencrypt"


def reencrypt_job_request(
    cfg: MigrationConfig, account_id: str, source_bucket: str, role_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """CreateJob's arguments (target region): each filtered replica of the target bucket copied onto itself under
    the migration key, metadata kept, a FailedTasksOnly report in the reports bucket, the migration's tags."""
    names = resource_names(cfg)
    target = bucket_arn(names.buckets[source_bucket], cfg.target_region)
    description = f"region-migration {cfg.migration_batch}: re-encrypt SSE-S3 replicas of s3://{source_bucket}"
    reports = bucket_arn(names.reports_bucket, cfg.source_region)
    token = client_request_token(cfg.migration_batch, source_bucket, "reencrypt")
    common = job_common(cfg, account_id, role_arn, token, description, reports, reencrypt_prefix(source_bucket))
    copy = {"TargetResource": target, "MetadataDirective": "COPY", "SSEAwsKmsKeyId": kms_key_arn}
    return common | {
        "Operation": {"S3PutObjectCopy": copy | {"BucketKeyEnabled": True}},
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "ExpectedBucketOwner": account_id,
                "SourceBucket": target,
                # a stored generated manifest must be in the generator's bucket's region: not stored (not needed)
                "EnableManifestOutput": False,
                "Filter": dict(FILTER),
            }
        },
    }


def replicated_any(job: Mapping[str, Any]) -> bool:
    """Whether a finished Batch Replication job (its report entry) replicated anything there is to re-encrypt."""
    return int(job.get("succeeded", 0) or 0) > 0


def start_reencrypt_job(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, role_arn: str, kms_key_arn: str, checkpoint_table: str
) -> dict[str, Any]:
    """The bucket's re-encryption job: the recorded one, else a new one, recorded before anyone waits."""
    return start_once(
        backend,
        cfg,
        (source_bucket, BATCH_REENCRYPT_SK, cfg.target_region, checkpoint_table),
        lambda account: reencrypt_job_request(cfg, account, source_bucket, role_arn, kms_key_arn),
        {"reportPrefix": reencrypt_prefix(source_bucket)},
    )


@step("s3-batch-reencrypt", retries=3, run_name="s3-batch-reencrypt-{source_bucket}")
def reencrypt_replicas(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, role_arn: str, kms_key_arn: str, delay: float = 5.0
) -> dict[str, Any]:
    """The re-encryption job (started once) followed to its end, its failed keys copied by the client.
    Returns {"job": ..., "copy": copy_keys' stats}."""
    ckpt = resource_names(cfg).checkpoint_table
    job = start_reencrypt_job(backend, cfg, source_bucket, role_arn, kms_key_arn, ckpt)
    return finish_job(backend, cfg, source_bucket, job, cfg.target_region, kms_key_arn, TITLE, delay)
