"""Re-encrypt a Batch-replicated bucket's SSE-S3 replicas under the migration key, in place, with one S3 Batch
Operations job (Operation S3UpdateObjectEncryption).

Replicas of SSE-S3 source objects keep SSE-S3 (the replication rule can only re-encrypt SSE-KMS sources). After
the bucket's Batch Replication job (tasks/move/s3_batch.py) replicated at least one object, one more job, in the
TARGET bucket's region, runs UpdateObjectEncryption (SSE-KMS, the migration key, BucketKeyEnabled) over a
manifest S3 generates from the target bucket, filtered to replicas stored SSE-S3.

Why this operation and not a copy of each object onto itself (S3PutObjectCopy): the target is versioned and a
generated manifest lists every matching VERSION, in no order. A copy of a noncurrent version onto its key would
make old content current: silent corruption. UpdateObjectEncryption works on the version the task names
(the S3 API takes a VersionId) and "atomically update[s] the server-side encryption type of an existing object
... without any data movement", preserving "the storage class, creation date, last modified date, ETag, and
checksum properties" (S3 API reference): no new version is written, a noncurrent version is re-encrypted where
it stands and never becomes current, and validation's checksum comparison sees the same object as before.

Like the replication job, its JobId is recorded (its own sort key) before it is waited on, a re-run reads it back,
and the keys its completion report lists as failed go to the client path (s3_batch.finish_job -> s3.copy_keys).
That path takes KEYS, not versions: for each it compares the source's CURRENT object with the target's current
one, records it when the content is the same (re-encrypting it under the key if it is not) and copies the
source's current object otherwise. So a failed task on a NONCURRENT version leads to the key's current object
being checked, never to that old version (or any other) being copied anywhere; the noncurrent version itself keeps
SSE-S3 (the catch-up, too, compares current objects only) and its key is in the report's reportFailedKeys.
Replicas written after the job's manifest was generated are re-encrypted one by one by the catch-up, as before.
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

OPERATION = "S3UpdateObjectEncryption"
# Replicas stored SSE-S3, of any size and storage class: UpdateObjectEncryption moves no data and "is supported
# for all Amazon S3 storage classes that are supported by general purpose buckets" (S3 User Guide), so neither
# the 5 GB limit nor the STANDARD-only filter the copy needed applies.
FILTER: dict[str, Any] = {"ObjectReplicationStatuses": ["REPLICA"], "MatchAnyObjectEncryption": [{"SSES3": {}}]}
TITLE = "S3 Batch re-encryption"


def reencrypt_prefix(source_bucket: str) -> str:
    """Where the re-encryption job's completion report goes (under the prefix the Batch role may write)."""
    return f"{job_prefix(source_bucket)}/reencrypt"


def reencrypt_job_request(
    cfg: MigrationConfig, account_id: str, source_bucket: str, role_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """CreateJob's arguments (target region): each filtered replica version of the target bucket re-encrypted in
    place under the migration key (a bucket key), a FailedTasksOnly report in the reports bucket, the migration's
    tags. No Operation here writes an object: the manifest may list noncurrent versions (see the module)."""
    names = resource_names(cfg)
    target = bucket_arn(names.buckets[source_bucket], cfg.target_region)
    description = f"region-migration {cfg.migration_batch}: re-encrypt SSE-S3 replicas of s3://{source_bucket}"
    reports = bucket_arn(names.reports_bucket, cfg.source_region)
    token = client_request_token(cfg.migration_batch, source_bucket, "reencrypt")
    common = job_common(cfg, account_id, role_arn, token, description, reports, reencrypt_prefix(source_bucket))
    sse_kms = {"KMSKeyArn": kms_key_arn, "BucketKeyEnabled": True}
    return common | {
        "Operation": {OPERATION: {"ObjectEncryption": {"SSEKMS": sse_kms}}},
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
