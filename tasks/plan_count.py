"""How the plan counts a bucket: the planning's parallel listing, or CloudWatch's daily storage metrics for a bucket
too big to list before the user sees a plan (issue 10: 10^9 objects are ~1.4 h of listing, benchmarks/README.md).

`plan_list_max_objects` (config/settings.py) draws the line; the run itself always lists (tasks/move/s3.py
`plan_partitions`): only the plan takes CloudWatch's word.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.aws import Backend, error_code
from tasks.move.s3_listing import survey
from tasks.move.s3_plan import SAMPLE_BUDGET
from tasks.validate.checksums import needs_streaming

LISTED = "listed in parallel"
NOT_COUNTED = "not counted (CloudWatch estimate)"  # what only a listing tells: objects without a checksum
DAY = 86400
DAYS_BACK = 3  # the daily metric's latest datapoint is within the last day or two


def count_bucket(backend: Backend, region: str, bucket: str) -> dict[str, int]:
    """Objects and bytes in a bucket (current versions), counted by the planning's parallel listing
    (tasks/move/s3_listing.py): LIST calls side by side, memory independent of the object count; and what full
    validation will stream (objects without a checksum S3 keeps through the copy: checksums.py)."""
    found = survey(backend.client("s3", region), bucket, step=SAMPLE_BUDGET, mark=needs_streaming)
    streamed, streamed_bytes = found.marked
    return {
        "objects": found.objects,
        "bytes": found.bytes,
        "validationStreamObjects": streamed,
        "validationStreamBytes": streamed_bytes,
    }


def cloudwatch_objects(backend: Backend, region: str, bucket: str, now: datetime | None = None) -> dict[str, Any]:
    """A first estimate of a bucket's object count from CloudWatch, without listing anything.

    S3 reports its storage metrics "once per day" (S3 User Guide, Metrics and dimensions): NumberOfObjects in
    AWS/S3 with the BucketName and StorageType=AllStorageTypes dimensions, statistic Average. A bucket
    younger than a day has no datapoint yet: that is "unknown", never 0. A backend whose CloudWatch
    refuses the call is named in `notSupportedByBackend`.
    """
    try:
        latest = _latest(backend.client("cloudwatch", region), "NumberOfObjects", bucket, "AllStorageTypes", now)
    except (ClientError, BotoCoreError) as err:
        why = f"CloudWatch GetMetricStatistics failed ({error_code(err) or type(err).__name__})"
        return {"objects": None, "source": f"unknown ({why})", "notSupportedByBackend": why}
    if latest is None:
        return {"objects": None, "source": "unknown (no CloudWatch metric yet)"}
    return {"objects": latest[0], "source": f"CloudWatch NumberOfObjects of {latest[1]}"}


def _latest(cw: Any, metric: str, bucket: str, storage_type: str, now: datetime | None) -> tuple[int, str] | None:
    """(value, day) of an S3 daily storage metric's latest datapoint (AWS/S3, statistic Average, the last
    DAYS_BACK days), or None when it has none."""
    end = now or datetime.now(UTC)
    resp = cw.get_metric_statistics(
        Namespace="AWS/S3",
        MetricName=metric,
        Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": storage_type}],
        StartTime=end - timedelta(days=DAYS_BACK),
        EndTime=end,
        Period=DAY,
        Statistics=["Average"],
    )
    points = [p for p in resp.get("Datapoints", []) if p.get("Average") is not None]
    if not points:
        return None
    latest = max(points, key=lambda p: p["Timestamp"])
    return int(latest["Average"]), latest["Timestamp"].date().isoformat()


def _is_data(storage_type: str) -> bool:
    """Whether a BucketSizeBytes StorageType holds object bytes (S3 User Guide, Metrics and dimensions): the
    per-class `...Storage` types (StandardStorage, StandardIAStorage, IntelligentTieringFAStorage, GlacierStorage,
    DeepArchiveStorage, ...), not the `...Overhead` ones (billed minimums and archive index metadata, never copied)
    nor `...StagingStorage` (parts of multipart uploads not completed yet)."""
    return storage_type.endswith("Storage") and not storage_type.endswith("StagingStorage")


def cloudwatch_bytes(backend: Backend, region: str, bucket: str, now: datetime | None = None) -> dict[str, Any]:
    """A bucket's bytes from CloudWatch: BucketSizeBytes (AWS/S3, daily, statistic Average) has one StorageType
    dimension per storage class; ListMetrics says which the bucket has, and their latest datapoints add up.

    An estimate: S3 sums "both current and noncurrent objects" and the parts of incomplete multipart uploads.
    `bytes` None: no datapoint (or the backend refused the call: `notSupportedByBackend`)."""
    cw = backend.client("cloudwatch", region)
    by_type: dict[str, int] = {}
    days: list[str] = []
    try:
        pages = cw.get_paginator("list_metrics").paginate(
            Namespace="AWS/S3", MetricName="BucketSizeBytes", Dimensions=[{"Name": "BucketName", "Value": bucket}]
        )
        for metric in (m for page in pages for m in page.get("Metrics", [])):
            dims = {d["Name"]: d.get("Value", "") for d in metric.get("Dimensions", [])}
            kind = dims.get("StorageType", "")
            if dims.get("BucketName") != bucket or not _is_data(kind) or kind in by_type:
                continue
            latest = _latest(cw, "BucketSizeBytes", bucket, kind, now)
            if latest is not None:
                by_type[kind], day = latest
                days.append(day)
    except (ClientError, BotoCoreError) as err:
        why = f"CloudWatch BucketSizeBytes failed ({error_code(err) or type(err).__name__})"
        return {"bytes": None, "notSupportedByBackend": why}
    if not by_type:
        return {"bytes": None}
    return {"bytes": sum(by_type.values()), "storageTypes": dict(sorted(by_type.items())), "day": max(days)}


def bucket_counts(
    backend: Backend, region: str, bucket: str, max_listed: int | None, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """A plan row's counts, CloudWatch's NumberOfObjects estimate, and what the backend refused (name -> why).

    Listed in parallel unless CloudWatch counts more than `max_listed` objects (0: any count; None: always list);
    then objects and bytes are CloudWatch's, and what only a listing gives says NOT_COUNTED. Without a datapoint
    of either metric it is listed, as before."""
    estimate = cloudwatch_objects(backend, region, bucket, now)
    refused: dict[str, str] = {}
    if estimate.get("notSupportedByBackend"):
        refused[f"s3 NumberOfObjects metric ({bucket})"] = estimate.pop("notSupportedByBackend")
    objects = estimate.get("objects")
    if max_listed is None or objects is None or (max_listed > 0 and objects <= max_listed):
        return {**count_bucket(backend, region, bucket), "counted": LISTED}, estimate, refused
    size = cloudwatch_bytes(backend, region, bucket, now)
    if size.get("notSupportedByBackend"):
        refused[f"s3 BucketSizeBytes metric ({bucket})"] = size["notSupportedByBackend"]
    if size["bytes"] is None:
        counted = f"{LISTED} (CloudWatch has no BucketSizeBytes for it)"
        return {**count_bucket(backend, region, bucket), "counted": counted}, estimate, refused
    row = {
        "objects": objects,
        "bytes": size["bytes"],
        "validationStreamObjects": NOT_COUNTED,
        "validationStreamBytes": NOT_COUNTED,
        "counted": estimate["source"],
        "bytesFrom": f"CloudWatch BucketSizeBytes of {size['day']}, summed over {', '.join(size['storageTypes'])} "
        "(an estimate: current and noncurrent versions and incomplete multipart uploads)",
        "storageTypes": size["storageTypes"],
        "notListed": f"CloudWatch counts {objects:,} objects; plan_list_max_objects is {max_listed:,}",
    }
    return row, estimate, refused


def listed(row: dict[str, Any]) -> bool:
    """Whether a plan row's counts come from a listing (else from CloudWatch)."""
    return str(row.get("counted", LISTED)).startswith(LISTED)
