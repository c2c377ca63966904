"""The migration report assembled from what the flow measured: provisioning read-backs, movement stats and
validation, with each resource's status, the overall status, the GO/NO-GO verdict and the next steps.

Pure (no AWS, no Prefect): the migrate flow only composes; this is tested on plain dicts. The report stays the
merge of the measured dicts (so its keys and their order are the ones the tasks wrote); its sections are read
through the models in tasks/report/models.py.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.report.build import (
    bucket_status,
    configuration_differences,
    next_steps,
    overall,
    source_region_changes,
    table_status,
    verdict,
)
from tasks.report.models import Bucket, Table


def assemble(
    cfg: MigrationConfig,
    backend: str,
    account: str,
    res: dict[str, Any],
    moved: dict[str, dict[str, Any]],
    validation: dict[str, Any],
    started: str,
    finished: str,
    duration_seconds: float,
) -> dict[str, Any]:
    """Merge provisioning read-backs, movement stats and validation into the report, with measured statuses.

    Pure (`backend` is the backend's description): the flow passes what it measured and the clock readings.
    """
    checked = {r["source"]: r for r in validation.get("buckets", []) + validation.get("tables", [])}
    buckets = []
    for entry in res["s3Buckets"]:
        row = {**entry, **moved.get(entry["source"], {}), "validation": checked.get(entry["source"])}
        row["status"] = bucket_status(row)
        buckets.append(row)
    tables = []
    for entry in res["dynamodbTables"]:
        row = {**entry, **moved.get(entry["source"], {}), "validation": checked.get(entry["source"])}
        row["status"] = table_status(row)
        tables.append(row)
    source_changes: list[str] = []
    for b in (Bucket.model_validate(row) for row in buckets):
        source_changes += (b.replication.source_changed if b.replication else None) or []
    for t in (Table.model_validate(row) for row in tables):
        source_changes += (t.stream.source_changed if t.stream else None) or []
    source_changes += source_region_changes(res.get("sourceRegion") or {})
    report: dict[str, Any] = {
        "migrationBatch": cfg.migration_batch,
        "sourceRegion": cfg.source_region,
        "targetRegion": cfg.target_region,
        "environmentSuffix": cfg.environment_suffix,
        "backend": backend,
        "account": account,
        "startedAt": started,
        "finishedAt": finished,
        "durationSeconds": duration_seconds,
        "resources": {
            **{k: v for k, v in res.items() if k not in ("s3Buckets", "dynamodbTables")},
            "s3Buckets": buckets,
            "dynamodbTables": tables,
        },
        "sourceChanges": source_changes,
        "validation": validation,
    }
    report["configurationDifferences"] = configuration_differences(cfg, report)
    report["status"] = overall(report)
    report["verdict"] = verdict(report)
    report["nextSteps"] = next_steps(report)
    return report
