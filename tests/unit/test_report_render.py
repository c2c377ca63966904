"""The sync, cutover and teardown renderers are pure: plain dicts in, text out (no moto, no flow run)."""

from __future__ import annotations

from typing import Any

from tasks.report.render import (
    cutover_markdown,
    sync_markdown,
    teardown_markdown,
    teardown_plan_text,
    teardown_results_text,
)

VALIDATION: dict[str, Any] = {
    "level": "quick",
    "passed": True,
    "mismatches": {"missing": 0, "extra": 0, "different": 0, "encryption": 0},
    "errors": [],
    "mismatchFile": "r-mismatches.csv",
    "buckets": [],
    "tables": [],
    "lambda": None,
}
BASE = {"migrationBatch": "b1", "environmentSuffix": "dev", "backend": "moto", "validation": VALIDATION}


def test_sync_markdown_states_counts_lag_and_errors() -> None:
    md = sync_markdown(
        {
            **BASE,
            "ok": False,
            "finishedAt": "2026-12-01T00:00:00+00:00",
            "durationSeconds": 1.5,
            "copied": 3,
            "streamRecordsApplied": 7,
            "lagSeconds": {"orders": 2.0},
            "errors": ["raw: boom"],
        }
    )
    assert md.startswith("# Sync b1 (dev): PROBLEMS\n")
    assert "on moto in 1.5 s: 3 objects copied, 7 stream records applied." in md
    assert "| orders | 2.0 |" in md and "- error: raw: boom" in md
    assert md.endswith("\n")


def test_sync_markdown_names_the_validator_run_once() -> None:
    ran = {**VALIDATION, "lambda": {"executed": True, "ok": True, "summary": "2 pairs equal"}}
    result = {"ok": True, "finishedAt": "x", "durationSeconds": 1.0, "copied": 0, "streamRecordsApplied": 0}
    md = sync_markdown({**BASE, **result, "validation": ran, "lagSeconds": {}, "errors": []})
    assert md.count("Validator Lambda:") == 1


def test_cutover_markdown_shows_decision_reasons_and_removed_changes() -> None:
    md = cutover_markdown(
        {
            **BASE,
            "decidedAt": "2026-12-01T00:00:00+00:00",
            "lagSeconds": {"orders": 90.0},
            "verdict": {"decision": "NO-GO", "reasons": ["lag 90 s > 60 s"], "maxLagSeconds": 60.0},
            "sourceChangesRemoved": [{"resource": "source-stream", "name": "orders", "status": "removed"}],
        }
    )
    assert md.startswith("# Cutover b1 (dev): NO-GO\n")
    assert "(GO needs <= 60 s)." in md and "- lag 90 s > 60 s" in md
    assert "## Source changes removed" in md and "- source-stream orders: removed" in md


def test_teardown_texts() -> None:
    result = {"resource": "sns-topic", "name": "t", "region": "r", "action": "delete", "status": "removed"}
    md = teardown_markdown("b1", "dev", [result])
    assert md.splitlines()[0] == "# Teardown of b1 (dev)"
    assert md.splitlines()[-1] == "| sns-topic | `t` | r | delete | removed |"
    assert teardown_results_text([]) == "nothing of this migration found"
    assert teardown_results_text([{**result, "error": "denied"}]).endswith("t (r): denied")
    assert teardown_plan_text([]) == "nothing of this migration to remove"
    action = {**result, "destroysData": True, "reason": "ours"}
    assert "t (r) [DESTROYS DATA] - ours" in teardown_plan_text([action])
