"""The Batch role's extra statements for the re-encryption job (tasks/move/s3_batch_reencrypt.py), apart from
tasks/provision/iam.py (at its size limit): what S3PutObjectCopy onto itself under the migration key needs."""

from __future__ import annotations

from typing import Any

from tasks.aws import bucket_arn


def reencrypt_statements(target_buckets: list[str], region: str, kms_key_arn: str) -> list[dict[str, Any]]:
    """Read and rewrite the target buckets' objects, generate their manifest (inventory), and use the migration key
    (decrypt is for the copy's read side, GenerateDataKey/Encrypt for the SSE-KMS write): those ARNs, nothing else."""
    if not target_buckets or not kms_key_arn:
        raise ValueError("re-encryption needs the target buckets and the migration key (IAM rejects an empty Resource)")
    dst = sorted(bucket_arn(b, region) for b in target_buckets)
    rights = [
        ("ReencryptTargetObjects", ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [f"{a}/*" for a in dst]),
        ("GenerateManifestOfTargets", ["s3:PutInventoryConfiguration"], dst),
        ("UseMigrationKey", ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"], [kms_key_arn]),
    ]
    return [{"Sid": sid, "Effect": "Allow", "Action": acts, "Resource": res} for sid, acts, res in rights]
