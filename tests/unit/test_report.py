"""Report building is pure: statuses follow from measured stats, next steps from the state."""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.report.build import (
    _NO_UPDATE,
    bucket_status,
    go_no_go,
    next_steps,
    overall,
    summarize_copies,
    summarize_segments,
    table_status,
)
from tasks.report.render import backend_gaps, render_markdown, resource_rows, validation_markdown


def part(**kw: Any) -> dict[str, Any]:
    base = {
        "seen": 10,
        "copied": 10,
        "skipped": 0,
        "failed": 0,
        "vanished": 0,
        "bytes_seen": 100,
        "bytes_copied": 100,
        "pending_replication": 0,
        "duration_s": 1.5,
        "failures": [],
    }
    return {**base, **kw}


def test_summaries_add_up_partitions_and_keep_failures() -> None:
    s = summarize_copies(
        [
            part(),
            part(copied=7, skipped=2, failed=1, failures=[{"key": "k", "error": "boom"}]),
            {"error": "RuntimeError: x"},
        ]
    )
    assert s["seen"] == 20 and s["copied"] == 17 and s["skipped"] == 2 and s["failed"] == 1
    assert s["partitions"] == 3 and s["failedPartitions"] == 1
    assert s["failures"] == [{"key": "k", "error": "boom"}]
    assert s["objectsPerSecond"] == round(17 / 1.5, 1)  # over the slowest partition: they run side by side
    d = summarize_segments([{"scanned": 5, "written": 5, "duration_s": 2}, {"error": "x"}])
    assert d == {
        "scanned": 5,
        "written": 5,
        "pages": 0,
        "retries": 0,
        "bytes": 0,
        "segments": 2,
        "failedSegments": 1,
        "durationSeconds": 2.0,
        "itemsPerSecond": 2.5,
    }


def test_statuses_are_derived_from_measurements() -> None:
    ok = {"backfill": summarize_copies([part()]), "catchUp": summarize_copies([part(copied=0)])}
    assert bucket_status(ok) == "in sync"
    assert bucket_status({**ok, "catchUp": summarize_copies([part(failed=1)])}) == "incomplete"
    assert bucket_status({**ok, "catchUp": summarize_copies([part(pending_replication=3)])}) == "replication pending"
    assert bucket_status({**ok, "backfill": summarize_copies([{"error": "x"}])}) == "failed"
    # A pass whose listing failed copied nothing: never "in sync" (flows.parts records only its error).
    assert bucket_status({**ok, "catchUp": {"error": "AccessDenied: ListObjectsV2"}}) == "failed"
    assert bucket_status({**ok, "backfill": {"error": "AccessDenied: ListObjectsV2"}}) == "failed"
    assert table_status({"backfill": {"failedSegments": 0}, "catchUp": {"lag_seconds": 0}}) == "in sync"
    assert table_status({"backfill": {"failedSegments": 0}, "catchUp": {"lag_seconds": 12.5}}) == "lagging"
    assert table_status({"backfill": {"failedSegments": 1}, "catchUp": {}}) == "failed"


def report_with(bucket_state: str, table_state: str, cfg: MigrationConfig) -> dict[str, Any]:
    return {
        "migrationBatch": cfg.migration_batch,
        "environmentSuffix": cfg.environment_suffix,
        "sourceRegion": cfg.source_region,
        "targetRegion": cfg.target_region,
        "backend": "emulator (x)",
        "startedAt": "a",
        "finishedAt": "b",
        "durationSeconds": 1.0,
        "errors": [],
        "resources": {
            "s3Buckets": [
                {
                    "source": "b1",
                    "name": "b1-eu",
                    "arn": "arn:aws:s3:::b1-eu",
                    "status": bucket_state,
                    "replication": {"ruleStatus": "Enabled"},
                }
            ],
            "dynamodbTables": [
                {"source": "t1", "name": "t1-eu", "arn": "arn:t", "status": table_state, "catchUp": {"lag_seconds": 30}}
            ],
            "sns": {"arn": "arn:aws:sns:eu-west-1:1:topic", "name": "topic"},
            "lambda": {"arn": "arn:l", "name": "fn", "deadLetterTarget": None},
            "alarms": [{"name": "a1", "arn": "arn:a1"}],
        },
        "configurationDifferences": [],
        "sourceChanges": ["enabled versioning on b1"],
    }


def test_next_steps_follow_the_state(cfg: MigrationConfig) -> None:
    bad = report_with("incomplete", "lagging", cfg)
    steps = next_steps(bad)
    assert any("bucket b1 is incomplete" in s for s in steps)
    assert any("t1 lags by 30" in s for s in steps)
    assert any("dead-letter target" in s for s in steps)
    good = report_with("in sync", "in sync", cfg)
    good["resources"]["lambda"]["deadLetterTarget"] = "arn:aws:sns:eu-west-1:1:topic"
    steps = next_steps(good)
    assert not any("Re-run" in s for s in steps)
    assert any("cut over" in s for s in steps)


def test_overall_and_markdown(cfg: MigrationConfig) -> None:
    rep = report_with("in sync", "lagging", cfg)
    rep["status"] = overall(rep)
    rep["nextSteps"] = next_steps(rep)
    assert rep["status"] == {"ok": False, "problems": ["table t1: lagging"]}
    md = render_markdown(rep)
    assert md.startswith("# Region migration batch-001 (dev): PROBLEMS FOUND")
    assert "| b1 | b1-eu | in sync |" in md
    assert "enabled versioning on b1" in md
    rows = resource_rows(rep)
    assert {"type": "s3 bucket", "name": "b1-eu", "arn": "arn:aws:s3:::b1-eu", "status": "in sync"} in rows
    assert all(isinstance(v, str) for row in rows for v in row.values())


def test_s3_catchup_reencryption_deletes_and_foreign_objects_are_reported(cfg: MigrationConfig) -> None:
    why = "UpdateObjectEncryption answered but wrote a new object version instead of re-encrypting in place"
    caught = summarize_copies(
        [
            part(copied=0, adopted=2, reencrypted_copy=1, deleted=1, deletedKeys=["gone"]),
            part(copied=0, target_only_foreign=1, foreignKeys=["theirs"], updateObjectEncryptionUnsupported=why),
        ]
    )
    assert caught["reencryption"] == {"UpdateObjectEncryption": 0, "copyOntoItself": 1, _NO_UPDATE: why}
    assert (caught["adopted"], caught["deleted"], caught["target_only_foreign"]) == (2, 1, 1)
    assert caught["deletedKeys"] == ["gone"] and caught["foreignKeys"] == ["theirs"]
    rep = report_with("in sync", "in sync", cfg)
    rep["resources"]["s3Buckets"][0]["catchUp"] = caught
    rep["status"] = overall(rep)
    rep["nextSteps"] = next_steps(rep)
    md = render_markdown(rep)
    assert "b1-eu: 0 object(s) re-encrypted in place with UpdateObjectEncryption, 1 by a copy onto itself" in md
    assert "b1-eu: 1 object(s) deleted on the source got a delete marker" in md
    assert "not written by this migration, untouched: theirs" in md
    assert any("did not write" in step for step in rep["nextSteps"])
    assert any("re-encrypted by a copy" in gap for gap in backend_gaps(rep))
    v = {"level": "full", "buckets": [{"source": "b1", "encryption": 2, "foreign": 1}], "tables": []}
    assert "b1: 2 target object(s) not under the migration key" in validation_markdown(v)
    assert "b1: 1 target-only object(s) not written by the migration" in validation_markdown(v)
    verdict = go_no_go([], {"mismatches": {"missing": 0, "extra": 0, "different": 0, "encryption": 2}}, {}, 60)
    assert verdict["decision"] == "NO-GO" and "2 not under the migration key" in verdict["reasons"][0]


def test_backfill_duration_is_first_start_to_last_end() -> None:
    """More partitions than task workers queue: three 10 s partitions on two workers took 20 s, not 10 s (the
    slowest alone); runs without a span (an older task's stats) fall back to the slowest."""
    parts = [
        {"copied": 10, "duration_s": 10.0, "span": [100.0, 110.0]},
        {"copied": 10, "duration_s": 10.0, "span": [100.0, 110.0]},
        {"copied": 10, "duration_s": 10.0, "span": [110.0, 120.0]},
    ]
    summary = summarize_copies(parts)
    assert (summary["durationSeconds"], summary["objectsPerSecond"]) == (20.0, 1.5)
    segs = [
        {"written": 5, "duration_s": 4.0, "span": [0.0, 4.0]},
        {"written": 5, "duration_s": 4.0, "span": [4.0, 8.0]},
    ]
    assert summarize_segments(segs)["durationSeconds"] == 8.0
    assert (
        summarize_copies([{"copied": 1, "duration_s": 3.0}, {"copied": 1, "duration_s": 5.0}])["durationSeconds"] == 5.0
    )
