"""The customer-managed KMS key that encrypts everything the migration creates in the target region, and the
small key of the source-region alert topic.

One key per migration, found again through its alias, so re-runs converge instead of piling up keys
(a KMS key costs money every month and cannot be deleted immediately).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, arn, error_code, global_arn, tag_dict
from tasks.errors import CollisionError, UserError
from tasks.names import resource_names
from tasks.provision.cloudwatch import alarm_prefix
from tasks.provision.common import ALREADY_GONE, FAILED, delete_measured, lookup
from tasks.steps import step

ROOT_SID = "AccountRootAdmin"
LOGS_SID = "AllowCloudWatchLogsForOurLogGroup"
ALARMS_SID = "AllowOurAlarmsToPublishToTheTopic"
# As in the CloudWatch Logs guide ("Encrypt log data in CloudWatch Logs using AWS KMS", step 2).
LOGS_ACTIONS = ["kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
# What an alarm needs to publish to a topic under this key (SNS guide, "compatibility between event sources
# from AWS services and encrypted topics").
ALARM_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey*"]
# Extra tag (beyond cfg.tags()) naming the key, so a key orphaned by a crash before create_alias is found
# again for *this* migration and not one of the same batch/environment with another timestamp.
NAME_TAG = "Name"


def log_group_arn(region: str, account_id: str, name: str) -> str:
    """The log group's ARN as CloudWatch Logs puts it in the encryption context (no trailing ':*')."""
    return arn("logs", region, account_id, f"log-group:{name}")


def alarm_arn_pattern(region: str, account_id: str, name_prefix: str) -> str:
    """ARN pattern of this migration's alarms in `region` (every alarm name starts with the prefix)."""
    return arn("cloudwatch", region, account_id, f"alarm:{name_prefix}*")


def key_policy(account_id: str, region: str, *, alarm_name_prefix: str, log_group: str | None = None) -> dict[str, Any]:
    """Root of the account administers the key and delegates to IAM: S3, DynamoDB, Lambda and S3 replication
    use it with their callers' IAM permissions (kms:ViaService in the roles' policies), and SNS encrypts with
    the publisher's. Only two services act as themselves, each pinned to what is ours: CloudWatch Logs for
    our log group (its encryption context), and CloudWatch alarms for our alarms publishing to the encrypted
    topic (aws:SourceArn + aws:SourceAccount, against the confused deputy)."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": ROOT_SID,
            "Effect": "Allow",
            "Principal": {"AWS": global_arn("iam", region, account_id, "root")},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if log_group:
        statements.append(
            {
                "Sid": LOGS_SID,
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": list(LOGS_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn(region, account_id, log_group)}
                },
            }
        )
    statements.append(
        {
            "Sid": ALARMS_SID,
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": list(ALARM_ACTIONS),
            "Resource": "*",
            "Condition": {
                "ArnLike": {"aws:SourceArn": alarm_arn_pattern(region, account_id, alarm_name_prefix)},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        }
    )
    return {"Version": "2012-10-17", "Id": "region-migration-key-policy", "Statement": statements}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, dict)) else list(value)


def service_grants(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Service principal -> {sid, actions, conditions} of each statement naming one (read back for the report)."""
    out: dict[str, dict[str, Any]] = {}
    for st in _as_list(policy.get("Statement")):
        principal = st.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        for service in services:
            out[str(service)] = {
                "sid": st.get("Sid"),
                "actions": sorted(str(a) for a in _as_list(st.get("Action"))),
                "conditions": st.get("Condition") or {},
            }
    return out


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


def alias_target(kms: Any, alias: str) -> str | None:
    """The key id behind `alias`, or None when the alias does not exist."""
    resp = lookup(kms.describe_key, KeyId=alias)
    return str(resp["KeyMetadata"]["KeyId"]) if resp else None


def key_tags(kms: Any, key_id: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        tags.extend(page.get("Tags", []))
    return tag_dict(tags)


def _tagged_keys(kms: Any, cfg: MigrationConfig, name: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(metadata, tags) of every customer key tagged as this migration's key `name`, whatever its state or alias.

    Keys this caller may not read (AccessDenied) or that vanished while listing (NotFound) are someone else's.
    """
    found: list[tuple[dict[str, Any], dict[str, str]]] = []
    for page in kms.get_paginator("list_keys").paginate():
        for entry in page.get("Keys", []):
            try:
                meta = kms.describe_key(KeyId=entry["KeyId"])["KeyMetadata"]
                if meta.get("KeyManager") != "CUSTOMER":
                    continue
                tags = key_tags(kms, entry["KeyId"])
            except Exception as err:
                if error_code(err) in {"AccessDeniedException", "NotFoundException"}:
                    continue
                raise
            if cfg.owns(tags) and tags.get(NAME_TAG) == name:
                found.append((dict(meta), tags))
    return found


def _find_orphan(kms: Any, cfg: MigrationConfig, name: str) -> str | None:
    """An Enabled customer key tagged as this migration's key but with no alias (crash after create_key)."""
    found = [
        (meta.get("CreationDate"), str(meta["KeyId"]))
        for meta, _ in _tagged_keys(kms, cfg, name)
        if meta.get("KeyState") == "Enabled"
    ]
    if not found:
        return None
    found.sort(key=lambda t: str(t[0]))
    return found[0][1]


@step("provision-kms")
def ensure_key(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    """Create or converge the migration CMK (rotation, key policy, alias, tags); return it read back."""
    names = resource_names(cfg)
    region = cfg.target_region
    policy = key_policy(account_id, region, alarm_name_prefix=alarm_prefix(cfg), log_group=names.log_group)
    description = f"region-migration CMK for {cfg.migration_batch} ({cfg.source_region} -> {region})"
    return _ensure(backend, cfg, region, names.kms_alias, policy, description)


def ensure_source_key(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    """The source region's own key, for the alert topic of the S3 replication alarms there: CloudWatch
    cannot publish to a topic under the AWS managed key (its policy cannot grant cloudwatch.amazonaws.com),
    and a key serves only its own region. It encrypts alert messages only, never data."""
    region = cfg.source_region
    policy = key_policy(account_id, region, alarm_name_prefix=alarm_prefix(cfg))
    description = f"region-migration alert topic key for {cfg.migration_batch} (source region {region})"
    return _ensure(backend, cfg, region, resource_names(cfg).source_kms_alias, policy, description)


def _ensure(
    backend: Backend, cfg: MigrationConfig, region: str, alias: str, want_policy: dict[str, Any], description: str
) -> dict[str, Any]:
    """Create or converge one key of this migration behind `alias` in `region`."""
    kms = backend.client("kms", region)
    name = alias.removeprefix("alias/")
    want_tags = {**cfg.tags(), NAME_TAG: name}
    created = False
    repaired: list[str] = []

    key_id = alias_target(kms, alias)
    if key_id is not None:
        tags = key_tags(kms, key_id)
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
                Description=description,
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

    tags = key_tags(kms, key_id)
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
        "serviceGrants": service_grants(policy),
        "tags": key_tags(kms, key_id),
    }


# ---------------------------------------------------------------- find / delete (teardown, preflight)


def find_key_arn(backend: Backend, cfg: MigrationConfig) -> str | None:
    """The migration CMK's ARN, found by its alias in the target region, or None when the alias does not exist."""
    resp = lookup(backend.client("kms", cfg.target_region).describe_key, KeyId=resource_names(cfg).kms_alias)
    return str(resp["KeyMetadata"]["Arn"]) if resp else None


def migration_key_arn(backend: Backend, cfg: MigrationConfig) -> str:
    """The migration's CMK, which must exist: sync and cutover only continue what migrate started."""
    arn = find_key_arn(backend, cfg)
    if arn is None:
        raise UserError(
            f"{resource_names(cfg).kms_alias} not found in {cfg.target_region}: run the migration "
            "(python -m flows.migrate) before sync or cutover"
        )
    return arn


PENDING_WINDOW_DAYS = 7  # the minimum AWS allows for ScheduleKeyDeletion


def iso(value: Any) -> str | None:
    """A DeletionDate (or any timestamp) as ISO-8601 UTC seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


def find_key(backend: Backend, cfg: MigrationConfig, region: str, alias: str) -> dict[str, Any] | None:
    """The key behind our alias; without the alias (a previous teardown, or a crash before create_alias)
    the customer key tagged with our Name, whatever its state."""
    kms = backend.client("kms", region)
    resp = lookup(kms.describe_key, KeyId=alias)
    if resp is not None:
        meta = resp["KeyMetadata"]
        return _key_entry(meta, key_tags(kms, meta["KeyId"]), cfg, region, alias, alias_exists=True)
    name = alias.removeprefix("alias/")
    candidates = [
        _key_entry(meta, tags, cfg, region, alias, alias_exists=False) for meta, tags in _tagged_keys(kms, cfg, name)
    ]
    # One entry: a key still usable first (it needs deleting), else the pending one (for its date).
    candidates.sort(key=lambda e: e["state"] == "PendingDeletion")
    return candidates[0] if candidates else None


def _key_entry(
    meta: dict[str, Any], tags: dict[str, str], cfg: MigrationConfig, region: str, alias: str, *, alias_exists: bool
) -> dict[str, Any]:
    return {
        "name": alias,
        "keyId": meta["KeyId"],
        "arn": meta["Arn"],
        "region": region,
        "state": meta.get("KeyState"),
        "deletionDate": iso(meta.get("DeletionDate")),
        "aliasExists": alias_exists,
        "owned": cfg.owns(tags),
    }


def delete_alias(backend: Backend, region: str, alias: str) -> dict[str, Any]:
    kms = backend.client("kms", region)
    return delete_measured(partial(kms.delete_alias, AliasName=alias), partial(lookup, kms.describe_key, KeyId=alias))


def schedule_key_deletion(backend: Backend, region: str, key_id: str) -> dict[str, Any]:
    """KMS keys cannot be deleted at once: schedule the shortest window and report the date, read back."""
    kms = backend.client("kms", region)
    meta = lookup(kms.describe_key, KeyId=key_id)
    if meta is None:
        return {"status": ALREADY_GONE, "measured": "not found"}
    if meta["KeyMetadata"].get("KeyState") != "PendingDeletion":
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=PENDING_WINDOW_DAYS)
    after = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    if after.get("KeyState") != "PendingDeletion":
        return {"status": FAILED, "error": f"key state is {after.get('KeyState')} after scheduling deletion"}
    date = iso(after.get("DeletionDate"))
    return {
        "status": f"scheduled for deletion on {date}",
        "deletionDate": date,
        "measured": "describe_key: PendingDeletion",
    }
