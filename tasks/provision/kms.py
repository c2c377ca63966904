"""The customer-managed KMS key that encrypts everything the migration creates in the target region.

One key per migration, found again through its alias, so re-runs converge instead of piling up keys
(a KMS key costs money every month and cannot be deleted immediately).
"""

from __future__ import annotations

import json
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, is_not_found, tag_dict
from tasks.aws import partition_of as partition  # the one partition source (botocore)
from tasks.errors import CollisionError
from tasks.names import resource_names

ROOT_SID = "AccountRootAdmin"
SERVICE_SID = "AllowUseByMigrationServices"
USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
# Extra tag (beyond cfg.tags()) naming the key, so a key orphaned by a crash before create_alias is found
# again for *this* migration and not one of the same batch/environment with another timestamp.
NAME_TAG = "Name"


def service_principals(region: str) -> list[str]:
    """The only services that may use the key: those that store or carry migrated data and alerts.

    CloudWatch is among them because alarms publish to the CMK-encrypted topic, which needs
    kms:GenerateDataKey* and kms:Decrypt for cloudwatch.amazonaws.com, or no alarm is ever delivered.
    """
    return [
        "cloudwatch.amazonaws.com",
        "dynamodb.amazonaws.com",
        "lambda.amazonaws.com",
        f"logs.{region}.amazonaws.com",
        "s3.amazonaws.com",
        "sns.amazonaws.com",
    ]


def key_policy(account_id: str, region: str) -> dict[str, Any]:
    """Root of the account administers the key (so IAM policies keep working and nobody is locked out);
    the listed service principals may only use it."""
    return {
        "Version": "2012-10-17",
        "Id": "region-migration-key-policy",
        "Statement": [
            {
                "Sid": ROOT_SID,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition(region)}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": SERVICE_SID,
                "Effect": "Allow",
                "Principal": {"Service": service_principals(region)},
                "Action": list(USE_ACTIONS),
                "Resource": "*",
            },
        ],
    }


def _canon(value: Any) -> Any:
    """Order-insensitive form of a policy fragment: AWS may reorder lists or collapse one-item lists."""
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canon(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def policies_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when two key policies grant the same thing (ignoring Id, ordering and list/scalar spelling)."""
    return bool(_canon(a.get("Statement", [])) == _canon(b.get("Statement", [])))


def _alias_target(kms: Any, alias: str) -> str | None:
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])
    except Exception as err:
        if is_not_found(err):
            return None
        raise


def _tags(kms: Any, key_id: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        tags.extend(page.get("Tags", []))
    return tag_dict(tags)


def _find_orphan(kms: Any, cfg: MigrationConfig, name: str) -> str | None:
    """An Enabled customer key tagged as this migration's key but with no alias (crash after create_key)."""
    found: list[tuple[Any, str]] = []
    for page in kms.get_paginator("list_keys").paginate():
        for entry in page.get("Keys", []):
            key_id = entry["KeyId"]
            try:
                meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            except Exception as err:
                if error_code(err) in {"AccessDeniedException", "NotFoundException"}:
                    continue
                raise
            if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") != "Enabled":
                continue
            try:
                tags = _tags(kms, key_id)
            except Exception as err:
                if error_code(err) in {"AccessDeniedException", "NotFoundException"}:
                    continue
                raise
            if cfg.owns(tags) and tags.get(NAME_TAG) == name:
                found.append((meta.get("CreationDate"), key_id))
    if not found:
        return None
    found.sort(key=lambda t: str(t[0]))
    return found[0][1]


def ensure_key(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    """Create or converge the migration CMK (rotation, key policy, alias, tags); return it read back."""
    region = cfg.targetRegion
    kms = backend.client("kms", region)
    alias = resource_names(cfg).kms_alias
    name = alias.removeprefix("alias/")
    want_tags = {**cfg.tags(), NAME_TAG: name}
    want_policy = key_policy(account_id, region)
    created = False
    repaired: list[str] = []

    key_id = _alias_target(kms, alias)
    if key_id is not None:
        tags = _tags(kms, key_id)
        if not cfg.owns(tags):
            raise CollisionError(
                f"KMS alias {alias} in {region} points to key {key_id}, which this migration did not create "
                "(its tags lack ManagedBy/MigrationBatch/Environment); delete the alias or change "
                "timestamp/environmentSuffix"
            )
    else:
        key_id = _find_orphan(kms, cfg, name)
        if key_id is None:
            meta = kms.create_key(
                Description=f"region-migration CMK for {cfg.migrationBatch} ({cfg.sourceRegion} -> {region})",
                KeyUsage="ENCRYPT_DECRYPT",
                KeySpec="SYMMETRIC_DEFAULT",
                Policy=json.dumps(want_policy),
                Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(want_tags.items())],
            )["KeyMetadata"]
            key_id = str(meta["KeyId"])
            created = True
        else:
            repaired.append("alias")
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)

    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if meta.get("KeyState") == "PendingDeletion":
        kms.cancel_key_deletion(KeyId=key_id)
        repaired.append("pendingDeletion")
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if meta.get("KeyState") == "Disabled":
        kms.enable_key(KeyId=key_id)
        repaired.append("enabled")

    tags = _tags(kms, key_id)
    missing = {k: v for k, v in want_tags.items() if tags.get(k) != v}
    if missing:
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(missing.items())])
        if not created:
            repaired.append("tags")

    if not kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled"):
        kms.enable_key_rotation(KeyId=key_id)
        if not created:
            repaired.append("rotation")

    current = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    if not policies_equal(current, want_policy):
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(want_policy))
        if not created:
            repaired.append("keyPolicy")

    return describe_key(backend, region, alias) | {"created": created, "repaired": repaired}


def describe_key(backend: Backend, region: str, alias: str) -> dict[str, Any]:
    """The key behind `alias` as the backend reports it (read-only; also used by reports and validation)."""
    kms = backend.client("kms", region)
    meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    key_id = meta["KeyId"]
    rotation = kms.get_key_rotation_status(KeyId=key_id).get("KeyRotationEnabled")
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return {
        "keyId": key_id,
        "arn": meta["Arn"],
        "alias": alias,
        "region": region,
        "rotationEnabled": bool(rotation),
        "keyState": meta.get("KeyState"),
        "keyManager": meta.get("KeyManager"),
        "keySpec": meta.get("KeySpec"),
        "policyStatements": [s.get("Sid") for s in statements],
        "tags": _tags(kms, key_id),
    }
