"""Text for people: the migration report's markdown and table artifact, the validation section, the sync,
cutover and teardown markdown artifacts and teardown's plan/result lines.

Pure functions of the JSON-able results the flows return (no AWS, no Prefect calls), so flows only compose
and every renderer is tested on plain dicts. The migration report is read through its typed sections
(tasks/report/models.py); values are written for people (counts as words, no Python reprs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from config.settings import SETTINGS
from tasks.report.models import Bucket, Gaps, LambdaRun, ReadBack, Report, Validation
from tasks.teardown import changes


def lambda_line(lam: Mapping[str, Any] | LambdaRun | None) -> str:
    """What the validator Lambda did, as measured."""
    run = LambdaRun.model_validate(lam) if lam else None
    if run is None or not run.given():
        return "not invoked"
    if run.executed:
        return "executed, passed: all checks passed" if run.ok else f"executed, failed: {run.summary}"
    if run.outcome == "unknown":
        return f"invoked, outcome unknown: {run.detail or ''}"
    return f"deployed, not executed by this backend ({run.function_error}: {(run.detail or '')[:120]})"


def validation_markdown(v: Mapping[str, Any] | Validation) -> str:
    """The validation section (also the whole artifact of the validate flow)."""
    val = Validation.model_validate(v)
    lines = [
        f"## Validation ({val.level}): {'passed' if val.passed else 'FAILED'}",
        "",
        f"Mismatches: {val.mismatches.text()}; every one is in `{val.mismatch_file}`.",
        "",
        "| store | source | target | missing | extra | different |",
        "|---|---|---|---|---|---|",
    ]
    for b in val.buckets:
        lines.append(
            f"| {b.source} | {b.source_objects} objects | {b.target_objects} objects "
            f"| {b.missing} | {b.extra} | {b.different} |"
        )
    for t in val.tables:
        lines.append(
            f"| {t.source} | {t.source_items} items | {t.target_items} items "
            f"| {t.missing} | {t.extra} | {t.different} |"
        )
    for b in val.buckets:
        if b.encryption:
            lines.append(f"\n- {b.source}: {b.encryption} target object(s) not under the migration key")
        if b.foreign:
            lines.append(f"\n- {b.source}: {b.foreign} target-only object(s) not written by the migration")
    for err in val.errors:
        lines.append(f"\n- error: {err}")
    lines += ["", f"Validator Lambda: {lambda_line(val.lambda_)}", ""]
    return "\n".join(lines)


def s3_catchup_lines(buckets: Iterable[Mapping[str, Any] | Bucket]) -> list[str]:
    """What the S3 catch-up did beyond copying: re-encryption (and how), mirrored deletes, foreign objects."""
    lines: list[str] = []
    for entry in buckets:
        b = Bucket.model_validate(entry)
        cu = b.catch_up
        if cu is None:
            continue
        name = b.name or b.source
        reenc = cu.reencryption
        if reenc and (reenc.update_object_encryption or reenc.copy_onto_itself):
            how = f"; UpdateObjectEncryption not used: {reenc.update_unsupported}" if reenc.update_unsupported else ""
            lines.append(
                f"{name}: {reenc.update_object_encryption} object(s) re-encrypted in place with "
                f"UpdateObjectEncryption, {reenc.copy_onto_itself} by a copy onto itself{how}"
            )
        if cu.adopted:
            lines.append(f"{name}: {cu.adopted} object(s) already in the target (same checksum) recorded, not copied")
        if cu.deleted:
            lines.append(f"{name}: {cu.deleted} object(s) deleted on the source got a delete marker")
        if cu.target_only_foreign:
            keys = ", ".join(cu.foreign_keys)
            lines.append(f"{name}: {cu.target_only_foreign} object(s) not written by this migration, untouched: {keys}")
    return lines


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A markdown table: the header, its rule, one line per row."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in rows],
    ]


_KINDS = {"kms": "KMS key", "sns": "SNS topic", "lambda": "Lambda", "checkpoints": "Checkpoint table"}


def render_markdown(report: Mapping[str, Any] | Report) -> str:
    """The markdown artifact a reviewer reads before cutover: the verdict first."""
    rep = Report.model_validate(report)
    ok = rep.status.ok if rep.status else False
    decision = rep.verdict.decision if rep.verdict else ("ALL MOVED" if ok else "PROBLEMS FOUND")
    reasons = rep.verdict.reasons if rep.verdict else []
    lines = [
        f"# Region migration {rep.migration_batch} ({rep.environment_suffix}): {decision}",
        "",
        f"{rep.source_region} -> {rep.target_region} on **{rep.backend}**, "
        f"{rep.started_at} to {rep.finished_at} ({rep.duration_seconds} s).",
        "",
    ]
    if reasons:
        lines += ["## Why not GO", ""] + [f"- {p}" for p in reasons] + [""]
    elif decision == "GO":
        max_lag = rep.verdict.max_lag_seconds if rep.verdict else None
        lines += [
            "Every bucket and table is in sync, validation found no mismatch and the stream lag is under "
            f"{SETTINGS.max_lag_seconds if max_lag is None else max_lag:.0f} s.",
            "",
        ]
    if rep.validation and rep.validation.given():
        lines += [validation_markdown(rep.validation)]
    res = rep.resources
    lines += ["## S3 buckets", ""]
    header = ["source", "target", "status", "seen", "copied", "skipped", "failed", "bytes copied", "replication rule"]
    rows: list[list[Any]] = []
    for b in res.s3_buckets:
        bf, cu = b.backfill, b.catch_up
        both = [s for s in (bf, cu) if s is not None]
        rule = b.replication.rule_status if b.replication and b.replication.rule_status is not None else "n/a"
        rows.append(
            [
                b.source,
                b.name,
                b.status,
                bf.seen if bf else 0,
                sum(s.copied for s in both),
                bf.skipped if bf else 0,
                sum(s.failed for s in both),
                sum(s.bytes_copied for s in both),
                rule,
            ]
        )
    lines += _table(header, rows)
    paths = [(b.name, b.backfill) for b in res.s3_buckets if b.backfill and b.backfill.path_reason]
    lines += [""] * bool(paths)
    for name, bf in paths:  # which path the backfill took, and why (tasks/paths.py); the job when one ran
        lines.append(f"- {name}: backfill by {bf.path_reason}")
        if bf.job:
            job = bf.job
            counts = f"{job.succeeded:,} of {job.total:,} replicated, {job.failed:,} failed"
            lines.append(f"  - job {job.job_id}: {job.status}, {counts}")
        if bf.reencrypt_job:  # tasks/move/s3_batch_reencrypt.py
            fix = bf.reencrypt_job
            counts = f"{fix.succeeded:,} of {fix.total:,} re-encrypted, {fix.failed:,} failed"
            how = "UpdateObjectEncryption in place: no new version, ETag and checksums kept"
            lines.append(f"  - re-encryption job {fix.job_id} ({how}): {fix.status}, {counts}")
    catchup = s3_catchup_lines(res.s3_buckets)
    if catchup:
        lines += ["", *[f"- {line}" for line in catchup]]
    lines += ["", "## DynamoDB tables", ""]
    header = ["source", "target", "status", "scanned", "written", "stream records applied", "lag (s)"]
    rows = []
    for t in res.dynamodb_tables:
        tf, tc = t.backfill, t.catch_up
        lag = tc.lag_seconds if tc and tc.lag_seconds is not None else "n/a"
        rows.append(
            [
                t.source,
                t.name,
                t.status,
                tf.scanned if tf else 0,
                tf.written if tf else 0,
                (tc.records if tc else 0) or 0,
                lag,
            ]
        )
    lines += _table(header, rows)
    lines += ["", "## Provisioned resources", ""]
    rows = [[_KINDS.get(kind, kind.capitalize()), item.label(), item.arn or ""] for kind, item in res.singletons()]
    for key in ("kms", "sns"):
        src = res.source_region.get(key)
        if src:
            rows.append([f"{_KINDS[key]} (source region {src.region})", src.label(), src.arn or ""])
    rows += [["IAM role", role.name or "", role.arn or ""] for role in res.iam.values()]
    rows.append(["CloudWatch alarms", f"{len(res.alarms)} alarms", ""])
    lines += _table(["resource", "name", "arn"], rows)
    if rep.source_changes:
        lines += ["", "## Changes made to the source (undone by teardown)", ""]
        lines += [f"- {c}" for c in rep.source_changes]
    lines += ["", "## Configuration differences", ""]
    lines += _table(
        ["setting", "source", "target"], [[d.setting, d.source, d.target] for d in rep.configuration_differences]
    )
    if rep.estimate and rep.estimate.stores:
        lines += ["", "## Estimate (before the run) vs measured", ""]
        lines += _table(
            ["store", "path", "estimated cost", "estimated", "measured"],
            [[c.store, c.path, c.cost, _counts(c.estimated), _counts(c.measured)] for c in rep.estimate.stores],
        )
        lines += ["", f"Prices: {rep.estimate.prices}."]
    gaps = backend_gaps(rep)
    if gaps:
        lines += ["", "## What this backend could not apply or report (measured, not assumed)", ""]
        lines += [f"- {g}" for g in gaps]
    lines += ["", "## Next steps", ""] + [f"{i}. {s}" for i, s in enumerate(rep.next_steps, 1)]
    return "\n".join(lines) + "\n"


def _counts(values: Mapping[str, float | int | None]) -> str:
    """'objects 600, bytes 21,000, seconds 12.5' (n/a where the run did not measure it)."""
    return ", ".join(f"{k} {'n/a' if v is None else f'{v:,}'}" for k, v in values.items())


def _gap_lines(name: str, gap: Gaps | None) -> list[str]:
    if not gap:
        return []
    items = gap.items() if isinstance(gap, dict) else ((g, "") for g in gap)
    return [f"{name}: {what}" + (f" ({why})" if why else "") for what, why in items]


def backend_gaps(report: Mapping[str, Any] | Report) -> list[str]:
    """Every setting a backend could not apply or report, as measured by the provisioning read-backs."""
    rep = Report.model_validate(report)
    res = rep.resources
    gaps: list[str] = []
    for b in res.s3_buckets:
        why = b.catch_up.reencryption.update_unsupported if b.catch_up and b.catch_up.reencryption else ""
        if why:
            gaps.append(f"{b.name}: {why}; objects were re-encrypted by a copy onto themselves")
    entries: list[ReadBack] = [*res.s3_buckets, *res.dynamodb_tables]
    entries += [item for _, item in res.singletons()]
    entries += list(res.source_region.values())
    for entry in entries:
        gaps += _gap_lines(entry.name or entry.alias or "?", entry.not_supported)
    for b in res.s3_buckets:
        if b.replication:
            gaps += _gap_lines(
                b.replication.name or b.replication.bucket or b.replication.alias or "?", b.replication.not_supported
            )
    # Copies whose read-back had no checksum S3 computed (validation then streams those objects).
    for b in res.s3_buckets:
        for summary in (b.backfill, b.catch_up):
            lines = _gap_lines(b.name or "?", summary.not_supported if summary else None)
            gaps += [line for line in lines if line not in gaps]
    # What a table's backfill or validation had to work around (a segmented-scan fallback).
    for t in res.dynamodb_tables:
        gaps += _gap_lines(t.name or "?", t.backfill.not_supported if t.backfill else None)
    names = {t.source: t.name for t in res.dynamodb_tables}
    for v in [*rep.validation.buckets, *rep.validation.tables] if rep.validation else []:
        gaps += _gap_lines(f"{names.get(v.source) or v.source} (validation)", v.not_supported)
    return gaps


def resource_rows(report: Mapping[str, Any] | Report) -> list[dict[str, str]]:
    """One row per provisioned resource for the table artifact (strings only: NaN renders empty)."""
    res = Report.model_validate(report).resources

    def row(kind: str, item: ReadBack, status: str | None = "provisioned") -> dict[str, str]:
        return {"type": kind, "name": item.label(), "arn": item.arn or "", "status": status or ""}

    rows = [row("s3 bucket", b, b.status) for b in res.s3_buckets]
    rows += [row("dynamodb table", t, t.status) for t in res.dynamodb_tables]
    rows += [row(kind, item) for kind, item in res.singletons()]
    rows += [row(f"{kind} (source region)", item) for kind, item in res.source_region.items()]
    rows += [row("iam role", role) for role in res.iam.values()]
    rows += [row("alarm", alarm) for alarm in res.alarms]
    return rows


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
    lines += ["", validation_markdown(result["validation"])]  # it ends with the validator Lambda's line
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
