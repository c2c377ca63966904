"""Every key of the checkpoint table, in one place: partition (pk) and sort (sk) formats.

Pure and standard-library only (no Prefect, no boto3), so anything can import it. The formats are
stored in existing checkpoint tables: changing one makes a resumed run start over (or worse, miss the
record saying what a migration changed on the source), so they stay byte-identical.
The validator Lambda writes under RESULT_PK too; its handler keeps its own copy of that one literal (the
zip ships only handler.py and digest.py) and tests/unit/test_names.py checks the two agree.

    pk                          sk
    s3#{target bucket}          {object key}             copy manifest (one record per copied object)
    s3range#{target bucket}     range#{sha256}           digest of a finished key range
    s3src#{source bucket}       versioning               the source bucket's versioning before us
    ddb#{source table}          stream | plan            the source stream record; the scan plan
    ddb#{source table}          import | pitr            export/import ARNs and intent; source PITR record
    ddb#{source table}          segment#{total}#{n}      one scan segment's progress
    ddb#{source table}          shard#{label}#{shard}    one stream shard's position
    lock                        sync                     the sync lease (tasks/move/lock.py)
    cutover                     {decided at}             the cutover decision
    validator                   {run id}                 the validator Lambda's result
    s3check#{target bucket}#{run id}  range#{sha256}#{n}  one validation range's mismatches (CSV chunks)
    s3batch#{source bucket}     job                      the S3 Batch Replication job (JobId, before it is waited on)
    s3batch#{source bucket}     reencrypt                the job re-encrypting its SSE-S3 replicas under the key
"""

from __future__ import annotations

import hashlib
import json

LOCK_PK = "lock"
SYNC_LOCK = "sync"  # the sync flow's lease, under LOCK_PK
CUTOVER_PK = "cutover"
# The validator Lambda's results (sort key: the run id); its role may write this partition only
# (dynamodb:LeadingKeys in tasks/provision/iam.py).
RESULT_PK = "validator"

VERSIONING_SK = "versioning"
STREAM_SK = "stream"  # the source stream record under table_pk: enabledByUs, streamArn, when
PLAN_SK = "plan"
IMPORT_SK = "import"  # the export/import path: token, export time, staging prefix, ExportArn, ImportArn
PITR_SK = "pitr"  # the source's point-in-time recovery: enabledByUs, when
SEGMENT_PREFIX = "segment#"
SHARD_PREFIX = "shard#"
BATCH_JOB_SK = "job"
BATCH_REENCRYPT_SK = "reencrypt"  # tasks/move/s3_batch_reencrypt.py, under batch_pk too


def manifest_pk(target_bucket: str) -> str:
    """Checkpoint partition key of a target bucket's copy manifest (sort key = object key)."""
    return f"s3#{target_bucket}"


def range_pk(target_bucket: str) -> str:
    """Checkpoint partition key of a target bucket's per-range digests."""
    return f"s3range#{target_bucket}"


def range_sk(start_after: str | None, end: str | None) -> str:
    """Sort key of one key range's digest (hashed: two 1,000-byte keys would not fit a sort key)."""
    return "range#" + hashlib.sha256(json.dumps([start_after, end]).encode()).hexdigest()


def validation_pk(target_bucket: str, run_id: str) -> str:
    """Checkpoint partition of one validation run's S3 mismatches (sort key: range_sk + chunk number); the
    run id keeps runs apart, so a range of another run's plan never mixes in."""
    return f"s3check#{target_bucket}#{run_id}"


def table_validation_pk(target_table: str, run_id: str) -> str:
    """Checkpoint partition of one validation run's DynamoDB mismatches and per-bucket counts (sort key:
    b=<hash bucket> + chunk number, counts#b=<hash bucket>)."""
    return f"ddbcheck#{target_table}#{run_id}"


def versioning_pk(source_bucket: str) -> str:
    """Checkpoint partition of the record saying what a source bucket's versioning was before the migration."""
    return f"s3src#{source_bucket}"


def batch_pk(source_bucket: str) -> str:
    """Checkpoint partition of a source bucket's S3 Batch Replication job (ListJobs/DescribeJob never return the
    ClientRequestToken, so the JobId recorded here is how a re-run finds the job it started)."""
    return f"s3batch#{source_bucket}"


def table_pk(source_table: str) -> str:
    """Checkpoint partition for everything about one source table."""
    return f"ddb#{source_table}"


def segment_sk(segment: int, total_segments: int) -> str:
    """Checkpoint sort key of one scan segment; the total is part of it so plans never mix."""
    return f"{SEGMENT_PREFIX}{total_segments:02d}#{segment:02d}"


def shard_sk(stream_arn: str, shard_id: str) -> str:
    """Checkpoint sort key of one stream shard; keyed by the stream label too, because a re-enabled
    stream restarts its sequence numbers (and moto reuses one shard id for every stream)."""
    label = stream_arn.rsplit("/", 1)[-1]
    return f"{SHARD_PREFIX}{label}#{shard_id}"
