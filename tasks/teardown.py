"""Teardown: remove exactly what one migration (batch + environment suffix) created, and undo its source changes.

Every AWS call lives in the service's own module (tasks/provision/<service>.py: find / delete / tags / wait);
this module only composes them: discover (find each resource), teardown_plan (pure: what is ours, in what
order) and execute (a table from resource kind to the service's delete).

Resources are found by the names the migration gives them (tasks.names) and confirmed by their tags
(cfg.owns): a resource that has one of our names but not our tags is listed as "skipped (not ours)" and
never touched. On the source side only our own changes are undone: our replication rule (by ID, other
rules kept), source versioning this migration enabled (suspended: S3 cannot switch versioning off once it
was on), source streams and PITR (for an export) this migration enabled (recorded as enabledByUs in the
checkpoint table, which is therefore read first and deleted last). Source objects and items are never touched.

Target buckets and tables that hold data are kept unless the caller passes delete_target_data, and the
KMS key stays while any data encrypted with it is kept. Every result is measured: after each deletion the
resource is looked up again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from config.model import MigrationConfig
from tasks.aws import Backend, error_code
from tasks.errors import UserError
from tasks.move import dynamodb_import
from tasks.move.checkpoints import CheckpointStore
from tasks.move.keys import STREAM_SK, VERSIONING_SK, table_pk, versioning_pk
from tasks.move.s3_plan import replication_rule_id
from tasks.names import ResourceNames, resource_names, staging_bucket
from tasks.provision import cloudwatch, dynamodb, iam, kms, lambda_, s3, s3_reports, sns
from tasks.provision.common import FAILED, REMOVED  # noqa: F401 (REMOVED re-exported for the tests)
from tasks.steps import step
from tasks.teardown_plan import (  # noqa: F401 (re-exported: the flow and the tests read teardown's plan here)
    CHANGE_ACTIONS,
    KEPT_DATA,
    KEPT_KEY,
    SKIPPED,
    changes,
    guard,
    succeeded,
    teardown_plan,
)

PHASES = ("source", "target", "final")
KMS_PENDING_WINDOW_DAYS = kms.PENDING_WINDOW_DAYS
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
        report.get("migrationBatch") != cfg.migration_batch or report.get("environmentSuffix") != cfg.environment_suffix
    ):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for row in (report.get("resources") or {}).get("s3Buckets") or []:
        repl = row.get("replication") if isinstance(row, dict) else None
        if isinstance(repl, dict) and repl.get("bucket"):
            out[str(repl["bucket"])] = repl
    return out


# ---------------------------------------------------------------- discovery


def _regions(cfg: MigrationConfig) -> list[str]:
    return list(dict.fromkeys([cfg.target_region, cfg.source_region]))


@step("teardown-discover", retries=2)
def discover(backend: Backend, cfg: MigrationConfig, *, report_path: str | Path | None = None) -> dict[str, Any]:
    """Everything this migration may have created or changed, found by name and checked by tags (read-only).

    `report_path` (a migration report JSON) is a second source of evidence for source versioning.
    """
    names = resource_names(cfg)
    tgt, src = cfg.target_region, cfg.source_region
    account = backend.account_id(tgt)
    found: dict[str, Any] = {"account": account, "notes": []}

    found["targetBuckets"] = _find_buckets(backend, cfg, names)
    found["targetTables"] = _present(dynamodb.find_table(backend, cfg, t, s) for s, t in names.tables.items())
    found["checkpointTable"] = dynamodb.find_table(backend, cfg, names.checkpoint_table)
    found["kmsKey"] = kms.find_key(backend, cfg, tgt, names.kms_alias)
    found["topic"] = sns.find_topic(backend, cfg, tgt, names.topic, account)
    # The source region's alert topic and its key (for the S3 replication alarms there).
    found["sourceTopic"] = sns.find_topic(backend, cfg, src, names.source_topic, account)
    found["sourceKmsKey"] = kms.find_key(backend, cfg, src, names.source_kms_alias)
    found["lambda"] = lambda_.find_function(backend, cfg, names.lambda_function)
    found["logGroup"] = lambda_.find_log_group(backend, cfg, names.log_group)
    found["reportsBucket"] = s3_reports.find_reports_bucket(backend, cfg)  # S3 Batch Replication's, source region
    roles = dict.fromkeys([names.replication_role, names.lambda_role, names.batch_role])
    found["roles"] = _present(iam.find_role(backend, cfg, r) for r in roles)
    # Alarms named with our prefix in both regions (S3 replication alarms live in the source region).
    found["alarms"] = [a for region in _regions(cfg) for a in cloudwatch.find_alarms(backend, cfg, region)]
    found["dashboard"] = cloudwatch.find_dashboard(backend, cfg, names.dashboard)

    # Source side. The checkpoint table holds the enabledByUs records, so it is read before anything goes.
    store = None
    if found["checkpointTable"] and found["checkpointTable"]["owned"]:
        store = CheckpointStore(backend, tgt, names.checkpoint_table)
    replication, versioning = _find_source_buckets(backend, cfg, names, store, report_replications(report_path, cfg))
    found["replicationRules"] = replication
    found["sourceVersioning"] = versioning
    found["sourceStreams"] = _find_streams(backend, cfg, names, store)
    found["sourcePitr"] = dynamodb_import.find_pitr(backend, cfg, names.tables, store)
    found["stagingBucket"] = s3.find_bucket(backend, cfg, "", staging_bucket(cfg))  # export copies: always removed
    if found["checkpointTable"] is None:
        found["notes"].append(
            "no checkpoint table: no record of source streams or versioning enabled by this migration "
            "(none are changed unless the migration report says so)"
        )
    return found


def _present(entries: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [e for e in entries if e is not None]


def _find_buckets(backend: Backend, cfg: MigrationConfig, names: ResourceNames) -> list[dict[str, Any]]:
    return _present(s3.find_bucket(backend, cfg, source, bucket) for source, bucket in names.buckets.items())


def _find_source_buckets(
    backend: Backend,
    cfg: MigrationConfig,
    names: ResourceNames,
    store: CheckpointStore | None,
    reported: Mapping[str, Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rule_id = replication_rule_id(cfg)
    rules_out: list[dict[str, Any]] = []
    versioning_out: list[dict[str, Any]] = []
    for source in names.buckets:
        state = s3.source_changes(backend, cfg.source_region, source, rule_id)
        if state is None:
            continue
        others = state["otherRules"]
        if state["hasRule"]:
            rules_out.append({"name": source, "region": cfg.source_region, "ruleId": rule_id, "otherRules": others})
        if state["versioning"] != "Enabled":
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
                "region": cfg.source_region,
                "status": state["versioning"],
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
    out = []
    for source in names.tables:
        record = store.get(table_pk(source), STREAM_SK) or {}
        if not record.get("enabledByUs"):
            continue
        current = dynamodb.enabled_stream(backend, cfg.source_region, source)
        if current is None:
            continue
        recorded = record.get("streamArn")
        if recorded:
            ours = recorded == current
        else:  # crashed between enabling and recording: ours if created after the intent record
            created = dynamodb.stream_created(backend, cfg.source_region, current)
            ours = created is not None and created.timestamp() >= int(record.get("intentAt", 0)) - 5
        out.append(
            {
                "name": source,
                "region": cfg.source_region,
                "streamArn": current,
                "recordedArn": recorded,
                "enabledByUs": ours,
                "enabledAt": record.get("enabledAt"),
            }
        )
    return out


# ---------------------------------------------------------------- execution

# Resource kind -> the service module's delete for it; each answers {status, measured|error, ...}, measured by
# looking the resource up again. The kind's guard (below) runs first.
Delete = Callable[[Backend, MigrationConfig, Mapping[str, Any], bool], dict[str, Any]]
DELETES: dict[str, Delete] = {
    "s3-replication-rule": lambda b, c, a, d: s3.remove_replication_rule(b, a["region"], a["name"], a["ruleId"]),
    "source-versioning": lambda b, c, a, d: s3.suspend_versioning(b, a["region"], a["name"]),
    "source-stream": lambda b, c, a, d: dynamodb.disable_stream(b, a["region"], a["name"], a["streamArn"]),
    "source-pitr": lambda b, c, a, d: dynamodb_import.disable_pitr(b, a["region"], a["name"]),
    "staging-bucket": lambda b, c, a, d: s3.delete_bucket(b, a["region"], a["name"], True),
    "cloudwatch-alarm": lambda b, c, a, d: cloudwatch.delete_alarm(b, a["region"], a["name"]),
    "cloudwatch-dashboard": lambda b, c, a, d: cloudwatch.delete_dashboard(b, a["region"], a["name"]),
    "lambda-function": lambda b, c, a, d: lambda_.delete_function(b, a["region"], a["name"]),
    "log-group": lambda b, c, a, d: lambda_.delete_log_group(b, a["region"], a["name"]),
    "iam-role": lambda b, c, a, d: iam.delete_role(b, c, a["name"]),
    "sns-topic": lambda b, c, a, d: sns.delete_topic(b, a["region"], a["arn"]),
    "source-sns-topic": lambda b, c, a, d: sns.delete_topic(b, a["region"], a["arn"]),
    "s3-bucket": lambda b, c, a, d: s3.delete_bucket(b, a["region"], a["name"], d),
    "reports-bucket": lambda b, c, a, d: s3.delete_bucket(b, a["region"], a["name"], True),
    "dynamodb-table": lambda b, c, a, d: dynamodb.delete_table(b, a["region"], a["name"], keep_data=not d),
    "checkpoint-table": lambda b, c, a, d: dynamodb.delete_table(b, a["region"], a["name"], keep_data=False),
    "kms-alias": lambda b, c, a, d: kms.delete_alias(b, a["region"], a["name"]),
    "kms-key": lambda b, c, a, d: kms.schedule_key_deletion(b, a["region"], a["keyId"]),
    "source-kms-alias": lambda b, c, a, d: kms.delete_alias(b, a["region"], a["name"]),
    "source-kms-key": lambda b, c, a, d: kms.schedule_key_deletion(b, a["region"], a["keyId"]),
}


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
            outcome = guard(action, done) or _delete(backend, cfg, action, delete_target_data)
        except (ClientError, BotoCoreError, TimeoutError, UserError) as err:
            outcome = {"status": FAILED, "error": f"{error_code(err) or type(err).__name__}: {err}"}
        results.append({**action, **outcome})
    return results


def _delete(backend: Backend, cfg: MigrationConfig, a: Mapping[str, Any], delete_data: bool) -> dict[str, Any]:
    delete = DELETES.get(a["resource"])
    if delete is None or a["action"] not in CHANGE_ACTIONS:
        raise ValueError(f"unknown teardown action {a['resource']}/{a['action']}")
    return delete(backend, cfg, a, delete_data)


@step("teardown-phase", retries=2, run_name="teardown-{phase}")
def run_phase(
    backend: Backend,
    cfg: MigrationConfig,
    phase: str,
    plan: list[dict[str, Any]],
    delete_target_data: bool,
    prior: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One phase's actions of the plan; every action is idempotent, so a retried phase re-does nothing already gone."""
    actions = [a for a in plan if a["phase"] == phase]
    return execute(backend, cfg, actions, delete_target_data, prior=prior)


@step("teardown-source-changes", retries=2)
def undo_source_changes(backend: Backend, cfg: MigrationConfig) -> list[dict[str, Any]]:
    """Undo only the source-side changes (teardown's source phase): replication rule, versioning, streams."""
    found = discover.fn(backend, cfg)
    return run_phase.fn(backend, cfg, "source", teardown_plan(cfg, found), delete_target_data=False, prior=[])
