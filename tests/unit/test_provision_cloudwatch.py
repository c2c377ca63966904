"""CloudWatch alarms, dashboard and lag metric: pure specs, and ensure/repair read back from moto."""

from __future__ import annotations

import json

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision import cloudwatch as cwm

SOURCE, TARGET = "us-east-1", "eu-west-1"
RULE = "region-migration"


def _topic(backend: Backend) -> str:
    return str(backend.client("sns", TARGET).create_topic(Name="alerts")["TopicArn"])


def test_alarm_specs_pure(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    topic = "arn:aws:sns:eu-west-1:123456789012:alerts"
    specs = cwm.alarm_specs(cfg, names, list(names.buckets), RULE, topic_arn=topic)
    n_tables, n_buckets = len(names.tables), len(names.buckets)
    assert len(specs) == 2 * n_tables + 2 * n_buckets + 1 + n_tables
    assert len({s["AlarmName"] for s in specs}) == len(specs)
    prefix = cwm.alarm_prefix(cfg)
    for s in specs:
        assert s["AlarmName"].startswith(prefix) and len(s["AlarmName"]) <= 255
        # Source-region (S3 replication) alarms cannot use the target-region topic.
        expected = [] if s["Namespace"] == "AWS/S3" else [topic]
        assert s.get("AlarmActions", []) == expected and s.get("OKActions", []) == expected
        assert s["ComparisonOperator"] == "GreaterThanThreshold"
    by_metric: dict[str, list[dict]] = {}
    for s in specs:
        by_metric.setdefault(s["MetricName"], []).append(s)
    throttle = by_metric["ReadThrottleEvents"][0]
    assert (
        throttle["Namespace"],
        throttle["Statistic"],
        throttle["Threshold"],
        throttle["Period"],
        throttle["EvaluationPeriods"],
    ) == ("AWS/DynamoDB", "Sum", 0.0, 60, 2)
    assert {d["Value"] for s in by_metric["WriteThrottleEvents"] for d in s["Dimensions"]} == set(names.tables.values())
    latency = by_metric["ReplicationLatency"]
    assert len(latency) == n_buckets and latency[0]["Statistic"] == "Maximum" and latency[0]["Threshold"] == 900.0
    source = sorted(names.buckets)[0]
    assert {d["Name"]: d["Value"] for d in latency[0]["Dimensions"]} == {
        "SourceBucket": source,
        "DestinationBucket": names.buckets[source],
        "RuleId": RULE,
    }
    assert len(by_metric["OperationsFailedReplication"]) == n_buckets
    assert by_metric["Errors"][0]["Dimensions"] == [{"Name": "FunctionName", "Value": names.lambda_function}]
    lag = by_metric[cwm.LAG_METRIC]
    assert lag[0]["Namespace"] == "RegionMigration" and lag[0]["Threshold"] == 3600.0
    assert lag[0]["Statistic"] == "Maximum"
    # S3 replication metrics are published in the source region, so their alarms live there.
    assert {cwm.alarm_region(cfg, s) for s in latency} == {SOURCE}
    assert cwm.alarm_region(cfg, throttle) == TARGET
    # Without a topic the specs carry no actions; a separate source-region topic is honoured.
    assert "AlarmActions" not in cwm.alarm_specs(cfg, names, [], RULE)[0]
    other = cwm.alarm_specs(cfg, names, [source], RULE, topic_arn=topic, source_topic_arn="arn:src")
    assert {tuple(s["AlarmActions"]) for s in other if s["Namespace"] == "AWS/S3"} == {("arn:src",)}
    # The target topic is never put on a source-region alarm (CloudWatch refuses cross-region actions).
    same = cwm.alarm_specs(cfg, names, [source], RULE, topic_arn=topic)
    assert all("AlarmActions" not in s or not s["AlarmActions"] for s in same if s["Namespace"] == "AWS/S3")
    assert all(s["AlarmActions"] == [topic] for s in same if s["Namespace"] != "AWS/S3")


def test_dashboard_body_pure(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    body = cwm.dashboard_body(cfg, names, list(names.buckets), RULE)
    widgets = body["widgets"]
    # header + 2 per table + 1 per bucket + lambda + lag
    assert len(widgets) == 1 + 2 * len(names.tables) + len(names.buckets) + 2
    text = json.dumps(body)
    for t in names.tables.values():
        assert t in text
    assert "ReplicationLatency" in text and "OperationsFailedReplication" in text
    assert cwm.LAG_METRIC in text and "ConsumedReadCapacityUnits" in text
    s3_regions = {w["properties"]["region"] for w in widgets if "replication" in w["properties"].get("title", "")}
    assert s3_regions == {SOURCE}


def test_ensure_alarms_idempotent_and_tagged(backend: Backend, cfg: MigrationConfig) -> None:
    topic = _topic(backend)
    first = cwm.ensure_alarms(backend, cfg, topic, RULE)
    assert all(a["created"] for a in first) and all(a["repaired"] == [] for a in first)
    assert not [a for a in first if "error" in a]
    target_alarms = [a for a in first if a["namespace"] != "AWS/S3"]
    assert target_alarms and all(a["actions"] == [topic] and a["okActions"] == [topic] for a in target_alarms)
    assert all(a["actions"] == [] for a in first if a["namespace"] == "AWS/S3")
    second = cwm.ensure_alarms(backend, cfg, topic, RULE)
    assert [a["arn"] for a in second] == [a["arn"] for a in first]
    assert not any(a["created"] for a in second) and all(a["repaired"] == [] for a in second)
    prefix = cwm.alarm_prefix(cfg)
    counts = {}
    for region in (SOURCE, TARGET):
        cw = backend.client("cloudwatch", region)
        alarms = cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
        counts[region] = len(alarms)
        for alarm in alarms:
            tags = {t["Key"]: t["Value"] for t in cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
            assert cfg.owns(tags)
    assert counts == {SOURCE: 2 * len(cfg.s3_buckets), TARGET: len(first) - 2 * len(cfg.s3_buckets)}
    assert {a["region"] for a in first if a["namespace"] == "AWS/S3"} == {SOURCE}


def test_alarm_drift_is_repaired(backend: Backend, cfg: MigrationConfig) -> None:
    topic = _topic(backend)
    first = cwm.ensure_alarms(backend, cfg, topic, RULE)
    victim = next(a for a in first if a["metric"] == "ReadThrottleEvents")
    cw = backend.client("cloudwatch", TARGET)
    cw.put_metric_alarm(
        AlarmName=victim["name"],
        Namespace="AWS/DynamoDB",
        MetricName="ReadThrottleEvents",
        Dimensions=[{"Name": "TableName", "Value": victim["dimensions"]["TableName"]}],
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=100,
        ComparisonOperator="GreaterThanThreshold",
    )
    fixed = {a["name"]: a for a in cwm.ensure_alarms(backend, cfg, topic, RULE)}
    assert fixed[victim["name"]]["repaired"] == ["configuration"]
    assert fixed[victim["name"]]["threshold"] == 0.0 and fixed[victim["name"]]["period"] == 60
    assert fixed[victim["name"]]["actions"] == [topic]
    assert sum(1 for a in fixed.values() if a["repaired"]) == 1


def test_foreign_alarm_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    topic = _topic(backend)
    name = cwm.alarm_specs(cfg, resource_names(cfg), [], RULE)[0]["AlarmName"]
    backend.client("cloudwatch", TARGET).put_metric_alarm(
        AlarmName=name,
        Namespace="X",
        MetricName="Y",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    with pytest.raises(CollisionError, match="alarm"):
        cwm.ensure_alarms(backend, cfg, topic, RULE)


def test_dashboard_idempotent_and_collision(backend: Backend, cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    first = cwm.ensure_dashboard(backend, cfg, RULE)
    expected = len(cwm.dashboard_body(cfg, names, list(names.buckets), RULE)["widgets"])
    assert first["created"] is True and first["widgetCount"] == expected
    assert first["name"] == names.dashboard and first["arn"].endswith(f"dashboard/{names.dashboard}")
    second = cwm.ensure_dashboard(backend, cfg, RULE)
    assert second["created"] is False and second["repaired"] == []
    cw = backend.client("cloudwatch", TARGET)
    body = json.loads(cw.get_dashboard(DashboardName=names.dashboard)["DashboardBody"])
    body["widgets"] = body["widgets"][:2]
    cw.put_dashboard(DashboardName=names.dashboard, DashboardBody=json.dumps(body))
    fixed = cwm.ensure_dashboard(backend, cfg, RULE)
    assert fixed["repaired"] == ["body"] and fixed["widgetCount"] == expected
    cw.put_dashboard(DashboardName=names.dashboard, DashboardBody=json.dumps({"widgets": []}))
    with pytest.raises(CollisionError, match="dashboard"):
        cwm.ensure_dashboard(backend, cfg, RULE)


def test_put_lag_metric(backend: Backend, cfg: MigrationConfig) -> None:
    source_table = cfg.dynamodb_tables[0].name
    target_table = resource_names(cfg).tables[source_table]
    out = cwm.put_lag_metric(backend, cfg, source_table, 42.5)
    assert out["table"] == target_table
    metrics = backend.client("cloudwatch", TARGET).list_metrics(Namespace=cwm.LAG_NAMESPACE)["Metrics"]
    assert [(m["MetricName"], m["Dimensions"]) for m in metrics] == [
        (cwm.LAG_METRIC, [{"Name": "TableName", "Value": target_table}])
    ]


def test_provisioning_gives_the_source_region_alarms_their_own_topic(
    prefect_harness: None, backend: Backend, cfg: MigrationConfig
) -> None:
    """Item 12 at flow level: provisioning creates the source-region key and topic and wires every S3
    replication alarm (source region) to that topic, the others to the target topic; a re-run creates
    nothing; a tables-only migration makes nothing in the source region."""
    from prefect import flow

    from flows.parts import provision
    from tasks.report.build import source_region_changes

    src_s3 = backend.client("s3", SOURCE)
    for bucket in cfg.s3_buckets:
        src_s3.create_bucket(Bucket=bucket.name)
    users = cfg.dynamodb_tables[1]
    backend.client("dynamodb", SOURCE).create_table(
        TableName=users.name,
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    cfg = cfg.model_copy(update={"dynamodb_tables": [users]})
    account = backend.account_id(TARGET)

    @flow
    def provision_only(which: str) -> dict:
        return provision(backend, cfg if which == "all" else tables_only, account)

    tables_only = cfg.model_copy(update={"s3_buckets": [], "timestamp": "20270101"})
    res = provision_only("all")
    names = resource_names(cfg)
    source = res["sourceRegion"]
    assert source["kms"]["alias"] == names.source_kms_alias and source["kms"]["region"] == SOURCE
    assert source["sns"]["name"] == names.source_topic and source["sns"]["region"] == SOURCE
    assert source["kms"]["created"] is True and source["sns"]["created"] is True
    src_topic, tgt_topic = source["sns"]["arn"], res["sns"]["arn"]
    assert src_topic.startswith(f"arn:aws:sns:{SOURCE}:") and source["sns"]["kmsMasterKeyId"] == source["kms"]["arn"]
    # Read back from CloudWatch in each region, not from our return value.
    prefix = cwm.alarm_prefix(cfg)
    src_alarms = backend.client("cloudwatch", SOURCE).describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert len(src_alarms) == 2 * len(cfg.s3_buckets)
    assert all(a["AlarmActions"] == [src_topic] and a["OKActions"] == [src_topic] for a in src_alarms)
    tgt_alarms = backend.client("cloudwatch", TARGET).describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert tgt_alarms and all(a["AlarmActions"] == [tgt_topic] for a in tgt_alarms)
    assert not [a for a in res["alarms"] if "error" in a or not a["actions"]]
    # The report lists both as source-region changes of this migration (teardown removes them).
    assert source_region_changes(source) == [
        f"created KMS key {names.source_kms_alias} in {SOURCE} (alerts of the S3 replication alarms)",
        f"created SNS topic {names.source_topic} in {SOURCE} (alerts of the S3 replication alarms)",
    ]

    again = provision_only("all")
    assert again["sourceRegion"]["kms"]["created"] is False and again["sourceRegion"]["kms"]["repaired"] == []
    assert again["sourceRegion"]["sns"]["created"] is False and again["sourceRegion"]["sns"]["repaired"] == []
    assert not any(a["created"] or a["repaired"] for a in again["alarms"])
    assert source_region_changes(again["sourceRegion"]) == []
    assert len(backend.client("kms", SOURCE).list_keys()["Keys"]) == 1
    assert len(backend.client("sns", SOURCE).list_topics()["Topics"]) == 1

    assert provision_only("tables")["sourceRegion"] == {}
    assert len(backend.client("kms", SOURCE).list_keys()["Keys"]) == 1
