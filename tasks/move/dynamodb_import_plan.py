"""The export/import path's pure half (no AWS calls): ImportTable's limits, the export and import requests, the
stream-window arithmetic, and an incremental export's records as writes. tasks/move/dynamodb_import.py calls AWS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from tasks.move.dynamodb_plan import encode_item

GB = 1000**3
TB = 1000 * GB
# ImportTable's quota, per import, in compressed bytes of source data (Service Quotas for DynamoDB, 2026-12).
IMPORT_MAX_OBJECTS = 50_000  # S3 objects one ImportTable reads at most
BIG_IMPORT_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})
STREAM_WINDOW = timedelta(hours=24)
# The replay itself needs time after the import ends: bridge when less than this is left of the stream's window.
REPLAY_MARGIN = timedelta(hours=2)
INCREMENTAL_MIN = timedelta(minutes=15)
INCREMENTAL_MAX = timedelta(hours=24)
# PITR's latest restorable time trails the present by about five minutes: an incremental export ends before it.
PITR_LAG = timedelta(minutes=5)


def import_quota(region: str) -> int:
    """ImportTable's per-import limit in the target region, bytes."""
    return 15 * TB if region in BIG_IMPORT_REGIONS else TB


def import_blocked(source_desc: dict[str, Any], target_region: str, size_bytes: int | None = None) -> str | None:
    """Why ImportTable cannot create this table's target (None: it can): the one check the plan and the run share.

    `size_bytes` is the plan's size where DescribeTable reports none (estimated from a sample); the run passes none
    and reads TableSizeBytes. The quota is counted in decimal TB: whether AWS means TB or TiB is not in the stored
    docs, and the smaller reading only ever sends a table near the quota to the scan path, never into a refusal."""
    if source_desc.get("LocalSecondaryIndexes"):
        return "it has local secondary indexes, which ImportTable cannot create"
    size = int(source_desc.get("TableSizeBytes", 0) or 0) if size_bytes is None else size_bytes
    quota = import_quota(target_region)
    if size > quota:
        return f"{size:,} bytes is over the ImportTable quota of {quota:,} bytes ({quota // TB} TB) in {target_region}"
    return None


def export_request(
    table_arn: str, bucket: str, owner: str, prefix: str, kms_arn: str, token: str, export_time: datetime
) -> dict[str, Any]:
    """A full export at `export_time` (after the stream was on) into our staging prefix, SSE-KMS with our key."""
    return {
        "TableArn": table_arn,
        "ExportTime": export_time,
        "ClientToken": token,
        "S3Bucket": bucket,
        "S3BucketOwner": owner,  # the bucket must be ours: a same-named bucket of another account is refused
        "S3Prefix": prefix,  # no trailing '/' (moto writes a double slash after one)
        "S3SseAlgorithm": "KMS",
        "S3SseKmsKeyId": kms_arn,
        "ExportFormat": "DYNAMODB_JSON",
        "ExportType": "FULL_EXPORT",
    }


def incremental_request(full: dict[str, Any], token: str, start: datetime, end: datetime) -> dict[str, Any]:
    """An incremental export of [start, end) with both images, into the same staging prefix as the full one."""
    req = {k: v for k, v in full.items() if k != "ExportTime"}
    return req | {
        "ClientToken": token,
        "ExportType": "INCREMENTAL_EXPORT",
        "IncrementalExportSpecification": {
            "ExportFromTime": start,
            "ExportToTime": end,
            "ExportViewType": "NEW_AND_OLD_IMAGES",
        },
    }


_TABLE_FIELDS = ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
                 "OnDemandThroughput", "SSESpecification")  # fmt: skip
_GSI_FIELDS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")


def import_request(create: dict[str, Any], bucket: str, owner: str, data_prefix: str, token: str) -> dict[str, Any]:
    """ImportTable from provisioning's own CreateTable request (keys, GSIs, billing, SSE with our key): what
    TableCreationParameters can carry; the stream, TTL, PITR and tags follow in provisioning's converge step."""
    params = {k: create[k] for k in _TABLE_FIELDS if k in create}
    gsis = [{k: g[k] for k in _GSI_FIELDS if k in g} for g in create.get("GlobalSecondaryIndexes") or []]
    if gsis:
        params["GlobalSecondaryIndexes"] = gsis
    return {
        "ClientToken": token,
        "S3BucketSource": {"S3Bucket": bucket, "S3BucketOwner": owner, "S3KeyPrefix": data_prefix},
        "InputFormat": "DYNAMODB_JSON",
        "InputCompressionType": "GZIP",
        "TableCreationParameters": params,
    }


def needs_bridge(export_time: datetime, now: datetime) -> bool:
    """Whether the stream no longer holds every write since the export time by the time the replay would run."""
    return now >= export_time + STREAM_WINDOW - REPLAY_MARGIN


def incremental_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into incremental-export windows of 15 minutes to 24 hours; a short last window starts
    earlier instead (overlapping the one before: applying a change twice lands on the same state)."""
    out: list[tuple[datetime, datetime]] = []
    t = start
    while t < end:
        stop = min(t + INCREMENTAL_MAX, end)
        out.append((min(t, stop - INCREMENTAL_MIN), stop))
        t = stop
    return out


def from_export_json(av: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue of an export file as the low-level client takes it: binary is base64 text in the file."""
    ((kind, value),) = av.items()
    if kind == "B":
        return {"B": base64.b64decode(value)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in value]}
    if kind == "M":
        return {"M": {k: from_export_json(v) for k, v in value.items()}}
    if kind == "L":
        return {"L": [from_export_json(v) for v in value]}
    return {kind: value}


def _item(image: dict[str, Any]) -> dict[str, Any]:
    return {k: from_export_json(v) for k, v in image.items()}


def incremental_writes(lines: Iterable[str]) -> list[dict[str, Any]]:
    """BatchWriteItem requests from an incremental export's records (DYNAMODB_JSON, NEW_AND_OLD_IMAGES): per key the
    latest change by Metadata.WriteTimestampMicros, a NewImage put or, without one (a delete), a delete of Keys."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for line in lines:
        if not line.strip():
            continue
        rec = json.loads(line)
        when = int(rec.get("Metadata", {}).get("WriteTimestampMicros", {}).get("N", 0))
        key = encode_item(rec["Keys"])
        if key not in latest or when >= latest[key][0]:
            latest[key] = (when, rec)
    out = []
    for _, rec in latest.values():
        if rec.get("NewImage"):
            out.append({"PutRequest": {"Item": _item(rec["NewImage"])}})
        else:
            out.append({"DeleteRequest": {"Key": _item(rec["Keys"])}})
    return out
