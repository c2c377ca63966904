"""Teardown: remove exactly what one migration (batch + environment suffix) created, and undo its source changes.

Resources are found by the names the migration gives them (tasks.names) and confirmed by their tags
(cfg.owns): a resource that has one of our names but not our tags is listed as "skipped (not ours)" and
never touched. On the source side only our own changes are undone: our replication rule (by ID, other
rules kept), source versioning this migration enabled (suspended: S3 cannot switch versioning off once it
was on) and source streams this migration enabled (recorded as enabledByUs in the checkpoint table, which
is therefore read first and deleted last). Source objects and items are never touched.

Target buckets and tables that hold data are kept unless the caller passes delete_target_data, and the
KMS key stays while any data encrypted with it is kept. Every result is measured: after each deletion the
resource is looked up again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, is_not_found, tag_dict
from tasks.errors import UserError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb_plan import STREAM_SK, table_pk
from tasks.move.s3_plan import VERSIONING_SK, replication_rule_id, versioning_pk
from tasks.names import ResourceNames, resource_names
from tasks.provision.cloudwatch import alarm_prefix, dashboard_marker
from tasks.provision.kms import NAME_TAG
from tasks.provision.sns import topic_arn

PHASES = ("source", "target", "final")
KMS_PENDING_WINDOW_DAYS = 7  # the minimum AWS allows
COUNT_CAP = 10_000  # object versions counted per bucket for the plan; "10000+" beyond

REMOVED = "removed"
ALREADY_GONE = "already gone"
KEPT_DATA = "kept (pass --delete-target-data)"
KEPT_KEY = "kept (encrypted target data is kept)"
SKIPPED = "skipped (not ours)"
FAILED = "failed"
CHANGE_ACTIONS = frozenset(
    {
        "delete",
        "empty-and-delete",
        "delete-alias",
        "schedule-key-deletion",
        "remove-replication-rule",
        "delete-replication-configuration",
        "suspend-versioning",
        "disable-stream",
    }
)


# ---------------------------------------------------------------- source versioning evidence


def versioning_evidence(
    record: Mapping[str, Any] | None, report_replication: Mapping[str, Any] | None
) -> tuple[bool | None, str]:
    """(did this migration enable source versioning?, why we think so); None = unknown.

    The checkpoint record is authoritative. A migration report counts only when it says versioning was
    off before: a re-run's report says 'Enabled' because the first run enabled it, which proves nothing.
    """
    if record and record.get("versioningBefore"):
        before = str(record["versioningBefore"])
        return before != "Enabled", f"checkpoint record: versioning was {before} before the migration"
    before = str((report_replication or {}).get("versioningBefore") or "")
    if before in ("Disabled", "Suspended"):
        return True, f"migration report: versioning was {before} before the migration"
    return None, "no record of the versioning status before the migration"


def report_replications(report_path: str | Path | None, cfg: MigrationConfig) -> dict[str, dict[str, Any]]:
    """Source bucket -> the replication result in a migration report of this batch/environment ({} if none)."""
    if not report_path:
        return {}
    try:
        report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(report, dict) or (
        report.get("migrationBatch") != cfg.migrationBatch or report.get("environmentSuffix") != cfg.environmentSuffix
    ):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for row in (report.get("resources") or {}).get("s3Buckets") or []:
        repl = row.get("replication") if isinstance(row, dict) else None
        if isinstance(repl, dict) and repl.get("bucket"):
            out[str(repl["bucket"])] = repl
    return out


# ---------------------------------------------------------------- small AWS helpers


def _exists(call: Callable[..., Any], **kwargs: Any) -> Any:
    """The call's response, or None when the resource does not exist."""
    try:
        return call(**kwargs)
    except Exception as err:
        if is_not_found(err) or error_code(err) in {"ResourceNotFound", "NoSuchBucket"}:
            return None
        raise


def _bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    resp = _exists(s3.get_bucket_tagging, Bucket=bucket)
    return tag_dict((resp or {}).get("TagSet"))


def _count_versions(s3: Any, bucket: str, cap: int = COUNT_CAP) -> tuple[int, int, bool]:
    """(object versions, delete markers, capped) - capped counts stop at `cap` entries."""
    versions = markers = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions += len(page.get("Versions", []))
        markers += len(page.get("DeleteMarkers", []))
        if versions + markers >= cap:
            return versions, markers, True
    return versions, markers, False


def _bucket_has_data(s3: Any, bucket: str) -> bool:
    """Whether any object version exists, read page by page until one is seen or the listing ends.

    One page is no answer: MaxKeys counts delete markers too, so a bucket whose first keys end in delete markers
    (common after cutover, from replication or lifecycle) answers a page with no Versions while older versions of
    those keys, and every later key, still hold data.
    """
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
    return any(page.get("Versions") for page in pages)


def _table_has_data(ddb: Any, table: str) -> bool:
    """Whether the table holds any item; a Scan page may come back empty with a LastEvaluatedKey, so follow it."""
    pages = ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT", PaginationConfig={"PageSize": 1})
    return any(int(page.get("Count", 0)) > 0 for page in pages)


def _table_tags(ddb: Any, arn: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        resp = ddb.list_tags_of_resource(**kwargs)
        tags.extend(resp.get("Tags", []))
        if not resp.get("NextToken"):
            return tag_dict(tags)
        kwargs["NextToken"] = resp["NextToken"]


def _kms_tags(kms: Any, key_id: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        tags.extend(page.get("Tags", []))
    return tag_dict(tags)


def _log_group(logs: Any, name: str) -> dict[str, Any] | None:
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name):
        for group in page.get("logGroups", []):
            if group.get("logGroupName") == name:
                return dict(group)
    return None


def _get_replication(s3: Any, bucket: str) -> dict[str, Any] | None:
    resp = _exists(s3.get_bucket_replication, Bucket=bucket)
    return dict(resp["ReplicationConfiguration"]) if resp else None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return str(value)


def _regions(cfg: MigrationConfig) -> list[str]:
    return list(dict.fromkeys([cfg.targetRegion, cfg.sourceRegion]))


# ---------------------------------------------------------------- discovery


def discover(backend: Backend, cfg: MigrationConfig, *, report_path: str | Path | None = None) -> dict[str, Any]:
    """Everything this migration may have created or changed, found by name and checked by tags (read-only).

    `report_path` (a migration report JSON) is a second source of evidence for source versioning.
    """
    names = resource_names(cfg)
    tgt = cfg.targetRegion
    account = str(backend.client("sts", tgt).get_caller_identity()["Account"])
    found: dict[str, Any] = {"account": account, "notes": []}

    found["targetBuckets"] = _find_buckets(backend, cfg, names)
    found["targetTables"] = _find_tables(backend, cfg, names.tables)
    ckpt = _find_tables(backend, cfg, {"": names.checkpoint_table})
    found["checkpointTable"] = ckpt[0] if ckpt else None
    found["kmsKey"] = _find_key(backend, cfg, tgt, names.kms_alias)
    found["topic"] = _find_topic(backend, cfg, tgt, names.topic, account)
    # The source region's alert topic and its key (for the S3 replication alarms there).
    found["sourceTopic"] = _find_topic(backend, cfg, cfg.sourceRegion, names.source_topic, account)
    found["sourceKmsKey"] = _find_key(backend, cfg, cfg.sourceRegion, names.source_kms_alias)
    found["lambda"] = _find_function(backend, cfg, names)
    found["logGroup"] = _find_log_group(backend, cfg, names)
    found["roles"] = _find_roles(backend, cfg, names)
    found["alarms"] = _find_alarms(backend, cfg)
    found["dashboard"] = _find_dashboard(backend, cfg, names)

    # Source side. The checkpoint table holds the enabledByUs records, so it is read before anything goes.
    store = None
    if found["checkpointTable"] and found["checkpointTable"]["owned"]:
        store = CheckpointStore(backend, tgt, names.checkpoint_table)
    replication, versioning = _find_source_buckets(backend, cfg, names, store, report_replications(report_path, cfg))
    found["replicationRules"] = replication
    found["sourceVersioning"] = versioning
    found["sourceStreams"] = _find_streams(backend, cfg, names, store)
    if found["checkpointTable"] is None:
        found["notes"].append(
            "no checkpoint table: no record of source streams or versioning enabled by this migration "
            "(none are changed unless the migration report says so)"
        )
    return found


def _find_buckets(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> list[dict[str, Any]]:
    s3 = backend.client("s3", cfg.targetRegion)
    out = []
    for source, bucket in names.buckets.items():
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as err:
            if is_not_found(err):
                continue
            if error_code(err) in {"403", "AccessDenied", "Forbidden"}:
                out.append(
                    {
                        "name": bucket,
                        "source": source,
                        "region": cfg.targetRegion,
                        "owned": False,
                        "reason": "the name is taken by a bucket this account cannot read",
                    }
                )
                continue
            raise
        tags = _bucket_tags(s3, bucket)
        entry: dict[str, Any] = {"name": bucket, "source": source, "region": cfg.targetRegion, "owned": cfg.owns(tags)}
        if entry["owned"]:
            versions, markers, capped = _count_versions(s3, bucket)
            has_data = versions > 0 or (capped and _bucket_has_data(s3, bucket))
            entry.update(objectVersions=versions, deleteMarkers=markers, countCapped=capped, hasData=has_data)
        out.append(entry)
    return out


def _find_tables(backend: Backend, cfg: MigrationConfig, tables: Mapping[str, str]) -> list[dict[str, Any]]:
    region = cfg.targetRegion
    ddb = backend.client("dynamodb", region)
    out = []
    for source, table in tables.items():
        resp = _exists(ddb.describe_table, TableName=table)
        if resp is None:
            continue
        desc = resp["Table"]
        tags = _table_tags(ddb, desc["TableArn"])
        entry: dict[str, Any] = {
            "name": table,
            "region": region,
            "arn": desc["TableArn"],
            "owned": cfg.owns(tags),
        }
        if source:
            entry["source"] = source
        if entry["owned"]:
            entry["itemCount"] = int(desc.get("ItemCount", 0))  # approximate on AWS (refreshed ~6 h)
            entry["hasData"] = _table_has_data(ddb, table)
        out.append(entry)
    return out


def _find_key(backend: Backend, cfg: MigrationConfig, region: str, alias: str) -> dict[str, Any] | None:
    """The key behind our alias; without the alias (a previous teardown, or a crash before create_alias)
    the customer key tagged with our Name, whatever its state."""
    kms = backend.client("kms", region)
    resp = _exists(kms.describe_key, KeyId=alias)
    if resp is not None:
        meta = resp["KeyMetadata"]
        tags = _kms_tags(kms, meta["KeyId"])
        return _key_entry(meta, tags, cfg, region, alias, alias_exists=True)
    name = alias.removeprefix("alias/")
    candidates = []
    for page in kms.get_paginator("list_keys").paginate():
        for k in page.get("Keys", []):
            try:
                meta = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
                if meta.get("KeyManager") != "CUSTOMER":
                    continue
                tags = _kms_tags(kms, k["KeyId"])
            except Exception as err:
                if error_code(err) in {"AccessDeniedException", "NotFoundException"}:
                    continue
                raise
            if cfg.owns(tags) and tags.get(NAME_TAG) == name:
                candidates.append(_key_entry(meta, tags, cfg, region, alias, alias_exists=False))
    # One entry: a key still usable first (it needs deleting), else the pending one (for its date).
    candidates.sort(key=lambda e: e["state"] == "PendingDeletion")
    return candidates[0] if candidates else None


def _key_entry(
    meta: Mapping[str, Any],
    tags: Mapping[str, str],
    cfg: MigrationConfig,
    region: str,
    alias: str,
    *,
    alias_exists: bool,
) -> dict[str, Any]:
    return {
        "name": alias,
        "keyId": meta["KeyId"],
        "arn": meta["Arn"],
        "region": region,
        "state": meta.get("KeyState"),
        "deletionDate": _iso(meta.get("DeletionDate")),
        "aliasExists": alias_exists,
        "owned": cfg.owns(tags),
    }


def _find_topic(backend: Backend, cfg: MigrationConfig, region: str, name: str, account: str) -> dict[str, Any] | None:
    sns = backend.client("sns", region)
    arn = topic_arn(region, account, name)
    if _exists(sns.get_topic_attributes, TopicArn=arn) is None:
        return None
    tags = tag_dict(sns.list_tags_for_resource(ResourceArn=arn).get("Tags"))
    return {"name": name, "arn": arn, "region": region, "owned": cfg.owns(tags)}


def _find_function(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> dict[str, Any] | None:
    lam = backend.client("lambda", cfg.targetRegion)
    resp = _exists(lam.get_function, FunctionName=names.lambda_function)
    if resp is None:
        return None
    arn = resp["Configuration"]["FunctionArn"]
    tags = dict(resp.get("Tags") or {})
    if not tags:
        tags = dict(lam.list_tags(Resource=arn).get("Tags") or {})
    return {"name": names.lambda_function, "arn": arn, "region": cfg.targetRegion, "owned": cfg.owns(tags)}


def _find_log_group(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> dict[str, Any] | None:
    logs = backend.client("logs", cfg.targetRegion)
    group = _log_group(logs, names.log_group)
    if group is None:
        return None
    arn = str(group.get("logGroupArn") or group.get("arn") or "").removesuffix(":*")
    tags = logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
    return {"name": names.log_group, "arn": arn, "region": cfg.targetRegion, "owned": cfg.owns(tags)}


def _find_roles(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> list[dict[str, Any]]:
    iam = backend.client("iam", cfg.targetRegion)
    out = []
    for name in dict.fromkeys([names.replication_role, names.lambda_role]):
        resp = _exists(iam.get_role, RoleName=name)
        if resp is None:
            continue
        tags = tag_dict(iam.list_role_tags(RoleName=name).get("Tags"))
        out.append({"name": name, "arn": resp["Role"]["Arn"], "region": "global", "owned": cfg.owns(tags)})
    return out


def _find_alarms(backend: Backend, cfg: MigrationConfig) -> list[dict[str, Any]]:
    """Alarms named with our prefix in both regions (S3 replication alarms live in the source region)."""
    prefix = alarm_prefix(cfg)
    out = []
    for region in _regions(cfg):
        cw = backend.client("cloudwatch", region)
        for page in cw.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                tags = tag_dict(cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"))
                out.append(
                    {"name": alarm["AlarmName"], "arn": alarm["AlarmArn"], "region": region, "owned": cfg.owns(tags)}
                )
    return out


def _find_dashboard(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> dict[str, Any] | None:
    """Dashboards cannot be tagged: ours carries the tag marker in its first text widget."""
    cw = backend.client("cloudwatch", cfg.targetRegion)
    resp = _exists(cw.get_dashboard, DashboardName=names.dashboard)
    if resp is None:
        return None
    return {
        "name": names.dashboard,
        "arn": resp.get("DashboardArn"),
        "region": cfg.targetRegion,
        "owned": dashboard_marker(cfg) in str(resp.get("DashboardBody") or ""),
    }


def _find_source_buckets(
    backend: Backend,
    cfg: MigrationConfig,
    names: ResourceNames,
    store: CheckpointStore | None,
    reported: Mapping[str, Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    s3 = backend.client("s3", cfg.sourceRegion)
    rule_id = replication_rule_id(cfg)
    rules_out: list[dict[str, Any]] = []
    versioning_out: list[dict[str, Any]] = []
    for source in names.buckets:
        try:
            s3.head_bucket(Bucket=source)
        except Exception as err:
            if is_not_found(err):
                continue
            raise
        config = _get_replication(s3, source) or {}
        rules = list(config.get("Rules", []))
        others = sorted(str(r.get("ID")) for r in rules if r.get("ID") != rule_id)
        if any(r.get("ID") == rule_id for r in rules):
            rules_out.append({"name": source, "region": cfg.sourceRegion, "ruleId": rule_id, "otherRules": others})
        status = s3.get_bucket_versioning(Bucket=source).get("Status") or "Disabled"
        if status != "Enabled":
            continue
        record = store.get(versioning_pk(source), VERSIONING_SK) if store else None
        by_us, evidence = versioning_evidence(record, reported.get(source))
        if by_us is False or (by_us is None and store is None):
            # On before the migration: nothing of ours. Without a checkpoint table (never migrated, or a
            # previous teardown already finished the source side) there is nothing to go on either.
            continue
        versioning_out.append(
            {
                "name": source,
                "region": cfg.sourceRegion,
                "status": status,
                "enabledByUs": by_us,
                "evidence": evidence,
                "otherRules": others,
            }
        )
    return rules_out, versioning_out


def _find_streams(
    backend: Backend, cfg: MigrationConfig, names: ResourceNames, store: CheckpointStore | None
) -> list[dict[str, Any]]:
    """Source streams the checkpoint table records as enabled by this migration and still enabled."""
    if store is None:
        return []
    ddb = backend.client("dynamodb", cfg.sourceRegion)
    out = []
    for source in names.tables:
        record = store.get(table_pk(source), STREAM_SK) or {}
        if not record.get("enabledByUs"):
            continue
        resp = _exists(ddb.describe_table, TableName=source)
        if resp is None:
            continue
        desc = resp["Table"]
        if not (desc.get("StreamSpecification") or {}).get("StreamEnabled"):
            continue
        current = str(desc.get("LatestStreamArn") or "")
        recorded = record.get("streamArn")
        if recorded:
            ours = recorded == current
        else:  # crashed between enabling and recording: ours if created after the intent record
            stream = backend.client("dynamodbstreams", cfg.sourceRegion).describe_stream(StreamArn=current, Limit=1)[
                "StreamDescription"
            ]
            created = stream.get("CreationRequestDateTime")
            ours = created is not None and created.timestamp() >= int(record.get("intentAt", 0)) - 5
        out.append(
            {
                "name": source,
                "region": cfg.sourceRegion,
                "streamArn": current,
                "recordedArn": recorded,
                "enabledByUs": ours,
                "enabledAt": record.get("enabledAt"),
            }
        )
    return out


# ---------------------------------------------------------------- the plan (pure)


def _act(
    phase: str, resource: str, entry: Mapping[str, Any], action: str, destroys: bool = False, **extra: Any
) -> dict[str, Any]:
    out = {
        "phase": phase,
        "resource": resource,
        "name": entry["name"],
        "region": entry["region"],
        "action": action,
        "destroysData": destroys,
    }
    for k in ("arn", "keyId", "source"):
        if entry.get(k):
            out[k] = entry[k]
    return out | extra


def _owned_or_skip(
    phase: str, resource: str, entry: Mapping[str, Any], action: str, destroys: bool = False, **extra: Any
) -> dict[str, Any]:
    if not entry.get("owned"):
        why = entry.get("reason") or "it has our name but not our tags (ManagedBy/MigrationBatch/Environment)"
        return _act(phase, resource, entry, "skip", reason=f"not ours: {why}")
    return _act(phase, resource, entry, action, destroys, **extra)


def teardown_plan(cfg: MigrationConfig, found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ordered actions: undo source changes first (so nothing replicates into buckets being emptied), then
    the target resources, then the checkpoint table (its records drive the source undo) and the key last.
    Each is {phase, resource, name, region, action, destroysData, ...}; action 'skip' = never touched."""
    plan: list[dict[str, Any]] = []
    for r in found.get("replicationRules", []):
        if r["otherRules"]:
            plan.append(
                _act(
                    "source",
                    "s3-replication-rule",
                    r,
                    "remove-replication-rule",
                    ruleId=r["ruleId"],
                    reason=f"other rules kept: {', '.join(r['otherRules'])}",
                )
            )
        else:
            plan.append(
                _act(
                    "source",
                    "s3-replication-rule",
                    r,
                    "delete-replication-configuration",
                    ruleId=r["ruleId"],
                    reason="ours is the only rule",
                )
            )
    for v in found.get("sourceVersioning", []):
        if v["enabledByUs"] and not v["otherRules"]:
            plan.append(
                _act(
                    "source",
                    "source-versioning",
                    v,
                    "suspend-versioning",
                    reason=(
                        f"{v['evidence']}; S3 versioning cannot be disabled once enabled, only suspended "
                        "(existing object versions are kept)"
                    ),
                )
            )
        elif v["enabledByUs"]:
            plan.append(
                _act(
                    "source",
                    "source-versioning",
                    v,
                    "keep",
                    reason=(f"{v['evidence']}, but replication rules {', '.join(v['otherRules'])} need it"),
                )
            )
        else:
            plan.append(
                _act(
                    "source",
                    "source-versioning",
                    v,
                    "keep",
                    reason=(f"{v['evidence']}; suspend it by hand if this migration enabled it"),
                )
            )
    for s in found.get("sourceStreams", []):
        if s["enabledByUs"]:
            plan.append(
                _act(
                    "source",
                    "source-stream",
                    s,
                    "disable-stream",
                    streamArn=s["streamArn"],
                    reason=f"enabled by this migration at {s.get('enabledAt') or 'unknown time'}",
                )
            )
        else:
            plan.append(
                _act(
                    "source",
                    "source-stream",
                    s,
                    "keep",
                    streamArn=s["streamArn"],
                    reason=f"the stream was replaced since this migration enabled {s['recordedArn']}",
                )
            )

    for a in found.get("alarms", []):
        plan.append(_owned_or_skip("target", "cloudwatch-alarm", a, "delete"))
    for field, resource in (
        ("dashboard", "cloudwatch-dashboard"),
        ("lambda", "lambda-function"),
        ("logGroup", "log-group"),
    ):
        if found.get(field):
            plan.append(_owned_or_skip("target", resource, found[field], "delete"))
    for r in found.get("roles", []):
        plan.append(_owned_or_skip("target", "iam-role", r, "delete"))
    if found.get("topic"):
        plan.append(_owned_or_skip("target", "sns-topic", found["topic"], "delete"))
    for b in found.get("targetBuckets", []):
        detail = {}
        if b.get("owned"):
            count = f"{b['objectVersions']}{'+' if b['countCapped'] else ''}"
            detail = {"reason": f"{count} object versions, {b['deleteMarkers']} delete markers"}
        plan.append(_owned_or_skip("target", "s3-bucket", b, "empty-and-delete", bool(b.get("hasData")), **detail))
    for t in found.get("targetTables", []):
        detail = {"reason": f"about {t['itemCount']} items"} if t.get("owned") else {}
        plan.append(_owned_or_skip("target", "dynamodb-table", t, "delete", bool(t.get("hasData")), **detail))

    if found.get("checkpointTable"):
        plan.append(
            _owned_or_skip(
                "final",
                "checkpoint-table",
                found["checkpointTable"],
                "delete",
                reason="migration progress records only",
            )
        )
    key = found.get("kmsKey")
    if key:
        data = any(
            x.get("owned") and x.get("hasData")
            for x in [*found.get("targetBuckets", []), *found.get("targetTables", [])]
        )
        if not key["owned"]:
            plan.append(
                _act("final", "kms-key", key, "skip", reason="not ours: the alias points to a key without our tags")
            )
        elif key["aliasExists"]:  # even for a key already pending deletion (a half-finished earlier run)
            plan.append(_act("final", "kms-alias", key, "delete-alias"))
        if key["owned"] and key["state"] != "PendingDeletion":
            plan.append(
                _act(
                    "final",
                    "kms-key",
                    key,
                    "schedule-key-deletion",
                    data,
                    pendingWindowDays=KMS_PENDING_WINDOW_DAYS,
                    reason="data still encrypted with it becomes unreadable" if data else "",
                )
            )
    plan += _source_alerts_plan(found)
    return plan


def _source_alerts_plan(found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The source-region alert topic, then its key: last, after the alarms that publish to the topic. The
    key encrypts alert messages only (no data), so it goes whatever target data is kept."""
    plan: list[dict[str, Any]] = []
    if found.get("sourceTopic"):
        plan.append(_owned_or_skip("final", "source-sns-topic", found["sourceTopic"], "delete"))
    key = found.get("sourceKmsKey")
    if not key:
        return plan
    if not key["owned"]:
        return [*plan, _act("final", "source-kms-key", key, "skip", reason="not ours: the key lacks our tags")]
    if key["aliasExists"]:
        plan.append(_act("final", "source-kms-alias", key, "delete-alias"))
    if key["state"] != "PendingDeletion":
        plan.append(
            _act(
                "final",
                "source-kms-key",
                key,
                "schedule-key-deletion",
                pendingWindowDays=KMS_PENDING_WINDOW_DAYS,
                reason="encrypts the source-region alert topic only",
            )
        )
    return plan


def changes(plan: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The actions that change something (everything but skip/keep)."""
    return [dict(a) for a in plan if a["action"] in CHANGE_ACTIONS]


# ---------------------------------------------------------------- execution


def execute(
    backend: Backend,
    cfg: MigrationConfig,
    plan: list[dict[str, Any]],
    delete_target_data: bool,
    prior: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run the plan's actions in order; one result per action, each measured by looking the resource up again.

    Target buckets/tables holding data are kept unless delete_target_data (the rest still proceeds); the KMS
    key and alias are kept while any target data is kept; the checkpoint table is kept while a source change
    failed to be undone (its records are what a re-run needs). `prior` = results of earlier phases (the flow
    runs one phase per task). Errors are recorded per action ("failed"), never raised, so one bad resource
    does not leave the rest in place. Re-running is safe: what is gone is reported as "already gone".
    """
    results: list[dict[str, Any]] = []
    for action in plan:
        done = [*(prior or []), *results]
        try:
            outcome = _run(backend, cfg, action, delete_target_data, done)
        except (ClientError, BotoCoreError, TimeoutError, UserError) as err:
            outcome = {"status": FAILED, "error": f"{error_code(err) or type(err).__name__}: {err}"}
        results.append({**action, **outcome})
    return results


def _data_kept(done: Iterable[Mapping[str, Any]]) -> bool:
    return any(
        r["resource"] in ("s3-bucket", "dynamodb-table")
        and r["action"] != "skip"
        and r.get("status") not in (REMOVED, ALREADY_GONE)
        for r in done
    )


def _run(
    backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any], delete_data: bool, done: list[dict[str, Any]]
) -> dict[str, Any]:
    act, res = a["action"], a["resource"]
    if act == "skip":
        return {"status": SKIPPED}
    if act == "keep":
        return {"status": f"kept ({a.get('reason', '')})"}
    if res == "s3-replication-rule":
        return _remove_rule(backend, cfg, a)
    if res == "source-versioning":
        return _suspend_versioning(backend, cfg, a)
    if res == "source-stream":
        return _disable_stream(backend, cfg, a)
    if res == "cloudwatch-alarm":
        return _delete_alarm(backend, a)
    if res == "cloudwatch-dashboard":
        cw = backend.client("cloudwatch", a["region"])
        return _delete(
            lambda: cw.delete_dashboards(DashboardNames=[a["name"]]),
            lambda: _exists(cw.get_dashboard, DashboardName=a["name"]) is not None,
        )
    if res == "lambda-function":
        lam = backend.client("lambda", a["region"])
        return _delete(
            lambda: lam.delete_function(FunctionName=a["name"]),
            lambda: _exists(lam.get_function, FunctionName=a["name"]) is not None,
        )
    if res == "log-group":
        logs = backend.client("logs", a["region"])
        return _delete(
            lambda: logs.delete_log_group(logGroupName=a["name"]), lambda: _log_group(logs, a["name"]) is not None
        )
    if res == "iam-role":
        return _delete_role(backend, cfg, a)
    if res in ("sns-topic", "source-sns-topic"):
        sns = backend.client("sns", a["region"])
        return _delete(
            lambda: sns.delete_topic(TopicArn=a["arn"]),
            lambda: _exists(sns.get_topic_attributes, TopicArn=a["arn"]) is not None,
        )
    if res == "s3-bucket":
        return _delete_bucket(backend, a, delete_data)
    if res in ("dynamodb-table", "checkpoint-table"):
        if res == "checkpoint-table":
            pending = [r["name"] for r in done if r["phase"] == "source" and r.get("status") == FAILED]
            if pending:
                return {"status": f"kept (source changes not undone yet: {', '.join(pending)}; re-run teardown)"}
        return _delete_table(backend, a, delete_data and res == "dynamodb-table", res == "dynamodb-table")
    if res in ("kms-alias", "kms-key"):
        if _data_kept(done):
            return {"status": KEPT_KEY}
        return _delete_alias(backend, a) if res == "kms-alias" else _schedule_key_deletion(backend, a)
    if res == "source-kms-alias":
        return _delete_alias(backend, a)
    if res == "source-kms-key":
        return _schedule_key_deletion(backend, a)
    raise ValueError(f"unknown teardown action {res}/{act}")


def _delete(call: Callable[[], Any], still_there: Callable[[], bool]) -> dict[str, Any]:
    """Delete, then look again: 'removed' only when the lookup no longer finds it."""
    if not still_there():
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    try:
        call()
    except Exception as err:
        if not is_not_found(err) and error_code(err) != "ResourceNotFound":
            raise
    if still_there():
        return {"status": FAILED, "error": "still present after deletion"}
    return {"status": REMOVED, "measured": "not found after deletion"}


def _delete_alarm(backend: Backend, a: Mapping[str, Any]) -> dict[str, Any]:
    cw = backend.client("cloudwatch", a["region"])

    def there() -> bool:
        resp = cw.describe_alarms(AlarmNames=[a["name"]], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        return bool(resp.get("MetricAlarms") or resp.get("CompositeAlarms"))

    return _delete(lambda: cw.delete_alarms(AlarmNames=[a["name"]]), there)


def _delete_role(backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any]) -> dict[str, Any]:
    """Inline policies, attached policies and instance profiles go first: IAM refuses to delete a role with any."""
    iam = backend.client("iam", cfg.targetRegion)
    name = a["name"]

    def remove() -> None:
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy in page.get("PolicyNames", []):
                iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for policy in page.get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
            for profile in page.get("InstanceProfiles", []):
                iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)

    return _delete(remove, lambda: _exists(iam.get_role, RoleName=name) is not None)


def _delete_bucket(backend: Backend, a: Mapping[str, Any], delete_data: bool) -> dict[str, Any]:
    """Every object version and delete marker must go before DeleteBucket; data is re-checked right now."""
    s3 = backend.client("s3", a["region"])
    bucket = a["name"]

    def there() -> bool:
        try:
            s3.head_bucket(Bucket=bucket)
            return True
        except Exception as err:
            if is_not_found(err):
                return False
            raise

    if not there():
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    if not delete_data and _bucket_has_data(s3, bucket):
        return {"status": KEPT_DATA, "measured": "bucket holds object versions"}
    deleted = 0
    for _ in range(5):  # a few passes: a writer may still be finishing
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        batch: list[dict[str, str]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                batch.append({"Key": v["Key"], "VersionId": v["VersionId"]})
                if len(batch) == 1000:
                    deleted += _delete_versions(s3, bucket, batch)
                    batch = []
        if batch:
            deleted += _delete_versions(s3, bucket, batch)
        try:
            s3.delete_bucket(Bucket=bucket)
            break
        except Exception as err:
            if error_code(err) != "BucketNotEmpty":
                raise
    if there():
        return {"status": FAILED, "error": "still present after deletion", "versionsDeleted": deleted}
    return {"status": REMOVED, "measured": "head_bucket: not found after deletion", "versionsDeleted": deleted}


def _delete_versions(s3: Any, bucket: str, objects: list[dict[str, str]]) -> int:
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    errors = resp.get("Errors") or []
    if errors:
        first = errors[0]
        raise UserError(f"s3://{bucket}: {len(errors)} versions not deleted ({first.get('Code')}: {first.get('Key')})")
    return len(objects)


def _delete_table(backend: Backend, a: Mapping[str, Any], delete_data: bool, guard_data: bool) -> dict[str, Any]:
    ddb = backend.client("dynamodb", a["region"])
    name = a["name"]
    if _exists(ddb.describe_table, TableName=name) is None:
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    if guard_data and not delete_data and _table_has_data(ddb, name):
        return {"status": KEPT_DATA, "measured": "table holds items"}
    try:
        ddb.delete_table(TableName=name)
    except Exception as err:
        if not is_not_found(err):
            raise
    ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    if _exists(ddb.describe_table, TableName=name) is not None:
        return {"status": FAILED, "error": "still present after deletion"}
    return {"status": REMOVED, "measured": "describe_table: not found after deletion"}


def _delete_alias(backend: Backend, a: Mapping[str, Any]) -> dict[str, Any]:
    kms = backend.client("kms", a["region"])
    return _delete(
        lambda: kms.delete_alias(AliasName=a["name"]), lambda: _exists(kms.describe_key, KeyId=a["name"]) is not None
    )


def _schedule_key_deletion(backend: Backend, a: Mapping[str, Any]) -> dict[str, Any]:
    """KMS keys cannot be deleted at once: schedule the shortest window and report the date, read back."""
    kms = backend.client("kms", a["region"])
    meta = _exists(kms.describe_key, KeyId=a["keyId"])
    if meta is None:
        return {"status": ALREADY_GONE, "measured": "not found"}
    if meta["KeyMetadata"].get("KeyState") != "PendingDeletion":
        kms.schedule_key_deletion(KeyId=a["keyId"], PendingWindowInDays=KMS_PENDING_WINDOW_DAYS)
    after = kms.describe_key(KeyId=a["keyId"])["KeyMetadata"]
    if after.get("KeyState") != "PendingDeletion":
        return {"status": FAILED, "error": f"key state is {after.get('KeyState')} after scheduling deletion"}
    date = _iso(after.get("DeletionDate"))
    return {
        "status": f"scheduled for deletion on {date}",
        "deletionDate": date,
        "measured": "describe_key: PendingDeletion",
    }


def _remove_rule(backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any]) -> dict[str, Any]:
    """Remove only our rule by ID (PutBucketReplication replaces the whole set, so the others are written back
    unchanged); delete the configuration only when ours was the only rule."""
    s3 = backend.client("s3", a["region"])
    bucket, rule_id = a["name"], a["ruleId"]
    config = _get_replication(s3, bucket)
    rules = list((config or {}).get("Rules", []))
    if not any(r.get("ID") == rule_id for r in rules):
        return {"status": ALREADY_GONE, "measured": f"rule {rule_id} not found"}
    others = [r for r in rules if r.get("ID") != rule_id]
    if others:
        role = (config or {})["Role"]
        s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={"Role": role, "Rules": others})
    else:
        s3.delete_bucket_replication(Bucket=bucket)
    after = _get_replication(s3, bucket)
    ids = {r.get("ID") for r in (after or {}).get("Rules", [])}
    if rule_id in ids:
        return {"status": FAILED, "error": f"rule {rule_id} still present"}
    lost = sorted(str(r.get("ID")) for r in others if r.get("ID") not in ids)
    if lost:
        return {"status": FAILED, "error": f"other rules missing after the change: {', '.join(lost)}"}
    kept = sorted(str(i) for i in ids)
    how = f"other rules kept: {', '.join(kept)}" if kept else "replication configuration deleted"
    return {"status": REMOVED, "measured": f"rule {rule_id} absent; {how}", "otherRulesKept": kept}


def _suspend_versioning(backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any]) -> dict[str, Any]:
    s3 = backend.client("s3", a["region"])
    bucket = a["name"]
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status") or "Disabled"
    if status != "Enabled":
        return {"status": ALREADY_GONE, "measured": f"versioning is {status}"}
    remaining = (_get_replication(s3, bucket) or {}).get("Rules", [])
    if remaining:
        return {
            "status": "kept (replication rules on the bucket need versioning: "
            f"{', '.join(str(r.get('ID')) for r in remaining)})"
        }
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    now = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if now != "Suspended":
        return {"status": FAILED, "error": f"versioning is {now} after suspending"}
    return {
        "status": "suspended",
        "measured": "get_bucket_versioning: Suspended",
        "note": "S3 versioning cannot be disabled once enabled; it is suspended and existing versions are kept",
    }


def _disable_stream(backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any]) -> dict[str, Any]:
    """Only the very stream we enabled (a stream re-created since by someone else is theirs)."""
    ddb = backend.client("dynamodb", a["region"])
    desc = (_exists(ddb.describe_table, TableName=a["name"]) or {}).get("Table")
    if not desc or not (desc.get("StreamSpecification") or {}).get("StreamEnabled"):
        return {"status": ALREADY_GONE, "measured": "stream not enabled"}
    if desc.get("LatestStreamArn") != a["streamArn"]:
        return {"status": f"kept (the stream changed since the plan: {desc.get('LatestStreamArn')})"}
    _wait_table_active(ddb, a["name"])
    ddb.update_table(TableName=a["name"], StreamSpecification={"StreamEnabled": False})
    after = _wait_table_active(ddb, a["name"])
    if (after.get("StreamSpecification") or {}).get("StreamEnabled"):
        return {"status": FAILED, "error": "stream still enabled after disabling"}
    return {"status": "disabled", "measured": "describe_table: StreamEnabled false"}


def _wait_table_active(ddb: Any, name: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = ddb.describe_table(TableName=name)["Table"]
        if desc.get("TableStatus") == "ACTIVE":
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} is still {desc.get('TableStatus')} after {timeout:.0f} s")
        time.sleep(1)


# ---------------------------------------------------------------- summaries


def succeeded(results: Iterable[Mapping[str, Any]]) -> bool:
    """True when no action failed (kept and skipped resources are not failures)."""
    return all(r.get("status") != FAILED for r in results)


def format_plan(plan: list[dict[str, Any]], found: Mapping[str, Any] | None = None) -> str:
    """The plan as lines a person reviews before running teardown."""
    lines = []
    for a in plan:
        where = a["region"]
        data = " [DESTROYS DATA]" if a["destroysData"] else ""
        why = f" - {a['reason']}" if a.get("reason") else ""
        lines.append(f"{a['action']:<33} {a['resource']:<20} {a['name']} ({where}){data}{why}")
    for key in ((found or {}).get("kmsKey"), (found or {}).get("sourceKmsKey")):
        if key and key.get("owned") and key.get("state") == "PendingDeletion":
            lines.append(
                f"note: KMS key {key['keyId']} ({key['region']}) is already scheduled for deletion on "
                f"{key['deletionDate']}"
            )
    for note in (found or {}).get("notes", []):
        lines.append(f"note: {note}")
    if not changes(plan):
        lines.append("nothing of this migration to remove")
    return "\n".join(lines)


def format_results(results: list[dict[str, Any]]) -> str:
    """One line per action: what happened, measured."""
    lines = []
    for r in results:
        extra = f": {r['error']}" if r.get("error") else (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"{r['status']:<40} {r['resource']:<20} {r['name']} ({r['region']}){extra}")
    return "\n".join(lines) if lines else "nothing of this migration found"
