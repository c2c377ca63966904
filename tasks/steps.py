"""The Prefect tasks of the migration DAG: one step each, with retries, jitter and a failure alert.

The work itself lives in plain functions (tasks/provision, tasks/move, tasks/validate) that tests call
directly; this module only decides how each step is retried and named in the Prefect UI. Partitioned
steps (S3 key ranges, DynamoDB scan segments) are separate task runs, never one per object or item.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from config.model import BucketSpec, MigrationConfig, TableSpec
from tasks import alerts, preflight
from tasks.aws import Backend
from tasks.move import dynamodb as move_ddb
from tasks.move import s3 as move_s3
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.move.s3_plan import replication_rule_id
from tasks.names import resource_names
from tasks.provision import cloudwatch, dynamodb, iam, kms, lambda_, s3, sns
from tasks.validate import dynamodb as validate_ddb
from tasks.validate import s3 as validate_s3
from tasks.validate.invoke import invoke_validator

P = ParamSpec("P")
R = TypeVar("R")

# Copies in flight per S3 partition task; the flow runs a few partition tasks side by side.
S3_COPY_WORKERS = 8


def step(
    name: str, retries: int = 3, delay: float = 2.0, run_name: str | None = None
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task with exponential backoff + jitter between attempts and an SNS alert after the last one.

    botocore already retries throttling and 5xx inside each attempt (standard mode); these retries
    cover what outlasts that: a region hiccup, an eventually-consistent read, a killed worker.
    """

    def wrap(fn: Callable[P, R]) -> Task[P, R]:
        return task(
            name=name,
            task_run_name=run_name,
            retries=retries,
            retry_delay_seconds=exponential_backoff(backoff_factor=delay),
            retry_jitter_factor=0.5,
            cache_policy=NO_CACHE,
            on_failure=[alerts.on_task_failure],
        )(fn)

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


@step("provision-source-alerts")
def source_alerts_task(backend: Backend, cfg: MigrationConfig, account_id: str) -> dict[str, Any]:
    """The source region's alert key and topic, for the S3 replication alarms that live there."""
    key = kms.ensure_source_key(backend, cfg, account_id)
    return {"kms": key, "sns": sns.ensure_source_topic(backend, cfg, key["arn"])}


@step("provision-checkpoints")
def checkpoint_table_task(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    names = resource_names(cfg)
    return ensure_checkpoint_table(backend, cfg.targetRegion, names.checkpoint_table, cfg.tags(), kms_key_arn)


@step("provision-replication-role")
def replication_role_task(backend: Backend, cfg: MigrationConfig, kms_key_arn: str) -> dict[str, Any]:
    return iam.ensure_replication_role(backend, cfg, kms_key_arn)


@step("provision-validator-role")
def lambda_role_task(backend: Backend, cfg: MigrationConfig, kms_key_arn: str, topic_arn: str) -> dict[str, Any]:
    return iam.ensure_lambda_role(backend, cfg, kms_key_arn, topic_arn)


@step("provision-validator")
def lambda_task(
    backend: Backend, cfg: MigrationConfig, role_arn: str, topic_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    return lambda_.ensure_validator(backend, cfg, role_arn, topic_arn, kms_key_arn)


@step("provision-alarms")
def alarms_task(
    backend: Backend, cfg: MigrationConfig, topic_arn: str, source_topic_arn: str | None = None
) -> dict[str, Any]:
    rule_id = replication_rule_id(cfg)
    return {
        "alarms": cloudwatch.ensure_alarms(backend, cfg, topic_arn, rule_id, source_topic_arn=source_topic_arn),
        "dashboard": cloudwatch.ensure_dashboard(backend, cfg, rule_id),
    }


# ---------------------------------------------------------------- move: S3


@step("s3-replication", run_name="s3-replication-{source_bucket}")
def replication_task(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, target_bucket: str, role_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    checkpoints = resource_names(cfg).checkpoint_table
    return move_s3.ensure_replication(
        backend, cfg, source_bucket, target_bucket, role_arn, kms_key_arn, checkpoint_table=checkpoints
    )


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
        backend,
        cfg,
        source_bucket,
        target_bucket,
        key_range,
        kms_key_arn,
        checkpoint_table,
        mode=mode,  # type: ignore[arg-type]
        workers=S3_COPY_WORKERS,
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


# ---------------------------------------------------------------- validate


@step("validate-bucket", retries=2, run_name="validate-{source_bucket}")
def validate_bucket_task(
    backend: Backend, cfg: MigrationConfig, source_bucket: str, target_bucket: str, level: str
) -> dict[str, Any]:
    """Every key, size and (level full) content; the mismatch frame travels in memory to the flow."""
    return validate_s3.validate_bucket(backend, cfg, source_bucket, target_bucket, level=level)  # type: ignore[arg-type]


@step("validate-table", retries=2, run_name="validate-{source_table}")
def validate_table_task(
    backend: Backend, cfg: MigrationConfig, source_table: str, target_table: str, spill_dir: str
) -> dict[str, Any]:
    """Every key and item, type-exact, TTL-aware, in bounded memory (partitions spilled to spill_dir)."""
    return validate_ddb.validate_table(backend, cfg, source_table, target_table, spill_dir=Path(spill_dir))


@step("invoke-validator", retries=0)
def invoke_validator_task(backend: Backend, cfg: MigrationConfig) -> dict[str, Any]:
    """Never retried: an invocation is not idempotent (it may publish alerts), and one whose answer was lost
    may still be running; invoke_validator reports it as "outcome unknown" instead."""
    return invoke_validator(backend, cfg)
