"""The migration report's pure parts: the data path's summaries, each resource's measured status, the
configuration differences, the next steps, the overall status and the GO/NO-GO rule (no AWS calls).

Every status here is derived from what a task read back or counted. Where a backend could not measure
something (the emulator never replicates, never returns a Lambda's dead-letter target) the report says
so instead of printing the intended value. The sections are typed in tasks/report/models.py; the
markdown and the table artifact are in tasks/report/render.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.model import MigrationConfig
from config.prices import PriceTable
from config.settings import SETTINGS
from tasks import estimate as est
from tasks.report.models import (
    Bucket,
    CopySummary,
    EstimateCheck,
    ExportImport,
    LifecycleRule,
    ReadBack,
    Reencryption,
    Report,
    SegmentSummary,
    Table,
    Validation,
)


def _sum(stats: list[dict[str, Any]], key: str) -> int:
    return sum(int(s.get(key, 0) or 0) for s in stats if isinstance(s, dict))


_NO_UPDATE = "updateObjectEncryptionUnsupported"
_COPY_COUNTS = (
    "seen",
    "copied",
    "skipped",
    "failed",
    "vanished",
    "bytes_seen",
    "bytes_copied",
    "pending_replication",
    "adopted",
    "reencrypted_update",
    "reencrypted_copy",
    "deleted",
    "target_only_foreign",
)


def wall_seconds(runs: list[dict[str, Any]]) -> float:
    """How long the runs took together: first start to last end where every run says when it ran (`span`, wall
    clock), else the slowest run (runs side by side; more runs than task workers queue, so the slowest alone
    under-reports)."""
    spans = [r["span"] for r in runs if isinstance(r.get("span"), list | tuple) and len(r["span"]) == 2]
    if runs and len(spans) == len(runs):
        return max(float(s[1]) for s in spans) - min(float(s[0]) for s in spans)
    return max((float(r.get("duration_s", 0) or 0) for r in runs), default=0.0)


def summarize_copies(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-partition S3 copy stats (the tasks' own dicts) into a CopySummary; failures keep their
    first few examples."""
    failed_examples: list[dict[str, Any]] = []
    for p in parts:
        failed_examples.extend(p.get("failures", []) or [])
    duration = wall_seconds(parts)
    counts = {k: _sum(parts, k) for k in _COPY_COUNTS}
    summary = CopySummary(
        **counts,
        partitions=len(parts),
        failed_partitions=sum(1 for p in parts if p.get("error")),
        duration_seconds=round(duration, 2),
        objects_per_second=_rate(counts["copied"], duration),
        bytes_per_second=_rate(counts["bytes_copied"], duration),
        failures=failed_examples[:20],
        # Source deletes mirrored as delete markers, and target-only objects we did not write (left untouched).
        deleted_keys=[k for p in parts for k in p.get("deletedKeys", []) or []][:20],
        foreign_keys=[k for p in parts for k in p.get("foreignKeys", []) or []][:20],
    )
    why = next((str(p[_NO_UPDATE]) for p in parts if p.get(_NO_UPDATE)), "")
    if summary.reencrypted_update or summary.reencrypted_copy or why:
        summary.reencryption = Reencryption(
            update_object_encryption=summary.reencrypted_update,
            copy_onto_itself=summary.reencrypted_copy,
            update_unsupported=why,
        )
    no_checksum = next((str(p["checksumUnsupported"]) for p in parts if p.get("checksumUnsupported")), "")
    if no_checksum:  # measured on the copies' read-backs (tasks/validate/checksums.py checksum_gap)
        summary.not_supported = {"copyChecksum": no_checksum}
    return summary.dump()


def summarize_segments(segs: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-segment DynamoDB backfill stats (the tasks' own dicts) into a SegmentSummary."""
    duration = wall_seconds(segs)
    written = _sum(segs, "written")
    summary = SegmentSummary(
        scanned=_sum(segs, "scanned"),
        written=written,
        pages=_sum(segs, "pages"),
        retries=_sum(segs, "retries"),
        bytes=_sum(segs, "bytes"),
        segments=sum(int(s.get("segments", 1) or 1) for s in segs),  # a group task counts its segments
        failed_segments=sum(1 for s in segs if s.get("error")),
        duration_seconds=round(duration, 2),
        items_per_second=_rate(written, duration),
    )
    if any("segments" in s for s in segs):  # grouped: fewer task runs than segments
        summary.task_runs = len(segs)
    paced = [s for s in segs if "readRate" in s]
    if paced:  # the read budget, as spent: the segments' static shares add up to the table's rate
        summary.read_rate = round(sum(float(s["readRate"]) for s in paced), 3)
        summary.consumed_read_units = round(sum(float(s.get("consumedReadUnits", 0) or 0) for s in paced), 1)
        summary.paced_seconds = round(max(float(s.get("pacedSeconds", 0) or 0) for s in paced), 3)
    limits: dict[str, str] = {}
    for s in segs:
        limits.update(s.get("notSupportedByBackend") or {})
    if limits:
        summary.not_supported = limits
    return summary.dump()


def with_path(summary: dict[str, Any], route: Mapping[str, Any]) -> dict[str, Any]:
    """A backfill summary with the path it took and why (tasks/paths.py), and what a refused path measured."""
    out = {**summary, **{k: route[k] for k in ("path", "pathReason") if route.get(k)}}
    gaps = {**(summary.get("notSupportedByBackend") or {}), **(route.get("notSupportedByBackend") or {})}
    return out | ({"notSupportedByBackend": gaps} if gaps else {})


_IMPORT_KEYS = ("exportArn", "exportTime", "exportedItems", "exportedBytes", "importArn", "importedItems",
                "importedBytes", "importErrors", "staging", "incrementalExports")  # fmt: skip


def summarize_import(got: Mapping[str, Any]) -> dict[str, Any]:
    """A table's export + ImportTable backfill (tasks/move/dynamodb_import.py) as a SegmentSummary: items and bytes
    as DescribeImport counted them, the ARNs; a refused export (`fallback`) only says so (its scan follows)."""
    if got.get("fallback"):
        return with_path({}, got)
    written, seconds = int(got.get("importedItems", 0)), float(got.get("durationSeconds", 0.0))
    summary = SegmentSummary(
        scanned=int(got.get("exportedItems", 0)),
        written=written,
        bytes=int(got.get("importedBytes", 0)),
        duration_seconds=seconds,
        items_per_second=_rate(written, seconds),
        path=got.get("path"),
        path_reason=got.get("pathReason"),
        export_import=ExportImport.model_validate({k: got[k] for k in _IMPORT_KEYS if k in got}),
    )
    return summary.dump()


def _rate(count: int, seconds: float) -> float:
    """Throughput over the slowest partition's wall time (partitions run side by side)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def bucket_status(entry: Mapping[str, Any] | Bucket) -> str:
    """'in sync' only when both passes ended with nothing failed, vanished unexplained or pending."""
    b = Bucket.model_validate(entry)
    backfill, catch = b.backfill or CopySummary(), b.catch_up or CopySummary()
    if b.error or backfill.error or catch.error or backfill.failed_partitions or catch.failed_partitions:
        return "failed"
    if backfill.failed or catch.failed:
        return "incomplete"
    if catch.pending_replication:
        return "replication pending"
    return "in sync"


def table_status(entry: Mapping[str, Any] | Table) -> str:
    t = Table.model_validate(entry)
    if t.error or (t.backfill and t.backfill.failed_segments) or (t.catch_up and t.catch_up.error):
        return "failed"
    if t.lag() > 0:
        return "lagging"
    return "in sync"


def lifecycle_text(rule: LifecycleRule) -> str:
    """A lifecycle rule as a sentence: 'rule x (Enabled): objects expire after 90 days, ...'."""
    parts = [
        f"{what} after {days} days"
        for what, days in (
            ("objects expire", rule.expiration_days),
            ("noncurrent versions expire", rule.noncurrent_expiration_days),
            ("incomplete multipart uploads are aborted", rule.abort_multipart_days),
        )
        if days is not None
    ]
    return f"rule {rule.id} ({rule.status}): " + (", ".join(parts) or "no expiry")


def configuration_differences(cfg: MigrationConfig, report: Mapping[str, Any] | Report) -> list[dict[str, str]]:
    """What differs between the regions, as measured on both sides."""
    res = Report.model_validate(report).resources
    diffs: list[dict[str, str]] = [
        {"setting": "region", "source": cfg.source_region, "target": cfg.target_region},
    ]
    kms = res.kms
    if kms and kms.arn:
        diffs.append(
            {
                "setting": "encryption key",
                "source": "source's own keys",
                "target": f"customer-managed key {kms.alias or ''} ({kms.arn})",
            }
        )
    for t in res.dynamodb_tables:
        src = t.capacity_from
        if src and src.billing_mode == "PROVISIONED":
            diffs.append(
                {
                    "setting": f"capacity {t.source}",
                    "source": f"read {src.read_capacity}, write {src.write_capacity}",
                    "target": f"read {t.read_capacity}, write {t.write_capacity} (x{src.scaling_factor}, rounded up)",
                }
            )
        ttl = t.ttl
        if ttl and ttl.given():
            on = ttl.status in ("ENABLED", "ENABLING")
            target = f"{ttl.status} on {ttl.attribute}" if on else str(ttl.status or "DISABLED")
            if t.ttl_from == "config ttlAttribute":
                target += " (asked by the config's ttlAttribute)"
            if t.ttl_drift:
                target += f"; not yet as wanted: {t.ttl_drift.message}"
            diffs.append({"setting": f"ttl {t.source}", "source": str(t.source_ttl or "see source"), "target": target})
    for b in res.s3_buckets:
        lc = b.lifecycle
        if lc:
            target = lc if isinstance(lc, str) else "; ".join(lifecycle_text(r) for r in lc)
            diffs.append({"setting": f"lifecycle {b.source}", "source": "unchanged", "target": target})
    return diffs


def source_region_changes(source: Mapping[str, Any]) -> list[str]:
    """What provisioning created or repaired in the source region (the alert key and topic of the S3
    replication alarms, the S3 Batch Replication reports bucket), as sourceChanges lines; teardown removes them."""
    lines: list[str] = []
    alerts = "alerts of the S3 replication alarms"
    kinds = (("KMS key", "kms", alerts), ("SNS topic", "sns", alerts))
    for what, key, why in (*kinds, ("S3 bucket", "reportsBucket", "manifests and reports of S3 Batch Replication")):
        item = ReadBack.model_validate(source.get(key) or {})
        where = f"{what} {item.alias or item.name or item.arn} in {item.region}"
        if item.created:
            lines.append(f"created {where} ({why})")
        elif item.repaired:
            lines.append(f"repaired {where}: {', '.join(item.repaired)}")
    return lines


def next_steps(report: Mapping[str, Any] | Report) -> list[str]:
    """Next steps that follow from the measured state, not a fixed list."""
    rep = Report.model_validate(report)
    res = rep.resources
    steps: list[str] = []
    for b in res.s3_buckets:
        if b.status == "failed" or b.status == "incomplete":
            steps.append(
                f"Re-run the migration: bucket {b.source} is {b.status}; the re-run copies only what is missing."
            )
        elif b.status == "replication pending":
            steps.append(f"Wait for replication of {b.source} and run the sync (catch-up) again.")
        repl = b.replication
        if repl and repl.given() and repl.rule_status != "Enabled":
            steps.append(f"Replication rule on {b.source} is {repl.rule_status}: check the replication role.")
    for t in res.dynamodb_tables:
        if t.status == "failed":
            steps.append(f"Re-run the migration: table {t.source} failed; it resumes from its checkpoints.")
        elif t.status == "lagging":
            lag = t.catch_up.lag_seconds if t.catch_up else None
            steps.append(f"Run the sync again: table {t.source} lags by {lag} s.")
        if t.ttl_drift:
            steps.append(
                f"Re-run the migration an hour or more from now to finish the TTL of table {t.source}: "
                f"{t.ttl_drift.message}."
            )
        if t.catch_up and t.catch_up.retention_warning:
            steps.append(f"Urgent: {t.source}'s oldest unapplied stream record nears the 24 h retention.")
    lam = res.lambda_
    if lam and lam.given() and lam.dead_letter_target is None:
        steps.append("Confirm the validator Lambda's dead-letter target on AWS: this backend did not report it.")
    ran = rep.validation.lambda_ if rep.validation else None
    if ran and ran.outcome == "unknown":
        steps.append(
            "Check what the alert topic delivered and the validator's log group: its run left no result "
            f"({ran.detail}); a crash or timeout was sent to the topic as a dead letter."
        )
    if not steps:
        steps.append("Keep the regions in sync (run the sync deployment) until cutover.")
        steps.append("Review this report and the validation results, then cut over writers to the target region.")
    for b in res.s3_buckets:
        foreign = b.catch_up.target_only_foreign if b.catch_up else 0
        if foreign:
            steps.append(
                f"Decide about {foreign} object(s) in {b.name} that the source does not have and this "
                "migration did not write (listed under catchUp.foreignKeys): they are left untouched."
            )
    steps.append(f"Subscribe the on-call endpoints to the alert topic {(res.sns.arn if res.sns else '') or ''}.")
    source_topic = res.source_region.get("sns")
    if source_topic and source_topic.arn:
        steps.append(f"Subscribe them to the source-region topic {source_topic.arn} too (S3 replication alarms).")
    return steps


def overall(report: Mapping[str, Any] | Report) -> dict[str, Any]:
    """ok is True only when every bucket and table is measured in sync and no step failed."""
    rep = Report.model_validate(report)
    problems: list[str] = list(rep.errors)
    for b in rep.resources.s3_buckets:
        if b.status != "in sync":
            problems.append(f"bucket {b.source}: {b.status}")
    for t in rep.resources.dynamodb_tables:
        if t.status != "in sync":
            problems.append(f"table {t.source}: {t.status}")
        if t.ttl_drift and t.ttl_drift.target_may_delete:
            problems.append(
                f"table {t.source}: the target's TTL may delete items the source keeps ({t.ttl_drift.message})"
            )
    return {"ok": not problems, "problems": problems}


def go_no_go(
    problems: list[str],
    validation: Mapping[str, Any] | Validation | None,
    lags: dict[str, float],
    max_lag_seconds: float,
) -> dict[str, Any]:
    """GO only when every measurement says so: no problem, validation passed, every stream lag small.

    Shared by the migration report and the cutover decision, so both say GO for the same reasons.
    """
    reasons = list(problems)
    v = Validation.model_validate(validation) if validation else None
    if v is None or not v.given():
        reasons.append("validation did not run")
    else:
        reasons += v.errors
        counts = v.mismatches
        if counts.missing or counts.extra or counts.different or counts.encryption:
            wrong_key = f", {counts.encryption} not under the migration key" if counts.encryption else ""
            reasons.append(
                f"validation found {counts.missing} missing, {counts.extra} extra and {counts.different} "
                f"different{wrong_key}; every one is listed in {v.mismatch_file}"
            )
        lam = v.lambda_
        if lam and lam.executed and not lam.ok:
            reasons.append(f"validator Lambda reported: {lam.summary}")
    for table, lag in lags.items():
        if lag > max_lag_seconds:
            reasons.append(f"table {table} lags {lag:.0f} s (GO needs <= {max_lag_seconds:.0f} s)")
    unique = list(dict.fromkeys(reasons))
    return {"decision": "NO-GO" if unique else "GO", "reasons": unique, "maxLagSeconds": max_lag_seconds}


def verdict(report: Mapping[str, Any] | Report, max_lag_seconds: float | None = None) -> dict[str, Any]:
    """The migration report's verdict, from its measured status, validation and stream lags."""
    rep = Report.model_validate(report)
    lags = {str(t.source): t.lag() for t in rep.resources.dynamodb_tables}
    problems = rep.status.problems if rep.status else []
    return go_no_go(
        problems, rep.validation, lags, SETTINGS.max_lag_seconds if max_lag_seconds is None else max_lag_seconds
    )


def estimate_vs_measured(
    report: Mapping[str, Any] | Report,
    tables: Mapping[str, dict[str, Any]],
    prices: PriceTable,
    s3_batch_min_objects: int | None,
) -> dict[str, Any]:
    """The report's `estimate` section: each store's estimate beside the run's measured counts and durations.

    A bucket's estimate starts from the count its backfill planning listed before copying (`plan`); a table's was
    made before the move (`tables`: tasks/plan_estimate.source_estimates, from DescribeTable or a sample).
    """
    rep = Report.model_validate(report)
    rows: list[EstimateCheck] = []
    estimates: list[dict[str, Any]] = []
    workers = est.CopyWorkers(SETTINGS.migrate_task_workers, SETTINGS.s3_copy_workers)
    for b in rep.resources.s3_buckets:
        if not b.plan or not b.source:
            continue
        e = est.estimate_bucket(prices, b.source, b.plan.objects, b.plan.bytes, s3_batch_min_objects, workers)
        runs = [s for s in (b.backfill, b.catch_up) if s is not None]
        measured = {
            "objects": b.backfill.seen if b.backfill else None,
            "bytes": b.backfill.bytes_seen if b.backfill else None,
            "COPY/PUT": sum(s.copied + s.reencrypted_copy for s in runs) if runs else None,
            "seconds": round(sum(s.duration_seconds for s in runs), 1) if runs else None,
        }
        wanted = {"objects": e["objects"], "bytes": e["bytes"], "COPY/PUT": e["requests"].get("COPY/PUT")}
        rows.append(_check(e, {**wanted, "seconds": e["seconds"]}, measured))
        estimates.append(e)
    for t in rep.resources.dynamodb_tables:
        te = tables.get(t.source or "")
        if not te:
            continue
        tf = t.backfill
        measured = {
            "items": tf.scanned if tf else None,
            "bytes": tf.bytes if tf else None,
            "scan RRU": tf.consumed_read_units if tf else None,
            "seconds": tf.duration_seconds if tf else None,
        }
        wanted = {"items": te["items"], "bytes": te["bytes"], "scan RRU": te["requests"].get("scan RRU")}
        rows.append(_check(te, {**wanted, "seconds": te["seconds"]}, measured))
        estimates.append(te)
    total = est.total(estimates)
    measured_total = {"seconds": rep.duration_seconds}
    return {
        "stores": [r.dump() for r in rows],
        "total": {"estimated": {"usd": total["usd"], "seconds": total["seconds"]}, "measured": measured_total},
        "prices": "; ".join(prices.origin),
    }


def _check(e: Mapping[str, Any], estimated: dict[str, Any], measured: dict[str, Any]) -> EstimateCheck:
    return EstimateCheck(
        store=e["store"], kind=e["kind"], path=e["path"], cost=e["cost"], estimated=estimated, measured=measured
    )
