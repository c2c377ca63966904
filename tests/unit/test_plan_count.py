"""The plan counts a bucket CloudWatch counts above plan_list_max_objects from CloudWatch, without listing it
(issue 10); below the setting, with `off`, or without a datapoint it lists as before. In-process moto (which
publishes NumberOfObjects and BucketSizeBytes from its own store) and a botocore Stubber answering as AWS does."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.stub import Stubber

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend
from tasks.plan_count import LISTED, NOT_COUNTED, cloudwatch_bytes
from tasks.preflight import Preflight, check, format_plan, plan
from tests.conftest import SOURCE
from tests.unit.test_preflight import make_sources

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = NOW - timedelta(days=1)


def _lists(backend: Backend) -> Counter[str]:
    """ListObjectsV2 calls on the source client, counted through botocore's event hooks."""
    counts: Counter[str] = Counter()

    def hook(**_: Any) -> None:
        counts["ListObjectsV2"] += 1

    backend.client("s3", SOURCE).meta.events.register("before-call.s3.ListObjectsV2", hook)
    return counts


def _ready(backend: Backend, cfg: MigrationConfig) -> Preflight:
    make_sources(backend, cfg)  # two buckets of 3 objects x 10 bytes
    return check.fn(backend, cfg)


def _moto_bytes(backend: Backend, bucket: str) -> int:
    """What moto's CloudWatch says a bucket holds (it sums Python object sizes, not the 30 bytes stored)."""
    end = datetime.now(UTC)
    resp = backend.client("cloudwatch", SOURCE).get_metric_statistics(
        Namespace="AWS/S3",
        MetricName="BucketSizeBytes",
        Dimensions=[{"Name": "BucketName", "Value": bucket}, {"Name": "StorageType", "Value": "StandardStorage"}],
        StartTime=end - timedelta(days=3),
        EndTime=end,
        Period=86400,
        Statistics=["Average"],
    )
    return int(resp["Datapoints"][0]["Average"])


@pytest.mark.parametrize("max_listed", [2, 0])
def test_a_bucket_cloudwatch_counts_above_the_setting_is_not_listed(
    backend: Backend, cfg: MigrationConfig, max_listed: int
) -> None:
    pf = _ready(backend, cfg)
    calls = _lists(backend)
    p = plan(backend, cfg, pf, plan_list_max_objects=max_listed)
    assert calls["ListObjectsV2"] == 0
    for b in p["buckets"]:
        assert b["objects"] == 3 and b["bytes"] == _moto_bytes(backend, b["name"]) != 30  # CloudWatch's, not listed
        assert b["counted"].startswith("CloudWatch NumberOfObjects of ")
        assert b["bytesFrom"].startswith("CloudWatch BucketSizeBytes of ") and "an estimate" in b["bytesFrom"]
        assert b["storageTypes"] == {"StandardStorage": b["bytes"]}
        assert b["validationStreamObjects"] == b["validationStreamBytes"] == NOT_COUNTED
        assert b["cost"]["objects"] == 3 and b["cost"]["bytes"] == b["bytes"]  # priced from CloudWatch's numbers
        assert any(a.startswith("objects and bytes from CloudWatch's daily") for a in b["cost"]["assumptions"])
    assert p["totals"]["objects"] == 6
    text = format_plan(p)
    assert text.count("(not listed: CloudWatch counts 3 objects; plan_list_max_objects is ") == 2
    assert text.count(f"objects without a checksum {NOT_COUNTED}") == 2
    assert "listed in parallel" not in text and "  to move: ~6 objects (~" in text


@pytest.mark.parametrize("max_listed", [3, None])
def test_at_or_below_the_setting_or_off_it_is_listed_as_before(
    backend: Backend, cfg: MigrationConfig, max_listed: int | None
) -> None:
    pf = _ready(backend, cfg)
    calls = _lists(backend)
    p = plan(backend, cfg, pf, plan_list_max_objects=max_listed)
    assert calls["ListObjectsV2"] >= 2
    for b in p["buckets"]:
        assert (b["objects"], b["bytes"], b["counted"]) == (3, 30, LISTED)
        assert (b["validationStreamObjects"], b["validationStreamBytes"]) == (0, 0)
        assert "bytesFrom" not in b and b["estimate"]["objects"] == 3
    text = format_plan(p)
    assert "(listed in parallel; first estimate: 3 objects, CloudWatch NumberOfObjects of " in text
    assert "  to move: 6 objects (60 B)" in text


def test_no_datapoint_it_is_listed(backend: Backend, cfg: MigrationConfig) -> None:
    pf = _ready(backend, cfg)
    calls = _lists(backend)
    with Stubber(backend.client("cloudwatch", SOURCE)) as stub:  # a bucket younger than a day: no datapoint yet
        for _ in cfg.s3_buckets:
            stub.add_response("get_metric_statistics", {"Label": "NumberOfObjects", "Datapoints": []})
        p = plan(backend, cfg, pf, plan_list_max_objects=0)
        stub.assert_no_pending_responses()
    assert calls["ListObjectsV2"] >= 2
    assert [(b["objects"], b["bytes"], b["counted"]) for b in p["buckets"]] == [(3, 30, LISTED)] * 2


def test_a_count_without_bytes_is_listed_and_a_refusal_named(backend: Backend, cfg: MigrationConfig) -> None:
    pf = _ready(backend, cfg)
    calls = _lists(backend)
    count = {"Label": "NumberOfObjects", "Datapoints": [{"Timestamp": DAY, "Average": 5e9, "Unit": "Count"}]}
    with Stubber(backend.client("cloudwatch", SOURCE)) as stub:
        stub.add_response("get_metric_statistics", count)
        stub.add_response("list_metrics", {"Metrics": []})  # no BucketSizeBytes reported yet
        stub.add_response("get_metric_statistics", count)
        stub.add_client_error("list_metrics", service_error_code="AccessDenied", http_status_code=403)
        p = plan(backend, cfg, pf, plan_list_max_objects=1000)
        stub.assert_no_pending_responses()
    assert calls["ListObjectsV2"] >= 2
    assert [(b["objects"], b["bytes"]) for b in p["buckets"]] == [(3, 30)] * 2
    assert all(b["counted"] == f"{LISTED} (CloudWatch has no BucketSizeBytes for it)" for b in p["buckets"])
    second = cfg.s3_buckets[1].name
    assert p["notSupportedByBackend"] == {
        f"s3 BucketSizeBytes metric ({second})": "CloudWatch BucketSizeBytes failed (AccessDenied)"
    }


def _metric(kind: str) -> dict[str, Any]:
    return {
        "Namespace": "AWS/S3",
        "MetricName": "BucketSizeBytes",
        "Dimensions": [{"Name": "StorageType", "Value": kind}, {"Name": "BucketName", "Value": "big"}],
    }


def test_bytes_sum_the_data_storage_types_of_the_latest_day(backend: Backend) -> None:
    """StandardIASizeOverhead, GlacierObjectOverhead (billed minimums, archive index) and GlacierStagingStorage
    (uncompleted multipart parts) are no object bytes: only the per-class `...Storage` types add up."""
    kinds = [
        "StandardStorage",
        "StandardIAStorage",
        "StandardIASizeOverhead",
        "GlacierStorage",
        "GlacierObjectOverhead",
        "GlacierStagingStorage",
    ]
    values = {"StandardStorage": 7_000, "StandardIAStorage": 500, "GlacierStorage": 40}
    with Stubber(backend.client("cloudwatch", SOURCE)) as stub:  # requests checked against the real service model
        stub.add_response(
            "list_metrics",
            {"Metrics": [_metric(k) for k in kinds]},
            {
                "Namespace": "AWS/S3",
                "MetricName": "BucketSizeBytes",
                "Dimensions": [{"Name": "BucketName", "Value": "big"}],
            },
        )
        for kind, value in values.items():
            points = [
                {"Timestamp": DAY - timedelta(days=1), "Average": 1.0, "Unit": "Bytes"},
                {"Timestamp": DAY, "Average": float(value), "Unit": "Bytes"},
            ]
            expected = {
                "Namespace": "AWS/S3",
                "MetricName": "BucketSizeBytes",
                "Dimensions": [{"Name": "BucketName", "Value": "big"}, {"Name": "StorageType", "Value": kind}],
                "StartTime": NOW - timedelta(days=3),
                "EndTime": NOW,
                "Period": 86400,
                "Statistics": ["Average"],
            }
            stub.add_response("get_metric_statistics", {"Label": "BucketSizeBytes", "Datapoints": points}, expected)
        out = cloudwatch_bytes(backend, SOURCE, "big", now=NOW)
        stub.assert_no_pending_responses()
    assert out == {
        "bytes": 7_540,
        "storageTypes": {"GlacierStorage": 40, "StandardIAStorage": 500, "StandardStorage": 7_000},
        "day": "2026-11-30",
    }


def test_the_cli_flag_reaches_the_plan(monkeypatch: pytest.MonkeyPatch, backend: Backend, cfg: MigrationConfig) -> None:
    """`migrate --plan --plan-list-max-objects N|off` parses like the other thresholds and is the plan's setting."""
    from flows import migrate
    from tasks import preflight

    seen: list[Any] = []
    monkeypatch.setattr(migrate, "prepare", lambda args: (cfg, backend))
    monkeypatch.setattr(preflight, "plan", lambda *a, **kw: seen.append(kw["plan_list_max_objects"]))
    monkeypatch.setattr(preflight, "format_plan", lambda p: "")
    assert migrate.main(["--plan", "--plan-list-max-objects", "off"]) == 0
    assert migrate.main(["--plan", "--plan-list-max-objects", " 7 "]) == 0
    assert migrate.main(["--plan"]) == 0
    assert seen == [None, 7, SETTINGS.plan_list_max_objects]
    with pytest.raises(SystemExit) as bad:
        migrate.main(["--plan", "--plan-list-max-objects", "many"])
    assert bad.value.code == 2
