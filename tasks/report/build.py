"""The migration report: built from measured results only (pure, no AWS calls), rendered as markdown.

Every status here is derived from what a task read back or counted. Where a backend could not measure
something (the emulator never replicates, never returns a Lambda's dead-letter target) the report says
so instead of printing the intended value.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from config.settings import SETTINGS


def _sum(stats: list[dict[str, Any]], key: str) -> int:
    return sum(int(s.get(key, 0) or 0) for s in stats if isinstance(s, dict))


_NO_UPDATE = "updateObjectEncryptionUnsupported"


def summarize_copies(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-partition S3 copy stats; failures keep their first few examples."""
    failed_examples: list[dict[str, Any]] = []
    for p in parts:
        failed_examples.extend(p.get("failures", []) or [])
    duration = max((float(p.get("duration_s", 0) or 0) for p in parts), default=0.0)
    out: dict[str, Any] = {
        k: _sum(parts, k)
        for k in (
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
    }
    out["partitions"] = len(parts)
    out["failedPartitions"] = sum(1 for p in parts if p.get("error"))
    out["durationSeconds"] = round(duration, 2)
    out["objectsPerSecond"] = _rate(out["copied"], duration)
    out["bytesPerSecond"] = _rate(out["bytes_copied"], duration)
    out["failures"] = failed_examples[:20]
    # Source deletes mirrored as delete markers, and target-only objects we did not write (left untouched).
    out["deletedKeys"] = [k for p in parts for k in p.get("deletedKeys", []) or []][:20]
    out["foreignKeys"] = [k for p in parts for k in p.get("foreignKeys", []) or []][:20]
    why = next((str(p[_NO_UPDATE]) for p in parts if p.get(_NO_UPDATE)), "")
    if out["reencrypted_update"] or out["reencrypted_copy"] or why:
        out["reencryption"] = {
            "UpdateObjectEncryption": out["reencrypted_update"],
            "copyOntoItself": out["reencrypted_copy"],
            "updateObjectEncryptionUnsupported": why,
        }
    return out


def summarize_segments(segs: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up per-segment DynamoDB backfill stats."""
    out: dict[str, Any] = {k: _sum(segs, k) for k in ("scanned", "written", "pages", "retries", "bytes")}
    out["segments"] = len(segs)
    out["failedSegments"] = sum(1 for s in segs if s.get("error"))
    duration = max((float(s.get("duration_s", 0) or 0) for s in segs), default=0.0)
    out["durationSeconds"] = round(duration, 2)
    out["itemsPerSecond"] = _rate(out["written"], duration)
    paced = [s for s in segs if "readRate" in s]
    if paced:  # the read budget, as spent: the segments' static shares add up to the table's rate
        out["readRate"] = round(sum(float(s["readRate"]) for s in paced), 3)
        out["consumedReadUnits"] = round(sum(float(s.get("consumedReadUnits", 0) or 0) for s in paced), 1)
        out["pacedSeconds"] = round(max(float(s.get("pacedSeconds", 0) or 0) for s in paced), 3)
    limits: dict[str, str] = {}
    for s in segs:
        limits.update(s.get("notSupportedByBackend") or {})
    if limits:
        out["notSupportedByBackend"] = limits
    return out


def _rate(count: int, seconds: float) -> float:
    """Throughput over the slowest partition's wall time (partitions run side by side)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def bucket_status(entry: dict[str, Any]) -> str:
    """'in sync' only when both passes ended with nothing failed, vanished unexplained or pending."""
    backfill, catch = entry.get("backfill") or {}, entry.get("catchUp") or {}
    if entry.get("error") or backfill.get("failedPartitions") or catch.get("failedPartitions"):
        return "failed"
    if backfill.get("failed") or catch.get("failed"):
        return "incomplete"
    if catch.get("pending_replication"):
        return "replication pending"
    return "in sync"


def table_status(entry: dict[str, Any]) -> str:
    backfill, catch = entry.get("backfill") or {}, entry.get("catchUp") or {}
    if entry.get("error") or backfill.get("failedSegments") or catch.get("error"):
        return "failed"
    if float(catch.get("lag_seconds", 0) or 0) > 0:
        return "lagging"
    return "in sync"


def configuration_differences(cfg: MigrationConfig, report: dict[str, Any]) -> list[dict[str, str]]:
    """What differs between the regions, as measured on both sides."""
    diffs: list[dict[str, str]] = [
        {"setting": "region", "source": cfg.sourceRegion, "target": cfg.targetRegion},
    ]
    kms = report["resources"].get("kms") or {}
    if kms.get("arn"):
        diffs.append(
            {
                "setting": "encryption key",
                "source": "source's own keys",
                "target": f"customer-managed key {kms.get('alias', '')} ({kms['arn']})",
            }
        )
    for t in report["resources"].get("dynamodbTables", []):
        src = t.get("capacityFrom") or {}
        if src.get("billingMode") == "PROVISIONED":
            diffs.append(
                {
                    "setting": f"capacity {t.get('source')}",
                    "source": f"read {src.get('readCapacity')}, write {src.get('writeCapacity')}",
                    "target": f"read {t.get('readCapacity')}, write {t.get('writeCapacity')} "
                    f"(x{src.get('scalingFactor')}, rounded up)",
                }
            )
        ttl = t.get("ttl") or {}
        if ttl:
            on = ttl.get("status") in ("ENABLED", "ENABLING")
            target = f"{ttl.get('status')} on {ttl.get('attribute')}" if on else str(ttl.get("status") or "DISABLED")
            if t.get("ttlFrom") == "config ttlAttribute":
                target += " (asked by the config's ttlAttribute)"
            if t.get("ttlDrift"):
                target += f"; not yet as wanted: {t['ttlDrift']['message']}"
            diffs.append(
                {
                    "setting": f"ttl {t.get('source')}",
                    "source": str(t.get("sourceTtl") or "see source"),
                    "target": target,
                }
            )
    for b in report["resources"].get("s3Buckets", []):
        lc = b.get("lifecycle")
        if lc:
            diffs.append({"setting": f"lifecycle {b.get('source')}", "source": "unchanged", "target": str(lc)})
    return diffs


def source_region_changes(source: dict[str, Any]) -> list[str]:
    """What provisioning created or repaired in the source region (the alert key and topic of the S3
    replication alarms), as sourceChanges lines; teardown removes both."""
    lines: list[str] = []
    for what, item in (("KMS key", source.get("kms") or {}), ("SNS topic", source.get("sns") or {})):
        name = item.get("alias") or item.get("name") or item.get("arn")
        where = f"{what} {name} in {item.get('region')}"
        if item.get("created"):
            lines.append(f"created {where} (alerts of the S3 replication alarms)")
        elif item.get("repaired"):
            lines.append(f"repaired {where}: {', '.join(item['repaired'])}")
    return lines


def next_steps(report: dict[str, Any]) -> list[str]:
    """Next steps that follow from the measured state, not a fixed list."""
    steps: list[str] = []
    for b in report["resources"].get("s3Buckets", []):
        status = b.get("status")
        if status == "failed" or status == "incomplete":
            steps.append(
                f"Re-run the migration: bucket {b.get('source')} is {status}; the re-run copies only what is missing."
            )
        elif status == "replication pending":
            steps.append(f"Wait for replication of {b.get('source')} and run the sync (catch-up) again.")
        repl = b.get("replication") or {}
        if repl and repl.get("ruleStatus") != "Enabled":
            steps.append(
                f"Replication rule on {b.get('source')} is {repl.get('ruleStatus')}: check the replication role."
            )
    for t in report["resources"].get("dynamodbTables", []):
        status = t.get("status")
        if status == "failed":
            steps.append(f"Re-run the migration: table {t.get('source')} failed; it resumes from its checkpoints.")
        elif status == "lagging":
            steps.append(
                f"Run the sync again: table {t.get('source')} lags by {t.get('catchUp', {}).get('lag_seconds')} s."
            )
        if t.get("ttlDrift"):
            steps.append(
                f"Re-run the migration an hour or more from now to finish the TTL of table {t.get('source')}: "
                f"{t['ttlDrift']['message']}."
            )
        if (t.get("catchUp") or {}).get("retention_warning"):
            steps.append(f"Urgent: {t.get('source')}'s oldest unapplied stream record nears the 24 h retention.")
    lam = report["resources"].get("lambda") or {}
    if lam and lam.get("deadLetterTarget") is None:
        steps.append("Confirm the validator Lambda's dead-letter target on AWS: this backend did not report it.")
    ran = (report.get("validation") or {}).get("lambda") or {}
    if ran.get("outcome") == "unknown":
        steps.append(
            "Check what the alert topic delivered and the validator's log group: its run left no result "
            f"({ran.get('detail')}); a crash or timeout was sent to the topic as a dead letter."
        )
    if not steps:
        steps.append("Keep the regions in sync (run the sync deployment) until cutover.")
        steps.append("Review this report and the validation results, then cut over writers to the target region.")
    for b in report["resources"].get("s3Buckets", []):
        foreign = int((b.get("catchUp") or {}).get("target_only_foreign", 0) or 0)
        if foreign:
            steps.append(
                f"Decide about {foreign} object(s) in {b.get('name')} that the source does not have and this "
                "migration did not write (listed under catchUp.foreignKeys): they are left untouched."
            )
    steps.append(
        f"Subscribe the on-call endpoints to the alert topic {(report['resources'].get('sns') or {}).get('arn', '')}."
    )
    source_topic = ((report["resources"].get("sourceRegion") or {}).get("sns") or {}).get("arn")
    if source_topic:
        steps.append(f"Subscribe them to the source-region topic {source_topic} too (S3 replication alarms).")
    return steps


def s3_catchup_lines(buckets: list[dict[str, Any]]) -> list[str]:
    """What the S3 catch-up did beyond copying: re-encryption (and how), mirrored deletes, foreign objects."""
    lines: list[str] = []
    for b in buckets:
        cu = b.get("catchUp") or {}
        name = b.get("name") or b.get("source")
        reenc = cu.get("reencryption") or {}
        if reenc.get("UpdateObjectEncryption") or reenc.get("copyOntoItself"):
            how = f"; UpdateObjectEncryption not used: {reenc['updateObjectEncryptionUnsupported']}"
            lines.append(
                f"{name}: {reenc.get('UpdateObjectEncryption', 0)} object(s) re-encrypted in place with "
                f"UpdateObjectEncryption, {reenc.get('copyOntoItself', 0)} by a copy onto itself"
                + (how if reenc.get("updateObjectEncryptionUnsupported") else "")
            )
        if cu.get("adopted"):
            lines.append(
                f"{name}: {cu['adopted']} object(s) already in the target (same checksum) recorded, not copied"
            )
        if cu.get("deleted"):
            lines.append(f"{name}: {cu['deleted']} object(s) deleted on the source got a delete marker")
        if cu.get("target_only_foreign"):
            keys = ", ".join(cu.get("foreignKeys") or [])
            lines.append(
                f"{name}: {cu['target_only_foreign']} object(s) not written by this migration, untouched: {keys}"
            )
    return lines


def overall(report: dict[str, Any]) -> dict[str, Any]:
    """ok is True only when every bucket and table is measured in sync and no step failed."""
    problems: list[str] = list(report.get("errors", []))
    for b in report["resources"].get("s3Buckets", []):
        if b.get("status") != "in sync":
            problems.append(f"bucket {b.get('source')}: {b.get('status')}")
    for t in report["resources"].get("dynamodbTables", []):
        if t.get("status") != "in sync":
            problems.append(f"table {t.get('source')}: {t.get('status')}")
        if (t.get("ttlDrift") or {}).get("targetMayDelete"):
            problems.append(
                f"table {t.get('source')}: the target's TTL may delete items the source keeps "
                f"({t['ttlDrift']['message']})"
            )
    return {"ok": not problems, "problems": problems}


MAX_LAG_FOR_GO_SECONDS = SETTINGS.max_lag_seconds  # the one threshold: REGION_MIGRATION_MAX_LAG_SECONDS


def go_no_go(
    problems: list[str], validation: dict[str, Any] | None, lags: dict[str, float], max_lag_seconds: float
) -> dict[str, Any]:
    """GO only when every measurement says so: no problem, validation passed, every stream lag small.

    Shared by the migration report and the cutover decision, so both say GO for the same reasons.
    """
    reasons = list(problems)
    if not validation:
        reasons.append("validation did not run")
    else:
        reasons += validation.get("errors", [])
        counts = validation.get("mismatches", {})
        if any(counts.values()):
            wrong_key = f", {counts['encryption']} not under the migration key" if counts.get("encryption") else ""
            reasons.append(
                "validation found {missing} missing, {extra} extra and {different} different{enc}; "
                "every one is listed in {file}".format(file=validation.get("mismatchFile"), enc=wrong_key, **counts)
            )
        lam = validation.get("lambda") or {}
        if lam.get("executed") and not lam.get("ok"):
            reasons.append(f"validator Lambda reported: {lam.get('summary')}")
    for table, lag in lags.items():
        if lag > max_lag_seconds:
            reasons.append(f"table {table} lags {lag:.0f} s (GO needs <= {max_lag_seconds:.0f} s)")
    unique = list(dict.fromkeys(reasons))
    return {"decision": "NO-GO" if unique else "GO", "reasons": unique, "maxLagSeconds": max_lag_seconds}


def verdict(report: dict[str, Any], max_lag_seconds: float = MAX_LAG_FOR_GO_SECONDS) -> dict[str, Any]:
    """The migration report's verdict, from its measured status, validation and stream lags."""
    lags = {
        str(t.get("source")): float((t.get("catchUp") or {}).get("lag_seconds", 0) or 0)
        for t in report["resources"].get("dynamodbTables", [])
    }
    return go_no_go(report["status"]["problems"], report.get("validation"), lags, max_lag_seconds)


def lambda_line(lam: dict[str, Any] | None) -> str:
    """What the validator Lambda did, as measured."""
    if not lam:
        return "not invoked"
    if lam.get("executed"):
        return "executed, passed: all checks passed" if lam.get("ok") else f"executed, failed: {lam.get('summary')}"
    if lam.get("outcome") == "unknown":
        return f"invoked, outcome unknown: {lam.get('detail', '')}"
    return f"deployed, not executed by this backend ({lam.get('functionError')}: {lam.get('detail', '')[:120]})"


def validation_markdown(v: dict[str, Any]) -> str:
    """The validation section (also the whole artifact of the validate flow)."""
    lines = [
        f"## Validation ({v.get('level')}): {'passed' if v.get('passed') else 'FAILED'}",
        "",
        f"Mismatches: {v.get('mismatches')}; every one is in `{v.get('mismatchFile')}`.",
        "",
        "| store | source | target | missing | extra | different |",
        "|---|---|---|---|---|---|",
    ]
    for r in v.get("buckets", []):
        lines.append(
            f"| {r.get('source')} | {r.get('sourceObjects', '?')} objects | {r.get('targetObjects', '?')} "
            f"objects | {r.get('missing', '?')} | {r.get('extra', '?')} | {r.get('different', '?')} |"
        )
    for r in v.get("tables", []):
        lines.append(
            f"| {r.get('source')} | {r.get('sourceItems', '?')} items | {r.get('targetItems', '?')} items "
            f"| {r.get('missing', '?')} | {r.get('extra', '?')} | {r.get('different', '?')} |"
        )
    for r in v.get("buckets", []):
        if r.get("encryption"):
            lines.append(f"\n- {r.get('source')}: {r['encryption']} target object(s) not under the migration key")
        if r.get("foreign"):
            lines.append(f"\n- {r.get('source')}: {r['foreign']} target-only object(s) not written by the migration")
    for err in v.get("errors", []):
        lines.append(f"\n- error: {err}")
    lines += ["", f"Validator Lambda: {lambda_line(v.get('lambda'))}", ""]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The markdown artifact a reviewer reads before cutover: the verdict first."""
    status = report["status"]
    decision = report.get("verdict") or {"decision": "ALL MOVED" if status["ok"] else "PROBLEMS FOUND", "reasons": []}
    lines = [
        f"# Region migration {report['migrationBatch']} ({report['environmentSuffix']}): {decision['decision']}",
        "",
        f"{report['sourceRegion']} -> {report['targetRegion']} on **{report['backend']}**, "
        f"{report['startedAt']} to {report['finishedAt']} ({report['durationSeconds']} s).",
        "",
    ]
    if decision["reasons"]:
        lines += ["## Why not GO", ""] + [f"- {p}" for p in decision["reasons"]] + [""]
    elif decision["decision"] == "GO":
        lines += [
            "Every bucket and table is in sync, validation found no mismatch and the stream lag is under "
            f"{decision.get('maxLagSeconds', MAX_LAG_FOR_GO_SECONDS):.0f} s.",
            "",
        ]
    if report.get("validation"):
        lines += [validation_markdown(report["validation"])]
    lines += [
        "## S3 buckets",
        "",
        "| source | target | status | seen | copied | skipped | failed | bytes copied | replication rule |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in report["resources"]["s3Buckets"]:
        bf, cu = b.get("backfill") or {}, b.get("catchUp") or {}
        lines.append(
            f"| {b.get('source')} | {b.get('name')} | {b.get('status')} | {bf.get('seen', 0)} | "
            f"{bf.get('copied', 0) + cu.get('copied', 0)} | {bf.get('skipped', 0)} | "
            f"{bf.get('failed', 0) + cu.get('failed', 0)} | {bf.get('bytes_copied', 0) + cu.get('bytes_copied', 0)} | "
            f"{(b.get('replication') or {}).get('ruleStatus', 'n/a')} |"
        )
    catchup = s3_catchup_lines(report["resources"]["s3Buckets"])
    if catchup:
        lines += ["", *[f"- {line}" for line in catchup]]
    lines += [
        "",
        "## DynamoDB tables",
        "",
        "| source | target | status | scanned | written | stream records applied | lag (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in report["resources"]["dynamodbTables"]:
        bf, cu = t.get("backfill") or {}, t.get("catchUp") or {}
        lines.append(
            f"| {t.get('source')} | {t.get('name')} | {t.get('status')} | {bf.get('scanned', 0)} | "
            f"{bf.get('written', 0)} | {cu.get('records', 0)} | {cu.get('lag_seconds', 'n/a')} |"
        )
    res = report["resources"]
    lines += ["", "## Provisioned resources", "", "| resource | name | arn |", "|---|---|---|"]
    for kind, item in (
        ("KMS key", res.get("kms")),
        ("SNS topic", res.get("sns")),
        ("Lambda", res.get("lambda")),
        ("Checkpoint table", res.get("checkpoints")),
        ("Dashboard", res.get("dashboard")),
    ):
        if item:
            lines.append(f"| {kind} | {item.get('alias') or item.get('name', '')} | {item.get('arn', '')} |")
    for kind, item in (("KMS key", "kms"), ("SNS topic", "sns")):
        src = (res.get("sourceRegion") or {}).get(item)
        if src:
            name = src.get("alias") or src.get("name", "")
            lines.append(f"| {kind} (source region {src.get('region')}) | {name} | {src.get('arn', '')} |")
    for role in (res.get("iam") or {}).values():
        lines.append(f"| IAM role | {role.get('name', '')} | {role.get('arn', '')} |")
    lines.append(f"| CloudWatch alarms | {len(res.get('alarms') or [])} alarms | |")
    if report.get("sourceChanges"):
        lines += ["", "## Changes made to the source (undone by teardown)", ""]
        lines += [f"- {c}" for c in report["sourceChanges"]]
    lines += ["", "## Configuration differences", "", "| setting | source | target |", "|---|---|---|"]
    lines += [f"| {d['setting']} | {d['source']} | {d['target']} |" for d in report["configurationDifferences"]]
    gaps = backend_gaps(report)
    if gaps:
        lines += ["", "## What this backend could not apply or report (measured, not assumed)", ""]
        lines += [f"- {g}" for g in gaps]
    lines += ["", "## Next steps", ""] + [f"{i}. {s}" for i, s in enumerate(report["nextSteps"], 1)]
    return "\n".join(lines) + "\n"


def backend_gaps(report: dict[str, Any]) -> list[str]:
    """Every setting a backend could not apply or report, as measured by the provisioning read-backs."""
    gaps: list[str] = []
    res = report["resources"]
    entries = [*res.get("s3Buckets", []), *res.get("dynamodbTables", [])]
    entries += [res.get(k) or {} for k in ("kms", "sns", "lambda", "checkpoints", "dashboard")]
    entries += list((res.get("sourceRegion") or {}).values())
    entries += [b.get("replication") or {} for b in res.get("s3Buckets", [])]
    # What a table's backfill or validation had to work around (a segmented-scan fallback).
    entries += [{**(t.get("backfill") or {}), "name": t.get("name")} for t in res.get("dynamodbTables", [])]
    names = {t.get("source"): t.get("name") for t in res.get("dynamodbTables", [])}
    entries += [
        {**v, "name": f"{names.get(v.get('source')) or v.get('source')} (validation)"}
        for v in (report.get("validation") or {}).get("tables", [])
        if isinstance(v, dict)
    ]
    for b in res.get("s3Buckets", []):
        why = ((b.get("catchUp") or {}).get("reencryption") or {}).get("updateObjectEncryptionUnsupported")
        if why:
            gaps.append(f"{b.get('name')}: {why}; objects were re-encrypted by a copy onto themselves")
    for entry in entries:
        name = entry.get("name") or entry.get("bucket") or entry.get("alias") or "?"
        gap = entry.get("notSupportedByBackend") or {}
        items = gap.items() if isinstance(gap, dict) else ((g, "") for g in gap)
        gaps += [f"{name}: {what}" + (f" ({why})" if why else "") for what, why in items]
    return gaps


def resource_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """One row per provisioned resource for the table artifact (strings only: NaN renders empty)."""
    rows: list[dict[str, str]] = []
    res = report["resources"]
    for b in res["s3Buckets"]:
        rows.append(
            {
                "type": "s3 bucket",
                "name": str(b.get("name", "")),
                "arn": str(b.get("arn", "")),
                "status": str(b.get("status", "")),
            }
        )
    for t in res["dynamodbTables"]:
        rows.append(
            {
                "type": "dynamodb table",
                "name": str(t.get("name", "")),
                "arn": str(t.get("arn", "")),
                "status": str(t.get("status", "")),
            }
        )
    for kind in ("kms", "sns", "lambda", "checkpoints", "dashboard"):
        item = res.get(kind) or {}
        if item:
            rows.append(
                {
                    "type": kind,
                    "name": str(item.get("alias") or item.get("name", "")),
                    "arn": str(item.get("arn", "")),
                    "status": "provisioned",
                }
            )
    for kind, item in (res.get("sourceRegion") or {}).items():
        rows.append(
            {
                "type": f"{kind} (source region)",
                "name": str(item.get("alias") or item.get("name", "")),
                "arn": str(item.get("arn", "")),
                "status": "provisioned",
            }
        )
    for role in (res.get("iam") or {}).values():
        rows.append(
            {
                "type": "iam role",
                "name": str(role.get("name", "")),
                "arn": str(role.get("arn", "")),
                "status": "provisioned",
            }
        )
    for alarm in res.get("alarms") or []:
        rows.append(
            {
                "type": "alarm",
                "name": str(alarm.get("name", "")),
                "arn": str(alarm.get("arn", "")),
                "status": "provisioned",
            }
        )
    return rows
