"""The report JSON keeps its keys and shape for the same run: every key path, with the JSON type of its leaf,
is pinned against tests/unit/data/report_shape.json (later issues change that file on purpose, never by accident).

The inputs are a real emulator run's provisioning read-backs, stream catch-up and validation
(tests/unit/data/report_inputs.json), with per-partition copy and segment stats summarised as the flow does.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from config.model import MigrationConfig
from tasks.report.assemble import assemble
from tasks.report.build import lifecycle_text, summarize_copies, summarize_segments
from tasks.report.models import LifecycleRule, Mismatches, Report
from tasks.report.render import render_markdown

DATA = Path(__file__).parent / "data"
WHY_NO_UPDATE = "UpdateObjectEncryption answered but wrote a new object version instead of re-encrypting in place"


def copy_part(**kw: Any) -> dict[str, Any]:
    """One S3 partition's stats as move.s3.copy_partition returns them."""
    base: dict[str, Any] = {
        "seen": 150,
        "copied": 150,
        "skipped": 0,
        "failed": 0,
        "vanished": 0,
        "bytes_seen": 10_000,
        "bytes_copied": 10_000,
        "pending_replication": 0,
        "adopted": 0,
        "reencrypted_update": 0,
        "reencrypted_copy": 0,
        "deleted": 0,
        "target_only_foreign": 0,
        "duration_s": 7.1,
        "failures": [],
        "deletedKeys": [],
        "foreignKeys": [],
    }
    return {**base, **kw}


def segment(**kw: Any) -> dict[str, Any]:
    """One DynamoDB backfill segment's stats as move.dynamodb.backfill_segment returns them."""
    base: dict[str, Any] = {"scanned": 1250, "written": 1250, "pages": 1, "retries": 0, "bytes": 800_000}
    return {**base, "duration_s": 6.7, **kw}


def measured_inputs() -> dict[str, Any]:
    """What migrate measured: read-backs, replication/stream setup, backfill and catch-up, validation."""
    inputs = json.loads((DATA / "report_inputs.json").read_text(encoding="utf-8"))
    moved: dict[str, dict[str, Any]] = inputs["moved"]
    moved["analytics-raw-data"]["backfill"] = summarize_copies([copy_part(), copy_part(seen=157, copied=157)])
    moved["analytics-raw-data"]["catchUp"] = summarize_copies(
        [
            copy_part(copied=1, skipped=149, adopted=2, reencrypted_copy=1, deleted=1, deletedKeys=["gone.csv"]),
            copy_part(
                copied=0,
                skipped=157,
                target_only_foreign=1,
                foreignKeys=["theirs.csv"],
                updateObjectEncryptionUnsupported=WHY_NO_UPDATE,
            ),
        ]
    )
    moved["analytics-processed"]["backfill"] = summarize_copies([copy_part(seen=306, copied=306)])
    moved["analytics-processed"]["catchUp"] = summarize_copies([copy_part(seen=306, copied=0, skipped=306)])
    paced = {"readRate": 1.25, "consumedReadUnits": 0.5, "pacedSeconds": 0.0}
    moved["analytics-events"]["backfill"] = summarize_segments([segment(**paced), segment(**paced)])
    fallback = {"segmentedScan": "Scan with Segment/TotalSegments answered 500; one unsegmented scan was used"}
    moved["analytics-users"]["backfill"] = summarize_segments([segment(scanned=2500, notSupportedByBackend=fallback)])
    return inputs


def measured_no_go_inputs() -> dict[str, Any]:
    """The same run gone wrong: a failed partition with a failure example, a lagging table."""
    inputs = measured_inputs()
    moved = inputs["moved"]
    failure = {"key": "big.bin", "error": "AccessDenied: kms:Decrypt"}
    moved["analytics-processed"]["backfill"] = summarize_copies(
        [copy_part(copied=149, failed=1, failures=[failure]), {"error": "RuntimeError: listing failed"}]
    )
    moved["analytics-users"]["catchUp"] = {**moved["analytics-users"]["catchUp"], "lag_seconds": 90.0}
    return inputs


def migrate_report(cfg: MigrationConfig, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report as flows/migrate.py builds it: assemble, then JSON-able, then the preflight warnings."""
    inputs = inputs or measured_inputs()
    report = assemble(
        cfg,
        inputs["backend"],
        inputs["account"],
        inputs["resources"],
        inputs["moved"],
        inputs["validation"],
        "2026-12-01T13:03:00+00:00",
        "2026-12-01T13:03:36+00:00",
        36.1,
    )
    out: dict[str, Any] = json.loads(json.dumps(copy.deepcopy(report), default=str))
    out["preflightWarnings"] = ["source bucket analytics-raw-data has objects over 5 GiB: copied in parts"]
    out["reportPath"] = "reports/migration-report-batch-001-dev.json"
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def shape(value: Any, path: str = "$", into: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Every key path (list elements as []) with the JSON types found there; empty containers count as leaves."""
    out: dict[str, set[str]] = {} if into is None else into
    if isinstance(value, dict) and value:
        for k, v in value.items():
            shape(v, f"{path}.{k}", out)
    elif isinstance(value, list) and value:
        for v in value:
            shape(v, f"{path}[]", out)
    else:
        kind = ("object" if isinstance(value, dict) else "array") if isinstance(value, dict | list) else _kind(value)
        out.setdefault(path, set()).add(kind)
    return out


def shape_lines(value: Any) -> list[str]:
    return [f"{p}: {'|'.join(sorted(kinds))}" for p, kinds in sorted(shape(value).items())]


def test_the_migrate_report_keeps_its_keys_and_shape(cfg: MigrationConfig) -> None:
    report = migrate_report(cfg)
    expected = json.loads((DATA / "report_shape.json").read_text(encoding="utf-8"))
    assert shape_lines(report) == expected["migrate"]
    assert list(report) == expected["migrateTopLevelOrder"]


def test_a_no_go_report_keeps_its_keys_and_shape(cfg: MigrationConfig) -> None:
    report = migrate_report(cfg, measured_no_go_inputs())
    expected = json.loads((DATA / "report_shape.json").read_text(encoding="utf-8"))
    assert report["verdict"]["decision"] == "NO-GO"
    assert shape_lines(report) == expected["migrateNoGo"]


def test_the_typed_report_reads_and_writes_the_same_json(cfg: MigrationConfig) -> None:
    """The models declare today's keys: parsing the report and serialising it again gives the same JSON."""
    for report in (migrate_report(cfg), migrate_report(cfg, measured_no_go_inputs())):
        assert Report.model_validate(report).model_dump(by_alias=True, exclude_unset=True) == report


def test_the_markdown_shows_values_for_people_not_python_reprs(cfg: MigrationConfig) -> None:
    for report in (migrate_report(cfg), migrate_report(cfg, measured_no_go_inputs())):
        md = render_markdown(report)
        assert "{'" not in md and "[{" not in md
        assert "Mismatches: 0 missing, 0 extra, 0 different, 0 not under the migration key;" in md
        assert (
            "| lifecycle analytics-raw-data | unchanged | rule region-migration-expiry (Enabled): objects expire "
            "after 90 days, noncurrent versions expire after 90 days, incomplete multipart uploads are aborted "
            "after 7 days |"
        ) in md


def test_lifecycle_and_mismatch_texts() -> None:
    rule = LifecycleRule.model_validate({"id": "r", "status": "Disabled", "expirationDays": 30})
    assert lifecycle_text(rule) == "rule r (Disabled): objects expire after 30 days"
    assert lifecycle_text(LifecycleRule(id="r", status="Enabled")) == "rule r (Enabled): no expiry"
    assert Mismatches(missing=1, extra=2, different=3).text() == "1 missing, 2 extra, 3 different"
    assert Mismatches.model_validate({"missing": 0, "extra": 0, "different": 0, "encryption": 4}).text() == (
        "0 missing, 0 extra, 0 different, 4 not under the migration key"
    )
