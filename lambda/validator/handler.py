"""Validation Lambda: checks that the migrated resources in the target region are configured as promised.

Runs on the python3.12 runtime with only the standard library and boto3. Each resource kind has a
*collect* step (AWS reads, errors captured as data) and a pure *evaluate* step that turns the collected
describe outputs into checks, so the rules are testable without AWS and new kinds (data checks: object
counts, item samples) plug in as one more collect/evaluate pair in CHECKERS.

Input (event keys, falling back to environment variables of the same meaning):
  targetRegion / TARGET_REGION, buckets / BUCKETS (comma-separated), tables / TABLES (comma-separated),
  topicArn / TOPIC_ARN, kmsKeyArn / KMS_KEY_ARN (optional: when set, the CMK in use must be this key).
Output: {"ok": bool, "checks": [{"resource", "check", "ok", "detail"}], "summary": str, "notified": bool}.
When any check fails and a topic is known, a one-paragraph summary is published to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

Check = dict[str, Any]
Collected = dict[str, Any]

MAX_FAILURES_IN_SUMMARY = 20


def _check(resource: str, check: str, ok: bool, detail: str) -> Check:
    return {"resource": resource, "check": check, "ok": bool(ok), "detail": detail}


def _error(err: BaseException) -> dict[str, str]:
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        return {"code": str(e.get("Code", "")), "message": str(e.get("Message", ""))}
    return {"code": type(err).__name__, "message": str(err)}


def _call(fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """Run one describe call; failures become {'error': {...}} so one bad resource never stops the rest."""
    try:
        out = fn(**kwargs)
    except (ClientError, BotoCoreError) as err:
        return {"error": _error(err)}
    out.pop("ResponseMetadata", None)
    return dict(out)


def _client(service: str, region: str) -> Any:
    """A boto3 client from the runtime's credentials (the function's role)."""
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def _key_matches(configured: str | None, expected: str | None) -> bool:
    """A configured key (ARN, key id or alias ARN) is the expected CMK; no expectation means any key."""
    if not expected:
        return True
    if not configured:
        return False
    return configured == expected or expected.endswith("/" + configured.split("/")[-1])


# ---------------------------------------------------------------- S3 buckets


def collect_bucket(s3: Any, name: str) -> Collected:
    """The describe outputs the bucket rules need."""
    return {
        "versioning": _call(s3.get_bucket_versioning, Bucket=name),
        "encryption": _call(s3.get_bucket_encryption, Bucket=name),
        "publicAccessBlock": _call(s3.get_public_access_block, Bucket=name),
    }


def evaluate_bucket(name: str, collected: Collected, kms_key_arn: str | None = None) -> list[Check]:
    """Versioning Enabled, default encryption aws:kms (with the CMK if known), public access block all on."""
    checks: list[Check] = []
    versioning = collected.get("versioning") or {}
    if "error" in versioning:
        checks.append(_check(name, "versioning", False, f"cannot read: {versioning['error']['code']}"))
    else:
        status = versioning.get("Status") or "never enabled"
        checks.append(_check(name, "versioning", status == "Enabled", f"status {status}"))

    encryption = collected.get("encryption") or {}
    if "error" in encryption:
        code = encryption["error"]["code"]
        detail = (
            "no default encryption"
            if code == "ServerSideEncryptionConfigurationNotFoundError"
            else f"cannot read: {code}"
        )
        checks.append(_check(name, "encryption", False, detail))
    else:
        rules = encryption.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
        algorithm = default.get("SSEAlgorithm")
        key = default.get("KMSMasterKeyID")
        ok = algorithm == "aws:kms" and _key_matches(key, kms_key_arn)
        detail = f"{algorithm or 'none'}" + (f" with key {key}" if key else "")
        if algorithm == "aws:kms" and not ok:
            detail += f", expected key {kms_key_arn}"
        checks.append(_check(name, "encryption", ok, detail))

    pab = collected.get("publicAccessBlock") or {}
    if "error" in pab:
        code = pab["error"]["code"]
        detail = "no public access block" if code == "NoSuchPublicAccessBlockConfiguration" else f"cannot read: {code}"
        checks.append(_check(name, "publicAccessBlock", False, detail))
    else:
        conf = pab.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        off = [f for f in flags if conf.get(f) is not True]
        checks.append(
            _check(name, "publicAccessBlock", not off, "all four on" if not off else f"off: {', '.join(off)}")
        )
    return checks


# ---------------------------------------------------------------- DynamoDB tables


def collect_table(ddb: Any, name: str) -> Collected:
    """The describe outputs the table rules need."""
    return {
        "table": _call(ddb.describe_table, TableName=name),
        "continuousBackups": _call(ddb.describe_continuous_backups, TableName=name),
    }


def evaluate_table(name: str, collected: Collected, kms_key_arn: str | None = None) -> list[Check]:
    """Stream NEW_AND_OLD_IMAGES, point-in-time recovery on, SSE with KMS (with the CMK if known)."""
    described = collected.get("table") or {}
    if "error" in described:
        code = described["error"]["code"]
        detail = "table does not exist" if code == "ResourceNotFoundException" else f"cannot read: {code}"
        return [_check(name, "exists", False, detail)]
    table = described.get("Table", {})
    checks: list[Check] = []

    stream = table.get("StreamSpecification") or {}
    enabled = bool(stream.get("StreamEnabled"))
    view = stream.get("StreamViewType")
    checks.append(
        _check(
            name,
            "stream",
            enabled and view == "NEW_AND_OLD_IMAGES",
            f"{view} stream" if enabled else "stream disabled",
        )
    )

    backups = collected.get("continuousBackups") or {}
    if "error" in backups:
        checks.append(_check(name, "pointInTimeRecovery", False, f"cannot read: {backups['error']['code']}"))
    else:
        pitr = (
            backups.get("ContinuousBackupsDescription", {})
            .get("PointInTimeRecoveryDescription", {})
            .get("PointInTimeRecoveryStatus", "DISABLED")
        )
        checks.append(_check(name, "pointInTimeRecovery", pitr == "ENABLED", f"status {pitr}"))

    sse = table.get("SSEDescription") or {}
    status = sse.get("Status", "DISABLED (AWS owned key)")
    sse_type = sse.get("SSEType")
    key = sse.get("KMSMasterKeyArn")
    ok = status == "ENABLED" and sse_type == "KMS" and _key_matches(key, kms_key_arn)
    detail = f"{status} {sse_type or ''}".strip() + (f" with key {key}" if key else "")
    if status == "ENABLED" and sse_type == "KMS" and not ok:
        detail += f", expected key {kms_key_arn}"
    checks.append(_check(name, "encryption", ok, detail))
    return checks


# ---------------------------------------------------------------- driver

# kind -> (event/env key, boto3 service, collect, evaluate). Data checks go here as more entries.
CHECKERS: dict[str, tuple[str, str, Callable[[Any, str], Collected], Callable[..., list[Check]]]] = {
    "bucket": ("buckets", "s3", collect_bucket, evaluate_bucket),
    "table": ("tables", "dynamodb", collect_table, evaluate_table),
}


def settings(event: dict[str, Any] | None) -> dict[str, Any]:
    """Event keys win; environment variables fill in what the event leaves out."""
    event = event or {}

    def names(key: str, env: str) -> list[str]:
        value = event.get(key)
        if value is None:
            value = os.environ.get(env, "")
        if isinstance(value, str):
            value = value.split(",")
        return [str(v).strip() for v in value if str(v).strip()]

    return {
        "targetRegion": event.get("targetRegion") or os.environ.get("TARGET_REGION") or os.environ.get("AWS_REGION"),
        "buckets": names("buckets", "BUCKETS"),
        "tables": names("tables", "TABLES"),
        "topicArn": event.get("topicArn") or os.environ.get("TOPIC_ARN") or None,
        "kmsKeyArn": event.get("kmsKeyArn") or os.environ.get("KMS_KEY_ARN") or None,
    }


def summarize(region: str, checks: list[Check]) -> str:
    """One paragraph an operator can act on from an e-mail or chat notification."""
    failed = [c for c in checks if not c["ok"]]
    if not failed:
        return f"Region migration validation in {region}: all {len(checks)} checks passed."
    listed = "; ".join(f"{c['resource']} {c['check']} ({c['detail']})" for c in failed[:MAX_FAILURES_IN_SUMMARY])
    more = len(failed) - MAX_FAILURES_IN_SUMMARY
    tail = f"; and {more} more" if more > 0 else ""
    return (
        f"Region migration validation in {region}: {len(failed)} of {len(checks)} checks failed: "
        f"{listed}{tail}. Fix these before cutover; the migration report lists every check."
    )


def run_checks(region: str, wanted: dict[str, list[str]], kms_key_arn: str | None = None) -> list[Check]:
    """Collect and evaluate every listed resource of every kind."""
    checks: list[Check] = []
    for key, service, collect, evaluate in CHECKERS.values():
        names = wanted.get(key) or []
        if not names:
            continue
        client = _client(service, region)
        for name in names:
            checks += evaluate(name, collect(client, name), kms_key_arn)
    return checks


def notify(topic_arn: str, region: str, summary: str) -> bool:
    """Publish the summary; a failed publish is reported in the result, it must not hide the checks."""
    topic_region = topic_arn.split(":")[3] if topic_arn.count(":") >= 5 else region
    try:
        _client("sns", topic_region).publish(
            TopicArn=topic_arn,
            Subject=f"Region migration validation failed in {region}"[:100],
            Message=summary,
        )
    except (ClientError, BotoCoreError):
        return False
    return True


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    s = settings(event)
    region = s["targetRegion"]
    if not region:
        raise ValueError("targetRegion is missing: pass it in the event or set TARGET_REGION")
    checks = run_checks(region, {"buckets": s["buckets"], "tables": s["tables"]}, s["kmsKeyArn"])
    ok = all(c["ok"] for c in checks)
    summary = summarize(region, checks)
    notified = False
    if not ok and s["topicArn"]:
        notified = notify(s["topicArn"], region, summary)
    result = {"ok": ok, "checks": checks, "summary": summary, "notified": notified}
    print(json.dumps({"ok": ok, "failed": sum(not c["ok"] for c in checks), "total": len(checks)}))
    return result
