"""Validation Lambda: checks the migrated resources in the target region, their configuration and their data.

Runs on the python3.12 runtime with only the standard library, boto3, `digest.py` and `validator_input.py`
(from tasks/validate/, which build_package ships next to this file), so the key comparison, the TTL rule and
the reading of the pairs the flow writes are the flow's own code.
Each check has a *collect* step (AWS reads, errors captured as data) and a pure *evaluate* step, so the rules
are testable without AWS.

Configuration checks (per target resource): S3 versioning, default SSE-KMS, public access block; DynamoDB
stream, point-in-time recovery, SSE-KMS.
Quick data checks (per source -> target pair, check "data.keys"): S3 keys and sizes from both listings;
DynamoDB primary keys from a keys-only scan of both tables, leaving out items whose TTL (the source table's
TTL attribute) has passed, on both sides. Contents are not compared here: the flow's pandas validation does.

Input (event keys, falling back to environment variables of the same meaning):
  targetRegion / TARGET_REGION, sourceRegion / SOURCE_REGION (needed when there are pairs),
  pairs.buckets / BUCKET_PAIRS and pairs.tables / TABLE_PAIRS ([{"source", "target"}] or "src=dst,src2=dst2"),
  buckets / BUCKETS, tables / TABLES (comma-separated; configuration checks only; pair targets are added),
  topicArn / TOPIC_ARN, kmsKeyArn / KMS_KEY_ARN (optional: when set, the CMK in use must be this key),
  sampleLimit / SAMPLE_LIMIT (keys listed per kind of mismatch, default 10),
  runId and resultTable / RESULT_TABLE: where the result is recorded for the flow (see record_result).
Output: {"ok": bool, "checks": [{"resource", "check", "ok", "detail"} (+ "source", "counts", "keys" for data
checks)], "summary": str, "notified": bool}.
When any check fails and a topic is known, a one-paragraph summary is published to it.
The flow invokes asynchronously (the dead-letter target only receives failed asynchronous invocations), so
the return value reaches nobody: with a runId the result is also written to the migration's checkpoint table
(item pk "validator", sk runId), where the flow polls for it. A run that cannot record it raises, so the
event reaches the dead-letter topic instead of vanishing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from tasks.validate import digest
    from tasks.validate.validator_input import SAMPLE_LIMIT, settings
else:
    try:  # in the deployed zip, digest.py and validator_input.py sit next to this file
        import digest
        from validator_input import SAMPLE_LIMIT, settings
    except ImportError:  # run from the repository (tests): the same files, where the flow imports them from
        from tasks.validate import digest
        from tasks.validate.validator_input import SAMPLE_LIMIT, settings

Check = dict[str, Any]
Collected = dict[str, Any]

MAX_FAILURES_IN_SUMMARY = 20
SCAN_SEGMENTS = 4  # parallel scan segments per table side
RESULT_PK = "validator"  # tasks/move/keys.RESULT_PK: the partition the role may write to, nothing else
MAX_RESULT_BYTES = 300_000  # a DynamoDB item holds 400 KB: failed checks beyond this are counted, not listed


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


# ---------------------------------------------------------------- data: keys (and sizes) of both sides


def collect_bucket_keys(s3: Any, name: str) -> Collected:
    """{"objects": {key: size}} of every current object, from the listing alone (1 request per 1,000 keys)."""
    objects: dict[str, int | None] = {}
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                objects[obj["Key"]] = int(obj["Size"])
    except (ClientError, BotoCoreError) as err:
        return {"error": _error(err)}
    return {"objects": objects}


def table_key_schema(ddb: Any, name: str) -> Collected:
    """{"keyNames": [hash, range?], "ttlAttribute": str | None} of a table (the source: both sides use it)."""
    described = _call(ddb.describe_table, TableName=name)
    if "error" in described:
        return described
    schema = sorted(described["Table"]["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    ttl = _call(ddb.describe_time_to_live, TableName=name).get("TimeToLiveDescription", {})
    enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    return {
        "keyNames": [k["AttributeName"] for k in schema],
        "ttlAttribute": (str(ttl.get("AttributeName") or "") or None) if enabled else None,
    }


def collect_table_keys(
    ddb: Any, name: str, key_names: list[str], ttl_attr: str | None, now: float, segments: int = SCAN_SEGMENTS
) -> Collected:
    """{"keys": {key_string: None}, "expired": n}: a consistent, parallel scan projecting only the key
    attributes (and the TTL attribute); items whose TTL has passed are counted, not kept."""
    wanted = [*key_names, *([ttl_attr] if ttl_attr and ttl_attr not in key_names else [])]
    names = {f"#a{i}": attr for i, attr in enumerate(wanted)}

    def segment(seg: int) -> tuple[dict[str, int | None], int]:
        keys: dict[str, int | None] = {}
        expired = 0
        pages = ddb.get_paginator("scan").paginate(
            TableName=name,
            ConsistentRead=True,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
            Segment=seg,
            TotalSegments=segments,
        )
        for page in pages:
            for item in page.get("Items", []):
                if digest.is_expired(item, ttl_attr, now):
                    expired += 1
                else:
                    keys[digest.key_string(item, key_names)] = None
        return keys, expired

    try:
        with ThreadPoolExecutor(max_workers=segments) as pool:
            parts = list(pool.map(segment, range(segments)))
    except (ClientError, BotoCoreError) as err:
        return {"error": _error(err)}
    except (KeyError, ValueError) as err:  # the target lacks a source key attribute or has another key type
        return {"error": {"code": "KeySchemaMismatch", "message": f"{type(err).__name__}: {err}"}}
    keys: dict[str, int | None] = {}
    for part, _ in parts:
        keys.update(part)
    return {"keys": keys, "expired": sum(e for _, e in parts)}


def _data_check(
    source: str, target: str, ok: bool, detail: str, counts: dict[str, int], keys: dict[str, list[str]]
) -> Check:
    return _check(target, "data.keys", ok, detail) | {"source": source, "counts": counts, "keys": keys}


def evaluate_keys(
    kind: str,
    source: str,
    target: str,
    src: Collected,
    dst: Collected,
    limit: int = SAMPLE_LIMIT,
) -> Check:
    """One "data.keys" check from both sides' collected keys (kind "bucket": values are sizes; "table":
    keys only), using digest.compare_keys, the comparison the flow uses too."""
    field = "objects" if kind == "bucket" else "keys"
    for side, name, collected in (("source", source, src), ("target", target, dst)):
        if "error" in collected:
            code = collected["error"]["code"]
            gone = code in ("NoSuchBucket", "ResourceNotFoundException")
            what = f"{side} {kind} {name} " + ("does not exist" if gone else f"cannot be read: {code}")
            return _data_check(source, target, False, what, {}, {})
    result = digest.compare_keys(src[field], dst[field])
    counts = {
        "source": len(src[field]),
        "target": len(dst[field]),
        "missing": len(result["missing"]),
        "extra": len(result["extra"]),
        "different": len(result["different"]),
    }
    if kind == "table":
        counts |= {"expiredSkipped": int(src.get("expired", 0)), "expiredSkippedTarget": int(dst.get("expired", 0))}
    unit = "objects" if kind == "bucket" else "items"
    labels = {"missing": "missing", "extra": "extra", "different": "size-different"}
    wrong = [k for k in ("missing", "extra", "different") if counts[k]]
    if not wrong:
        detail = f"all {counts['source']} {unit} of {source} present"
        if kind == "bucket":
            detail += " with equal sizes"
    else:
        listed = "; ".join(
            f"{labels[k]}: " + ", ".join(result[k][:limit]) + (" ..." if counts[k] > limit else "") for k in wrong
        )
        detail = (
            ", ".join(f"{counts[k]} {labels[k]}" for k in wrong)
            + f" ({counts['source']} {unit} in {source}, {counts['target']} in target); {listed}"
        )
    if kind == "table" and (counts["expiredSkipped"] or counts["expiredSkippedTarget"]):
        detail += f" (TTL-expired left out: {counts['expiredSkipped']} source, {counts['expiredSkippedTarget']} target)"
    return _data_check(source, target, not wrong, detail, counts, {k: result[k][:limit] for k in wrong})


def check_bucket_pair(source_region: str, region: str, source: str, target: str, limit: int) -> Check:
    """Keys and sizes of a source bucket against its target bucket."""
    src = collect_bucket_keys(_client("s3", source_region), source)
    dst = collect_bucket_keys(_client("s3", region), target)
    return evaluate_keys("bucket", source, target, src, dst, limit)


def check_table_pair(
    source_region: str, region: str, source: str, target: str, limit: int, now: float | None = None
) -> Check:
    """Primary keys of a source table against its target table, TTL-expired items left out on both sides."""
    now = time.time() if now is None else now
    src_ddb = _client("dynamodb", source_region)
    schema = table_key_schema(src_ddb, source)
    if "error" in schema:
        return evaluate_keys("table", source, target, schema, {}, limit)
    key_names, ttl_attr = schema["keyNames"], schema["ttlAttribute"]
    src = collect_table_keys(src_ddb, source, key_names, ttl_attr, now)
    dst = collect_table_keys(_client("dynamodb", region), target, key_names, ttl_attr, now)
    return evaluate_keys("table", source, target, src, dst, limit)


def run_data_checks(
    source_region: str, region: str, pairs: dict[str, list[dict[str, str]]], limit: int = SAMPLE_LIMIT
) -> list[Check]:
    """One data.keys check per bucket pair, then per table pair."""
    checks = [check_bucket_pair(source_region, region, p["source"], p["target"], limit) for p in pairs["buckets"]]
    checks += [check_table_pair(source_region, region, p["source"], p["target"], limit) for p in pairs["tables"]]
    return checks


# ---------------------------------------------------------------- driver

# kind -> (event/env key, boto3 service, collect, evaluate): the configuration checks of target resources.
CHECKERS: dict[str, tuple[str, str, Callable[[Any, str], Collected], Callable[..., list[Check]]]] = {
    "bucket": ("buckets", "s3", collect_bucket, evaluate_bucket),
    "table": ("tables", "dynamodb", collect_table, evaluate_table),
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


def result_item(run_id: str, result: dict[str, Any], finished_at: str) -> dict[str, Any]:
    """The checkpoint-table item the flow reads (pure): ok, counts, summary and as many failed checks as fit."""
    failed = [c for c in result["checks"] if not c["ok"]]
    listed = failed
    body = json.dumps(listed, default=str)
    while listed and len(body.encode()) > MAX_RESULT_BYTES:
        listed = listed[: len(listed) // 2]
        body = json.dumps(listed, default=str)
    return {
        "pk": {"S": RESULT_PK},
        "sk": {"S": run_id},
        "ok": {"BOOL": bool(result["ok"])},
        "total": {"N": str(len(result["checks"]))},
        "failed": {"N": str(len(failed))},
        "summary": {"S": str(result["summary"])[:10_000]},
        "notified": {"BOOL": bool(result["notified"])},
        "failedChecks": {"S": body},
        "finishedAt": {"S": finished_at},
    }


def record_result(region: str, table: str, run_id: str, result: dict[str, Any]) -> None:
    """PutItem of the result (the role may write only this partition of this table); errors propagate."""
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _client("dynamodb", region).put_item(TableName=table, Item=result_item(run_id, result, finished))


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    s = settings(event)
    region = s["targetRegion"]
    if not region:
        raise ValueError("targetRegion is missing: pass it in the event or set TARGET_REGION")
    pairs = s["pairs"]
    if (pairs["buckets"] or pairs["tables"]) and not s["sourceRegion"]:
        raise ValueError("sourceRegion is missing: pass it in the event or set SOURCE_REGION")
    checks = run_checks(region, {"buckets": s["buckets"], "tables": s["tables"]}, s["kmsKeyArn"])
    if pairs["buckets"] or pairs["tables"]:
        checks += run_data_checks(s["sourceRegion"], region, pairs, s["sampleLimit"])
    ok = all(c["ok"] for c in checks)
    summary = summarize(region, checks)
    notified = False
    if not ok and s["topicArn"]:
        notified = notify(s["topicArn"], region, summary)
    result = {"ok": ok, "checks": checks, "summary": summary, "notified": notified}
    if s["runId"] and s["resultTable"]:
        record_result(region, s["resultTable"], s["runId"], result)
    print(json.dumps({"ok": ok, "failed": sum(not c["ok"] for c in checks), "total": len(checks)}))
    return result
