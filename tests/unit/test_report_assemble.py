"""Report assembly is pure: the flow's measurements in, the report (keys, statuses, verdict) out, no AWS."""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.report.assemble import assemble

VALIDATION: dict[str, Any] = {
    "level": "full",
    "passed": True,
    "mismatches": {"missing": 0, "extra": 0, "different": 0, "encryption": 0},
    "errors": [],
    "mismatchFile": "m.csv",
    "buckets": [],
    "tables": [],
    "lambda": None,
}


def test_assemble_keeps_the_report_keys_and_merges_per_resource(cfg: MigrationConfig) -> None:
    res: dict[str, Any] = {
        "kms": {"arn": "k"},
        "sns": {"arn": "t"},
        "sourceRegion": {},
        "s3Buckets": [{"source": s.name, "name": "target-" + s.name} for s in cfg.s3_buckets],
        "dynamodbTables": [],
    }
    source = cfg.s3_buckets[0].name
    moved = {source: {"replication": {"sourceChanged": ["rule added"]}, "error": "ListObjects failed"}}
    report = assemble(cfg, "moto", "123456789012", res, moved, VALIDATION, "t0", "t1", 1.5)
    assert list(report) == [
        "migrationBatch",
        "sourceRegion",
        "targetRegion",
        "environmentSuffix",
        "backend",
        "account",
        "startedAt",
        "finishedAt",
        "durationSeconds",
        "resources",
        "sourceChanges",
        "validation",
        "configurationDifferences",
        "status",
        "verdict",
        "nextSteps",
    ]
    assert (report["backend"], report["startedAt"], report["finishedAt"], report["durationSeconds"]) == (
        "moto",
        "t0",
        "t1",
        1.5,
    )
    assert list(report["resources"]) == ["kms", "sns", "sourceRegion", "s3Buckets", "dynamodbTables"]
    row = report["resources"]["s3Buckets"][0]
    assert row["error"] == "ListObjects failed" and row["validation"] is None and row["status"]
    assert report["sourceChanges"][0] == "rule added"
    assert report["verdict"]["decision"] == "NO-GO"
