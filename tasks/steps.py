"""The Prefect tasks of the migration DAG: one step each, with retries, jitter and a failure alert.

The work itself lives in plain functions (tasks/provision, tasks/move, tasks/validate) that tests call
directly; this module only decides how each step is retried and named in the Prefect UI. Partitioned
steps (S3 key ranges, DynamoDB scan segments) are separate task runs, never one per object or item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from config.model import BucketSpec, MigrationConfig, TableSpec
from tasks import alerts, preflight
from tasks.aws import Backend
from tasks.move import dynamodb as move_ddb
from tasks.move import s3 as move_s3
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.names import resource_names
from tasks.provision import cloudwatch, dynamodb, iam, kms, lambda_, s3, sns

F = TypeVar("F", bound=Callable[..., Any])


def step(name: str, retries: int = 3, delay: float = 2.0, run_name: str | None = None) -> Callable[[F], F]:
    """A task with exponential backoff + jitter between attempts and an SNS alert after the last one.

    botocore already retries throttling and 5xx inside each attempt (standard mode); these retries
    cover what outlasts that: a region hiccup, an eventually-consistent read, a killed worker.
    """

    def wrap(fn: F) -> F:
        return task(  # type: ignore[return-value]
            fn,
            name=name,
            task_run_name=run_name,
            retries=retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=delay),
            retry_jitter_factor=0.5,
            cache_policy=NO_CACHE,
            on_failure=[alerts.on_task_failure],
        )

    return wrap


# ---------------------------------------------------------------- preflight


@step("preflight", retries=1)
def preflight_task(backend: Backend, cfg: MigrationConfig) -> preflight.Preflight:
    """Checks before anything is created; errors are returned, not raised, so they read as one line."""
    return preflight.check(backend, cfg)


# ---------------------------------------------------------------- provision


@step("provision-kms")
def kms_task(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    return kms.ensure_key(backend, cfg, account_id)


@step("provision-bucket", run_name="provision-bucket-{spec.name}")
def bucket_task(backend: Backend, cfg: MigrationConfig, spec: BucketSpec, kms_key_arn: str) -> dict[str, Any]:
    return s3.ensure_bucket(backend, cfg, spec, kms_key_arn)


@step("provision-table", run_name="provision-table-{spec.name}")
def table_task(backend: Backend, cfg: MigrationConfig, spec: TableSpec, kms_key_arn: str) -> dict[str, Any]:
    return dynamodb.ensure_table(backend, cfg, spec, kms_key_arn)


@step("provision-topic")
def topic_task(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    return sns.ensure_topic(backend, cfg, kms_key_arn)


@step("provision-checkpoints")
def checkpoint_table_task(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    names = resource_names(cfg)
    return ensure_checkpoint_table(backend, cfg.targetRegion, names.checkpoint_table, cfg.tags(), kms_key_arn)


@step("provision-replication-role")
def replication_role_task(backend: Backend, cfg: MigrationConfig, account_id: str, kms_key_arn: str) -> dict[str, Any]:
    return iam.ensure_replication_role(backend, cfg, account_id, kms_key_arn)


@step("provision-validator-role")
def lambda_role_task(
    backend: Backend, cfg: MigrationConfig, account_id: str, kms_key_arn: str, topic_arn: str
) -> dict[str, Any]:
    return iam.ensure_lambda_role(backend, cfg, account_id, kms_key_arn, topic_arn)


@step("provision-validator")
def lambda_task(
    backend: Backend, cfg: MigrationConfig, role_arn: str, topic_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    return lambda_.ensure_validator(backend, cfg, role_arn, topic_arn, kms_key_arn)


@step("provision-alarms")
def alarms_task(backend: Backend, cfg: MigrationConfig, topic_arn: str) -> dict[str, Any]:
    rule_id = move_s3.replication_rule_id(cfg)
    return {
        "alarms": cloudwatch.ensure_alarms(backend, cfg, topic_arn, rule_id),
        "dashboard": cloudwatch.ensure_dashboard(backend, cfg),
    }


# ---------------------------------------------------------------- move: S3


@step("s3-replication", run_name="s3-replication-{source_bucket}")
def replication_task(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, target_bucket: str, role_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    return move_s3.ensure_replication(backend, cfg, source_bucket, target_bucket, role_arn, kms_key_arn)


@step("s3-partitions", run_name="s3-partitions-{bucket}")
def s3_partitions_task(backend: Backend, region: str, bucket: str) -> list[dict[str, Any]]:
    return move_s3.plan_partitions(backend, region, bucket)


@step("s3-copy", retries=4, run_name="s3-{mode}-{source_bucket}-{key_range[id]}")
def s3_copy_task(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    key_range: dict[str, Any],
    kms_key_arn: str,
    checkpoint_table: str,
    mode: str,
) -> dict[str, Any]:
    """One key range: a retry re-lists the range and copies only what is still missing."""
    return move_s3.copy_partition(
        backend, cfg, source_bucket, target_bucket, key_range, kms_key_arn, checkpoint_table, mode=mode
    )


# ---------------------------------------------------------------- move: DynamoDB


@step("ddb-stream", run_name="ddb-stream-{source_table}")
def stream_task(backend: Backend, cfg: MigrationConfig, source_table: str, checkpoint_table: str) -> dict[str, Any]:
    return move_ddb.ensure_source_stream(backend, cfg, source_table, checkpoint_table)


@step("ddb-segments", run_name="ddb-segments-{source_table}")
def segments_task(backend: Backend, cfg: MigrationConfig, source_table: str, checkpoint_table: str) -> int:
    return move_ddb.plan_segments(backend, cfg, source_table, checkpoint_table)


@step("ddb-backfill", retries=4, run_name="ddb-backfill-{source_table}-{segment}")
def backfill_task(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    segment: int,
    total_segments: int,
    checkpoint_table: str,
) -> dict[str, Any]:
    """One scan segment, resumed from its durable checkpoint on retry or re-run."""
    return move_ddb.backfill_segment(
        backend, cfg, source_table, target_table, segment, total_segments, checkpoint_table
    )


@step("ddb-catch-up", retries=4, run_name="ddb-catch-up-{source_table}")
def catch_up_task(
    backend: Backend, cfg: MigrationConfig, source_table: str, target_table: str, checkpoint_table: str
) -> dict[str, Any]:
    result = move_ddb.catch_up(backend, cfg, source_table, target_table, checkpoint_table)
    cloudwatch.put_lag_metric(backend, cfg, target_table, float(result.get("lag_seconds", 0.0)))
    return result
