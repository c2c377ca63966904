"""The steps that are one task run over two work functions: each pair shares a retry and an alert.

Every other step is its work function itself, decorated with `@step` in its own module.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move import dynamodb_stream
from tasks.move.s3_plan import replication_rule_id
from tasks.provision import cloudwatch, kms, sns
from tasks.steps import step


@step("provision-source-alerts")
def source_alerts(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    """The source region's alert key and topic, for the S3 replication alarms that live there."""
    key = kms.ensure_source_key(backend, cfg, account_id)
    return {"kms": key, "sns": sns.ensure_source_topic(backend, cfg, key["arn"])}


@step("provision-alarms")
def alarms(
    backend: Backend, cfg: MigrationConfig, topic_arn: str, source_topic_arn: str | None = None
) -> dict[str, Any]:
    """The alarms and the dashboard, both keyed by our replication rule's id."""
    rule_id = replication_rule_id(cfg)
    return {
        "alarms": cloudwatch.ensure_alarms(backend, cfg, topic_arn, rule_id, source_topic_arn=source_topic_arn),
        "dashboard": cloudwatch.ensure_dashboard(backend, cfg, rule_id),
    }


@step("ddb-catch-up", retries=4, run_name="ddb-catch-up-{source_table}")
def catch_up(
    backend: Backend, cfg: MigrationConfig, source_table: str, target_table: str, checkpoint_table: str
) -> dict[str, Any]:
    """Stream replay, then its lag as the metric the lag alarm watches."""
    result = dynamodb_stream.catch_up(backend, cfg, source_table, target_table, checkpoint_table)
    cloudwatch.put_lag_metric(backend, cfg, target_table, float(result.get("lag_seconds", 0.0)))
    return result
