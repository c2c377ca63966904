"""Text for people: the sync, cutover and teardown markdown artifacts and teardown's plan/result lines.

Pure functions of the JSON-able results the flows return (no AWS, no Prefect calls), so flows only compose
and every renderer is tested on plain dicts. The migration report's own markdown lives in build.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.report.build import lambda_line, validation_markdown
from tasks.teardown import changes


def sync_markdown(result: dict[str, Any]) -> str:
    """The sync artifact: state, what was copied and applied, per-table lag, errors, then the validation."""
    lines = [
        f"# Sync {result['migrationBatch']} ({result['environmentSuffix']}): "
        f"{'in sync' if result.get('ok') else 'PROBLEMS'}",
        "",
        f"Finished {result['finishedAt']} on {result['backend']} in {result['durationSeconds']} s: "
        f"{result['copied']} objects copied, {result['streamRecordsApplied']} stream records applied.",
        "",
        "| table | lag (s) |",
        "|---|---|",
    ]
    lines += [f"| {t} | {lag} |" for t, lag in result["lagSeconds"].items()]
    lines += [f"- error: {e}" for e in result["errors"]]
    lines += ["", validation_markdown(result["validation"])]
    if result["validation"].get("lambda"):
        lines.append(f"Validator Lambda: {lambda_line(result['validation']['lambda'])}")
    return "\n".join(lines) + "\n"


def cutover_markdown(result: dict[str, Any]) -> str:
    """The cutover artifact: the decision, its reasons, the validation and any source changes removed."""
    v = result["verdict"]
    lines = [
        f"# Cutover {result['migrationBatch']} ({result['environmentSuffix']}): {v['decision']}",
        "",
        f"Decided {result['decidedAt']} on {result['backend']}; stream lag {result['lagSeconds']} "
        f"(GO needs <= {v['maxLagSeconds']:.0f} s).",
        "",
    ]
    lines += [f"- {r}" for r in v["reasons"]]
    lines += ["", validation_markdown(result["validation"])]
    if result["sourceChangesRemoved"]:
        lines += ["", "## Source changes removed", ""]
        lines += [f"- {r.get('resource')} {r.get('name')}: {r.get('status')}" for r in result["sourceChangesRemoved"]]
    return "\n".join(lines) + "\n"


def teardown_markdown(batch: str, suffix: str, results: list[dict[str, Any]]) -> str:
    """The teardown artifact: one table row per action, with its measured result."""
    rows = [f"| {r['resource']} | `{r['name']}` | {r['region']} | {r['action']} | {r['status']} |" for r in results]
    return "\n".join(
        [
            f"# Teardown of {batch} ({suffix})",
            "",
            "| resource | name | region | action | result |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )


def teardown_plan_text(plan: list[dict[str, Any]], found: Mapping[str, Any] | None = None) -> str:
    """The teardown plan as lines a person reviews before running it."""
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


def teardown_results_text(results: list[dict[str, Any]]) -> str:
    """One line per teardown action: what happened, measured."""
    lines = []
    for r in results:
        extra = f": {r['error']}" if r.get("error") else (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"{r['status']:<40} {r['resource']:<20} {r['name']} ({r['region']}){extra}")
    return "\n".join(lines) if lines else "nothing of this migration found"
