"""Teardown's pure half: what is ours and in what order (the plan), what must not run (the guard), and whether
a teardown succeeded. No AWS calls: tasks/teardown.py discovers the resources and executes the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from config.model import MigrationConfig
from tasks.provision.common import ALREADY_GONE, FAILED, REMOVED
from tasks.provision.kms import PENDING_WINDOW_DAYS as KMS_PENDING_WINDOW_DAYS

KEPT_DATA = "kept (pass --delete-target-data)"
KEPT_KEY = "kept (encrypted target data is kept)"
SKIPPED = "skipped (not ours)"
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
        "disable-pitr",
    }
)


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


def _rule_action(r: Mapping[str, Any]) -> dict[str, Any]:
    """Our replication rule: removed alone when other rules share the configuration, else the whole of it."""
    if r["otherRules"]:
        action, why = "remove-replication-rule", f"other rules kept: {', '.join(r['otherRules'])}"
    else:
        action, why = "delete-replication-configuration", "ours is the only rule"
    return _act("source", "s3-replication-rule", r, action, ruleId=r["ruleId"], reason=why)


def _versioning_action(v: Mapping[str, Any]) -> dict[str, Any]:
    """Suspend source versioning only when we enabled it and no other replication rule needs it."""
    if v["enabledByUs"] and not v["otherRules"]:
        why = (
            f"{v['evidence']}; S3 versioning cannot be disabled once enabled, only suspended "
            "(existing object versions are kept)"
        )
        return _act("source", "source-versioning", v, "suspend-versioning", reason=why)
    if v["enabledByUs"]:
        why = f"{v['evidence']}, but replication rules {', '.join(v['otherRules'])} need it"
    else:
        why = f"{v['evidence']}; suspend it by hand if this migration enabled it"
    return _act("source", "source-versioning", v, "keep", reason=why)


def _stream_action(s: Mapping[str, Any]) -> dict[str, Any]:
    """Disable a source stream only when it is the very stream this migration enabled."""
    if s["enabledByUs"]:
        action, why = "disable-stream", f"enabled by this migration at {s.get('enabledAt') or 'unknown time'}"
    else:
        action, why = "keep", f"the stream was replaced since this migration enabled {s['recordedArn']}"
    return _act("source", "source-stream", s, action, streamArn=s["streamArn"], reason=why)


def teardown_plan(cfg: MigrationConfig, found: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ordered actions: undo source changes first (so nothing replicates into buckets being emptied), then
    the target resources, then the checkpoint table (its records drive the source undo) and the key last.
    Each is {phase, resource, name, region, action, destroysData, ...}; action 'skip' = never touched."""
    plan: list[dict[str, Any]] = [
        *(_rule_action(r) for r in found.get("replicationRules", [])),
        *(_versioning_action(v) for v in found.get("sourceVersioning", [])),
        *(_stream_action(s) for s in found.get("sourceStreams", [])),
        *(_act("source", "source-pitr", p, "disable-pitr") for p in found.get("sourcePitr", [])),
    ]
    for a in found.get("alarms", []):
        plan.append(_owned_or_skip("target", "cloudwatch-alarm", a, "delete"))
    for field, resource in (
        ("dashboard", "cloudwatch-dashboard"),
        ("lambda", "lambda-function"),
        ("logGroup", "log-group"),
        ("reportsBucket", "reports-bucket"),  # manifests and completion reports only: no migrated data
        ("stagingBucket", "staging-bucket"),
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


def guard(a: Mapping[str, Any], done: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The outcome of an action that must not run (pure: from the plan and the results so far), else None."""
    if a["action"] == "skip":
        return {"status": SKIPPED}
    if a["action"] == "keep":
        return {"status": f"kept ({a.get('reason', '')})"}
    if a["resource"] == "checkpoint-table":
        pending = [r["name"] for r in done if r["phase"] == "source" and r.get("status") == FAILED]
        if pending:
            return {"status": f"kept (source changes not undone yet: {', '.join(pending)}; re-run teardown)"}
    if a["resource"] in ("kms-alias", "kms-key") and _data_kept(done):
        return {"status": KEPT_KEY}
    return None


def _data_kept(done: Iterable[Mapping[str, Any]]) -> bool:
    return any(
        r["resource"] in ("s3-bucket", "dynamodb-table")
        and r["action"] != "skip"
        and r.get("status") not in (REMOVED, ALREADY_GONE)
        for r in done
    )


# ---------------------------------------------------------------- summaries


def succeeded(results: Iterable[Mapping[str, Any]]) -> bool:
    """True when no action failed (kept and skipped resources are not failures)."""
    return all(r.get("status") != FAILED for r in results)
