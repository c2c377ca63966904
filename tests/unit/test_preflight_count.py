"""Preflight's object count (issue 10, item 3): the planning's parallel listing, CloudWatch's daily count first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.stub import Stubber

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.plan_count import cloudwatch_objects
from tasks.preflight import check, format_plan, plan
from tests.conftest import SOURCE
from tests.unit.test_preflight import make_sources

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXPECTED = {
    "Namespace": "AWS/S3",
    "MetricName": "NumberOfObjects",
    "Dimensions": [
        {"Name": "BucketName", "Value": "b"},
        {"Name": "StorageType", "Value": "AllStorageTypes"},
    ],
    "StartTime": NOW - timedelta(days=3),
    "EndTime": NOW,
    "Period": 86400,
    "Statistics": ["Average"],
}


def _stubbed(backend: Backend, response: dict[str, Any] | None, error: str = "") -> dict[str, Any]:
    cw = backend.client("cloudwatch", SOURCE)
    with Stubber(cw) as stub:  # answers checked against the real service model
        if error:
            stub.add_client_error("get_metric_statistics", service_error_code=error, http_status_code=400)
        else:
            stub.add_response("get_metric_statistics", response, EXPECTED)
        out = cloudwatch_objects(backend, SOURCE, "b", now=NOW)
        stub.assert_no_pending_responses()
    return out


def test_estimate_is_the_latest_daily_datapoint(backend: Backend) -> None:
    points = [
        {"Timestamp": NOW - timedelta(days=2), "Average": 999_000_000.0, "Unit": "Count"},
        {"Timestamp": NOW - timedelta(days=1), "Average": 1_000_000_123.0, "Unit": "Count"},
    ]
    out = _stubbed(backend, {"Label": "NumberOfObjects", "Datapoints": points})
    assert out == {"objects": 1_000_000_123, "source": "CloudWatch NumberOfObjects of 2026-11-30"}


def test_no_datapoint_yet_is_unknown_never_zero(backend: Backend) -> None:
    out = _stubbed(backend, {"Label": "NumberOfObjects", "Datapoints": []})
    assert out == {"objects": None, "source": "unknown (no CloudWatch metric yet)"}


def test_a_backend_refusing_the_call_is_named(backend: Backend) -> None:
    out = _stubbed(backend, None, error="InvalidAction")
    assert out["objects"] is None and "InvalidAction" in out["notSupportedByBackend"]


def test_plan_counts_by_the_parallel_listing_with_the_cloudwatch_estimate(
    backend: Backend, cfg: MigrationConfig
) -> None:
    make_sources(backend, cfg)
    lists: list[dict[str, Any]] = []
    s3 = backend.client("s3", SOURCE)
    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", lambda params, **_: lists.append(params))
    p = plan(backend, cfg, check.fn(backend, cfg))
    assert p["totals"]["objects"] == 6 and p["totals"]["bytes"] == 60
    # the planning's piece listing (pages after a key, MaxKeys set), not a paginator's continuation tokens
    assert lists and all(c.get("MaxKeys") == 1000 and "ContinuationToken" not in c for c in lists)
    # moto publishes the daily metric from its own store (len(bucket.keys), dated today's midnight)
    for b in p["buckets"]:
        assert b["estimate"]["objects"] == b["objects"] == 3
        assert b["estimate"]["source"].startswith("CloudWatch NumberOfObjects of ")
    assert p["notSupportedByBackend"] == {}
    assert "(listed in parallel; first estimate: 3 objects, CloudWatch NumberOfObjects of " in format_plan(p)


def test_a_run_reports_the_count_its_planning_measured(backend: Backend) -> None:
    """Where planning ran, its counts are the report's: the ranges carry them, the bucket row declares them."""
    from tasks.move.s3 import plan_partitions
    from tasks.move.s3_plan import plan_summary
    from tasks.report.models import Bucket

    s3 = backend.client("s3", SOURCE)
    s3.create_bucket(Bucket="counted")
    for i in range(250):
        s3.put_object(Bucket="counted", Key=f"k/{i:03d}", Body=b"ab")
    summary = plan_summary(plan_partitions.fn(backend, SOURCE, "counted", max_keys_per_partition=100))
    assert summary == {"objects": 250, "bytes": 500, "partitions": 3}  # 100, 100 and the 50 left
    assert Bucket.model_validate({"name": "t", "plan": summary}).model_dump(by_alias=True)["plan"] == summary
