"""The S3 replication rule on a source bucket: versioning (recorded before it changes) and our rule, merged with
other owners' rules. New writes then reach the target by S3 replication; tasks/move/s3.py copies the rest."""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.consistency import Lag, retry_until_consistent
from tasks.errors import UserError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.s3_plan import (
    VERSIONING_SK,
    bucket_arn,
    next_priority,
    replication_rule,
    replication_rule_id,
    rule_drift,
    v1_rules,
    versioning_pk,
)
from tasks.provision.s3 import get_replication
from tasks.steps import step

# PutBucketReplication needs versioning Enabled on both buckets, and "If you enable versioning on a bucket for the
# first time, it might take up to 15 minutes for the change to be fully propagated" (S3 User Guide): right after
# we enabled it, S3 answers InvalidRequest with one of these messages. Retried for those 15 minutes, no longer.
REPLICATION_LAGS: tuple[Lag, ...] = (
    Lag("InvalidRequest", "Destination bucket must have versioning enabled", "S3: the target bucket's versioning"),
    Lag(
        "InvalidRequest",
        "Versioning must be 'Enabled' on the bucket to apply a replication configuration",
        "S3: the source bucket's versioning",
    ),
)
VERSIONING_PROPAGATION_S = 15 * 60.0


def record_source_versioning(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, versioning_before: str, checkpoint_table: str
) -> bool:
    """Record a source bucket's versioning as the migration first found it; True when this call wrote it."""
    store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
    return store.put_if_absent(
        versioning_pk(source_bucket),
        VERSIONING_SK,
        {"versioningBefore": versioning_before, "enabledByUs": versioning_before != "Enabled"},
    )


@step("s3-replication", run_name="s3-replication-{source_bucket}")
def ensure_replication(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    role_arn: str,
    kms_key_arn: str,
    checkpoint_table: str | None = None,
) -> dict[str, Any]:
    """Versioning + our replication rule on the source bucket, merged with other owners' rules.

    Before versioning is touched, what it was is recorded durably (first writer wins), so teardown knows
    whether *we* enabled it even after a re-run, whose own read says 'Enabled'.

    PutBucketReplication replaces the whole rule set, so we read it, swap in only our rule and write it
    back. A bucket has one replication role: when other rules exist under another role we keep theirs
    (ours is reported as needing its permissions) rather than break someone else's replication.
    """
    s3 = backend.client("s3", cfg.source_region)
    rule_id = replication_rule_id(cfg)
    destination = bucket_arn(target_bucket, cfg.target_region)
    changed: list[str] = []
    warnings: list[str] = []

    before_cfg = get_replication(s3, source_bucket)
    rules = list(before_cfg.get("Rules", [])) if before_cfg else []
    foreign = [r for r in rules if r.get("ID") != rule_id]
    old_v1 = v1_rules(foreign)
    if old_v1:
        raise UserError(
            f"s3://{source_bucket} has replication rules in the old V1 schema ({', '.join(old_v1)}), "
            "which S3 will not mix with the Filter-based rule this migration adds; "
            "rewrite them with Filter and Priority"
        )

    versioning_before = s3.get_bucket_versioning(Bucket=source_bucket).get("Status") or "Disabled"
    if checkpoint_table:
        record_source_versioning(backend, cfg, source_bucket, versioning_before, checkpoint_table)
    if versioning_before != "Enabled":
        s3.put_bucket_versioning(Bucket=source_bucket, VersioningConfiguration={"Status": "Enabled"})
        changed.append(f"enabled versioning on s3://{source_bucket} (was {versioning_before})")

    ours_before = next((r for r in rules if r.get("ID") == rule_id), None)
    priority = int(ours_before["Priority"]) if ours_before and ours_before.get("Priority") else next_priority(foreign)
    desired = replication_rule(rule_id, priority, destination, kms_key_arn)

    role = role_arn
    current_role = before_cfg.get("Role") if before_cfg else None
    if foreign and current_role and current_role != role_arn:
        role = current_role
        warnings.append(
            f"kept replication role {current_role} used by other rules "
            f"({', '.join(str(r.get('ID')) for r in foreign)}); "
            f"it needs the permissions of {role_arn} on {destination} and the target key, or our rule's "
            "objects fail to replicate and are copied by the catch-up"
        )

    drift_before = rule_drift(desired, ours_before)
    role_drift = current_role != role
    created = ours_before is None
    repaired: list[str] = []
    unsupported: list[str] = []
    after_cfg = before_cfg
    if drift_before or role_drift:
        retry_until_consistent(
            lambda: s3.put_bucket_replication(
                Bucket=source_bucket,
                ReplicationConfiguration={"Role": role, "Rules": [*foreign, desired]},
            ),
            REPLICATION_LAGS,
            what=f"put the replication rule on s3://{source_bucket}",
            budget_s=VERSIONING_PROPAGATION_S,
        )
        after_cfg = get_replication(s3, source_bucket)
        ours_after = _find_rule(after_cfg, rule_id)
        drift_after = rule_drift(desired, ours_after)
        # Fields the backend does not keep are measured, not fixed: they differ before and after a put.
        unsupported = [f"replication rule {p}" for p in drift_after]
        if ours_after is not None and not created:
            repaired = [f"replication rule {p}" for p in drift_before if p not in drift_after]
            if role_drift and after_cfg and after_cfg.get("Role") == role:
                repaired.append("replication role")
        if created:
            changed.append(f"added replication rule {rule_id} on s3://{source_bucket} -> {destination}")
        elif repaired:
            changed.append(f"updated replication rule {rule_id} on s3://{source_bucket}: {', '.join(repaired)}")

    ours = _find_rule(after_cfg, rule_id) or {}
    after_ids = {r.get("ID") for r in (after_cfg or {}).get("Rules", [])}
    versioning_now = s3.get_bucket_versioning(Bucket=source_bucket).get("Status") or "Disabled"
    dest = ours.get("Destination", {})
    return {
        "bucket": source_bucket,
        "versioningBefore": versioning_before,
        "versioningNow": versioning_now,
        "ruleId": ours.get("ID"),
        "ruleStatus": ours.get("Status"),
        "priority": ours.get("Priority"),
        "destination": dest.get("Bucket"),
        "replicaKmsKeyId": dest.get("EncryptionConfiguration", {}).get("ReplicaKmsKeyID"),
        "role": (after_cfg or {}).get("Role"),
        "foreignRules": sorted(str(r.get("ID")) for r in foreign),
        "foreignRulesPreserved": all(r.get("ID") in after_ids for r in foreign),
        "created": created and bool(ours),
        "repaired": repaired,
        "notSupportedByBackend": unsupported,
        "sourceChanged": changed,
        "warnings": warnings,
    }


def _find_rule(config: dict[str, Any] | None, rule_id: str) -> dict[str, Any] | None:
    return next((r for r in (config or {}).get("Rules", []) if r.get("ID") == rule_id), None)
