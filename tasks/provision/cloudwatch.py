"""CloudWatch alarms wired to the alert topic, a dashboard, and the stream catch-up's lag metric.

Alarm specs are pure put_metric_alarm kwargs. Where an alarm lives is decided by where its metric is
published: DynamoDB, Lambda and our lag metric in the target region, but S3 replication metrics
(ReplicationLatency, OperationsFailedReplication) are published in the *source* bucket's region, so those
alarms are created there (an alarm can only watch metrics of its own region). AWS also requires an alarm's
SNS action to be in the alarm's region: pass `source_topic_arn` for the source-region alarms; without one
those alarms are created with no actions (the target-region topic would be rejected), they still show on
the dashboard and in the report, and the S3 catch-up pass repairs any replication failure they would flag.
All alarm names start with `alarm_prefix(cfg)` so teardown finds exactly ours.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, tag_dict, tag_list
from tasks.errors import CollisionError
from tasks.names import ResourceNames, resource_names
from tasks.provision.common import delete_measured, lookup

LAG_NAMESPACE = "RegionMigration"
LAG_METRIC = "StreamReplicationLagSeconds"
REPLICATION_LATENCY_THRESHOLD_S = 900
LAG_THRESHOLD_S = 3600
_MAX_ALARM_NAME = 255
_COMPARED = (
    "AlarmDescription",
    "MetricName",
    "Namespace",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "ActionsEnabled",
)


# ---------------------------------------------------------------- pure


def alarm_prefix(cfg: MigrationConfig) -> str:
    """Every alarm of this migration starts with this (describe_alarms(AlarmNamePrefix=...) in teardown)."""
    return resource_names(cfg).alarm_prefix


def _alarm_name(prefix: str, kind: str, resource: str) -> str:
    name = f"{prefix}{kind}-{resource}"
    if len(name) <= _MAX_ALARM_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: _MAX_ALARM_NAME - 11]}-{digest}"


def _spec(
    name: str,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    statistic: str,
    threshold: float,
    period: int,
    evaluation_periods: int,
    actions: list[str],
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": description,
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": statistic,
        "Period": period,
        "EvaluationPeriods": evaluation_periods,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        # No data means nothing happened (no throttles, no failed replication, catch-up not running).
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": True,
    }
    if actions:
        spec["AlarmActions"] = list(actions)
        spec["OKActions"] = list(actions)
    return spec


def alarm_specs(
    cfg: MigrationConfig,
    names: ResourceNames,
    source_buckets: list[str],
    replication_rule_id: str,
    *,
    topic_arn: str | None = None,
    source_topic_arn: str | None = None,
) -> list[dict[str, Any]]:
    """put_metric_alarm kwargs for every alarm; actions are the topic (source-region alarms may use their
    own topic, see module doc). Without a topic the specs carry no actions (for review and tests)."""
    prefix = alarm_prefix(cfg)
    target_actions = [topic_arn] if topic_arn else []
    # Cross-region SNS actions are refused by CloudWatch: no source topic, no action.
    source_actions = [source_topic_arn] if source_topic_arn else []
    specs: list[dict[str, Any]] = []
    for table in sorted(names.tables.values()):
        for metric, short in (("ReadThrottleEvents", "read"), ("WriteThrottleEvents", "write")):
            specs.append(
                _spec(
                    _alarm_name(prefix, f"ddb-{short}-throttles", table),
                    f"{table}: {short} requests throttled (migration {cfg.migration_batch})",
                    "AWS/DynamoDB",
                    metric,
                    {"TableName": table},
                    "Sum",
                    0,
                    60,
                    2,
                    target_actions,
                )
            )
    for source in sorted(source_buckets):
        target = names.buckets[source]
        dims = {"SourceBucket": source, "DestinationBucket": target, "RuleId": replication_rule_id}
        specs.append(
            _spec(
                _alarm_name(prefix, "s3-replication-latency", source),
                f"{source} -> {target}: replication latency above {REPLICATION_LATENCY_THRESHOLD_S} s",
                "AWS/S3",
                "ReplicationLatency",
                dims,
                "Maximum",
                REPLICATION_LATENCY_THRESHOLD_S,
                60,
                2,
                source_actions,
            )
        )
        specs.append(
            _spec(
                _alarm_name(prefix, "s3-replication-failed", source),
                f"{source} -> {target}: objects failed to replicate",
                "AWS/S3",
                "OperationsFailedReplication",
                dims,
                "Sum",
                0,
                60,
                2,
                source_actions,
            )
        )
    specs.append(
        _spec(
            _alarm_name(prefix, "lambda-errors", names.lambda_function),
            f"validation Lambda {names.lambda_function} failed",
            "AWS/Lambda",
            "Errors",
            {"FunctionName": names.lambda_function},
            "Sum",
            0,
            60,
            1,
            target_actions,
        )
    )
    for table in sorted(names.tables.values()):
        specs.append(
            _spec(
                _alarm_name(prefix, "stream-lag", table),
                f"{table}: stream catch-up more than {LAG_THRESHOLD_S} s behind the source",
                LAG_NAMESPACE,
                LAG_METRIC,
                {"TableName": table},
                "Maximum",
                LAG_THRESHOLD_S,
                300,
                1,
                target_actions,
            )
        )
    return specs


def alarm_region(cfg: MigrationConfig, spec: dict[str, Any]) -> str:
    """Where the alarm's metric is published: S3 replication metrics in the source region, the rest target."""
    return cfg.source_region if spec["Namespace"] == "AWS/S3" else cfg.target_region


def spec_drift(current: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """Fields of an existing alarm that differ from the spec."""
    drift = [k for k in _COMPARED if current.get(k) != spec.get(k)]
    if _dims(current.get("Dimensions")) != _dims(spec.get("Dimensions")):
        drift.append("Dimensions")
    for k in ("AlarmActions", "OKActions"):
        if sorted(current.get(k) or []) != sorted(spec.get(k) or []):
            drift.append(k)
    return drift


def _dims(dims: Any) -> list[tuple[str, str]]:
    return sorted((d["Name"], d["Value"]) for d in dims or [])


def dashboard_marker(cfg: MigrationConfig) -> str:
    tags = cfg.tags()
    return " | ".join(f"{k}: {tags[k]}" for k in sorted(tags))


def dashboard_body(
    cfg: MigrationConfig,
    names: ResourceNames,
    source_buckets: list[str] | None = None,
    replication_rule_id: str | None = None,
) -> dict[str, Any]:
    """Widgets: DynamoDB throttles and consumed capacity per table, S3 replication per bucket, Lambda errors,
    the catch-up lag. The first text widget carries our tags: dashboards cannot be tagged, and it is how
    a re-run recognises its own dashboard."""
    sources = sorted(source_buckets if source_buckets is not None else names.buckets)
    widgets: list[dict[str, Any]] = [
        {
            "type": "text",
            "properties": {
                "markdown": (f"# Region migration {cfg.source_region} -> {cfg.target_region}\n{dashboard_marker(cfg)}")
            },
        }
    ]

    def metric(title: str, region: str, metrics: list[list[Any]], stat: str) -> dict[str, Any]:
        return {
            "type": "metric",
            "properties": {
                "title": title,
                "region": region,
                "metrics": metrics,
                "stat": stat,
                "period": 60,
                "view": "timeSeries",
            },
        }

    for table in sorted(names.tables.values()):
        widgets.append(
            metric(
                f"{table}: throttled requests",
                cfg.target_region,
                [["AWS/DynamoDB", m, "TableName", table] for m in ("ReadThrottleEvents", "WriteThrottleEvents")],
                "Sum",
            )
        )
        widgets.append(
            metric(
                f"{table}: consumed capacity",
                cfg.target_region,
                [
                    ["AWS/DynamoDB", m, "TableName", table]
                    for m in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
                ],
                "Sum",
            )
        )
    for source in sources:
        target = names.buckets[source]
        dims: list[Any] = ["SourceBucket", source, "DestinationBucket", target]
        if replication_rule_id:
            dims += ["RuleId", replication_rule_id]
        widgets.append(
            metric(
                f"{source} -> {target}: replication",
                cfg.source_region,
                [
                    ["AWS/S3", "ReplicationLatency", *dims, {"stat": "Maximum"}],
                    ["AWS/S3", "OperationsFailedReplication", *dims, {"stat": "Sum", "yAxis": "right"}],
                ],
                "Maximum",
            )
        )
    widgets.append(
        metric(
            f"{names.lambda_function}: errors",
            cfg.target_region,
            [["AWS/Lambda", m, "FunctionName", names.lambda_function] for m in ("Errors", "Invocations")],
            "Sum",
        )
    )
    if names.tables:
        widgets.append(
            metric(
                "Stream catch-up lag (seconds)",
                cfg.target_region,
                [[LAG_NAMESPACE, LAG_METRIC, "TableName", t] for t in sorted(names.tables.values())],
                "Maximum",
            )
        )
    # Two columns of 12x6 below a full-width header.
    widgets[0].update({"x": 0, "y": 0, "width": 24, "height": 2})
    for i, w in enumerate(widgets[1:]):
        w.update({"x": 12 * (i % 2), "y": 2 + 6 * (i // 2), "width": 12, "height": 6})
    return {"widgets": widgets}


# ---------------------------------------------------------------- AWS


def ensure_alarms(
    backend: Backend,
    cfg: MigrationConfig,
    topic_arn: str,
    replication_rule_id: str,
    *,
    source_topic_arn: str | None = None,
) -> list[dict[str, Any]]:
    """Create or repair every alarm (put_metric_alarm is an upsert); read each back from describe_alarms."""
    names = resource_names(cfg)
    specs = alarm_specs(
        cfg,
        names,
        list(names.buckets),
        replication_rule_id,
        topic_arn=topic_arn,
        source_topic_arn=source_topic_arn,
    )
    by_region: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_region.setdefault(alarm_region(cfg, spec), []).append(spec)
    results: dict[str, dict[str, Any]] = {}
    for region, region_specs in by_region.items():
        cw = backend.client("cloudwatch", region)
        existing = _describe(cw, [s["AlarmName"] for s in region_specs])
        for spec in region_specs:
            name = spec["AlarmName"]
            current = existing.get(name)
            repaired: list[str] = []
            try:
                if current is None:
                    cw.put_metric_alarm(**spec, Tags=tag_list(cfg.tags()))
                else:
                    tags = tag_dict(cw.list_tags_for_resource(ResourceARN=current["AlarmArn"]).get("Tags"))
                    if not cfg.owns(tags):
                        raise CollisionError(
                            f"CloudWatch alarm {name!r} in {region} exists and is not tagged as part of migration "
                            f"batch {cfg.migration_batch!r} ({cfg.environment_suffix}); delete it or change timestamp"
                        )
                    drift = spec_drift(current, spec)
                    if drift:
                        # Tags passed to put_metric_alarm are ignored on update, so none are sent here.
                        cw.put_metric_alarm(**spec)
                        repaired.append("configuration")
                    if any(tags.get(k) != v for k, v in cfg.tags().items()):
                        cw.tag_resource(ResourceARN=current["AlarmArn"], Tags=tag_list(cfg.tags()))
                        repaired.append("tags")
            except CollisionError:
                raise
            except Exception as err:
                if error_code(err) != "ValidationError":
                    raise
                # e.g. "Invalid region ... specified": the action's topic is not in the alarm's region.
                results[name] = {"name": name, "region": region, "error": str(err), "created": False, "repaired": []}
                continue
            results[name] = {"name": name, "region": region, "created": current is None, "repaired": repaired}
        after = _describe(cw, [s["AlarmName"] for s in region_specs if "error" not in results[s["AlarmName"]]])
        for name, alarm in after.items():
            results[name] = _alarm_view(alarm, region) | results[name]
    return [results[s["AlarmName"]] for s in specs]


def _describe(cw: Any, alarm_names: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(alarm_names), 100):
        chunk = alarm_names[i : i + 100]
        if not chunk:
            continue
        for page in cw.get_paginator("describe_alarms").paginate(AlarmNames=chunk, AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                out[alarm["AlarmName"]] = dict(alarm)
    return out


def _alarm_view(alarm: dict[str, Any], region: str) -> dict[str, Any]:
    return {
        "name": alarm["AlarmName"],
        "arn": alarm["AlarmArn"],
        "region": region,
        "namespace": alarm.get("Namespace"),
        "metric": alarm.get("MetricName"),
        "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions") or []},
        "statistic": alarm.get("Statistic"),
        "comparison": alarm.get("ComparisonOperator"),
        "threshold": alarm.get("Threshold"),
        "period": alarm.get("Period"),
        "evaluationPeriods": alarm.get("EvaluationPeriods"),
        "actions": list(alarm.get("AlarmActions") or []),
        "okActions": list(alarm.get("OKActions") or []),
        "state": alarm.get("StateValue"),
    }


def ensure_dashboard(backend: Backend, cfg: MigrationConfig, replication_rule_id: str | None = None) -> dict[str, Any]:
    """Create or repair the dashboard; a same-named dashboard without our marker is a collision."""
    names = resource_names(cfg)
    cw = backend.client("cloudwatch", cfg.target_region)
    body = dashboard_body(cfg, names, list(names.buckets), replication_rule_id)
    current = _get_dashboard(cw, names.dashboard)
    created = current is None
    repaired: list[str] = []
    if current is not None:
        if dashboard_marker(cfg) not in current.get("DashboardBody", ""):
            raise CollisionError(
                f"CloudWatch dashboard {names.dashboard!r} exists and was not created by migration batch "
                f"{cfg.migration_batch!r} ({cfg.environment_suffix}); delete it or change timestamp"
            )
        if json.loads(current["DashboardBody"]) != body:
            repaired.append("body")
    if created or repaired:
        out = cw.put_dashboard(DashboardName=names.dashboard, DashboardBody=json.dumps(body))
        problems = out.get("DashboardValidationMessages") or []
        if problems:
            raise ValueError(f"dashboard {names.dashboard!r} rejected: {problems}")
    got = _get_dashboard(cw, names.dashboard) or {}
    widgets = json.loads(got.get("DashboardBody") or "{}").get("widgets", [])
    return {
        "name": got.get("DashboardName"),
        "arn": got.get("DashboardArn"),
        "widgetCount": len(widgets),
        "created": created,
        "repaired": repaired,
    }


def _get_dashboard(cw: Any, name: str) -> dict[str, Any] | None:
    resp = lookup(cw.get_dashboard, DashboardName=name)
    return dict(resp) if resp else None


def put_lag_metric(backend: Backend, cfg: MigrationConfig, table: str, lag_seconds: float) -> dict[str, Any]:
    """Publish the stream catch-up's lag for one table (source or target name; the dimension is the target)."""
    names = resource_names(cfg)
    target = names.tables.get(table, table)
    backend.client("cloudwatch", cfg.target_region).put_metric_data(
        Namespace=LAG_NAMESPACE,
        MetricData=[
            {
                "MetricName": LAG_METRIC,
                "Dimensions": [{"Name": "TableName", "Value": target}],
                "Value": max(0.0, float(lag_seconds)),
                "Unit": "Seconds",
            }
        ],
    )
    return {"namespace": LAG_NAMESPACE, "metric": LAG_METRIC, "table": target, "value": max(0.0, float(lag_seconds))}


# ---------------------------------------------------------------- find / delete (teardown)

_ALARM_TYPES = ["MetricAlarm", "CompositeAlarm"]


def find_alarms(backend: Backend, cfg: MigrationConfig, region: str) -> list[dict[str, Any]]:
    """Alarms named with our prefix in `region`, and whether each one's tags say it is ours."""
    cw = backend.client("cloudwatch", region)
    out = []
    for page in cw.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=alarm_prefix(cfg), AlarmTypes=_ALARM_TYPES
    ):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            tags = tag_dict(cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"))
            out.append(
                {"name": alarm["AlarmName"], "arn": alarm["AlarmArn"], "region": region, "owned": cfg.owns(tags)}
            )
    return out


def delete_alarm(backend: Backend, region: str, name: str) -> dict[str, Any]:
    cw = backend.client("cloudwatch", region)

    def there() -> bool:
        resp = cw.describe_alarms(AlarmNames=[name], AlarmTypes=_ALARM_TYPES)
        return bool(resp.get("MetricAlarms") or resp.get("CompositeAlarms"))

    return delete_measured(lambda: cw.delete_alarms(AlarmNames=[name]), there)


def find_dashboard(backend: Backend, cfg: MigrationConfig, name: str) -> dict[str, Any] | None:
    """Dashboards cannot be tagged: ours carries the tag marker in its first text widget."""
    got = _get_dashboard(backend.client("cloudwatch", cfg.target_region), name)
    if got is None:
        return None
    owned = dashboard_marker(cfg) in str(got.get("DashboardBody") or "")
    return {"name": name, "arn": got.get("DashboardArn"), "region": cfg.target_region, "owned": owned}


def delete_dashboard(backend: Backend, region: str, name: str) -> dict[str, Any]:
    cw = backend.client("cloudwatch", region)
    return delete_measured(partial(cw.delete_dashboards, DashboardNames=[name]), partial(_get_dashboard, cw, name))
