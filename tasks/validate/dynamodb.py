"""DynamoDB validation: every item of the source table against the target, type-exact and TTL-aware.

The flow runs it as bounded partitioned tasks (tasks/validate/dynamodb_partition.py: scans write hashed
(key, digest) rows to the staging bucket, one compare task per hash bucket, mismatches written where found).
`validate_table` composes the same functions in one process, for one table pair, and returns its mismatches:
the same logic and result, with no task runner. Items whose TTL has passed are left out on both sides (see
tasks/validate/dynamodb_rows.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.names import resource_names
from tasks.provision.kms import migration_key_arn
from tasks.provision.s3 import ensure_staging_bucket
from tasks.steps import step
from tasks.validate import dynamodb_partition as part
from tasks.validate.digest import is_expired
from tasks.validate.dynamodb_rows import DETAIL_LIMIT, describe_difference, table_keys, ttl_attribute

__all__ = ["describe_difference", "is_expired", "table_keys", "ttl_attribute", "validate_table"]


@step("validate-table", retries=2, run_name="validate-{source_table}")
def validate_table(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    partitions: int | None = None,
    *,
    groups: int | None = None,
    segments: int | None = None,
    detail_limit: int = DETAIL_LIMIT,
    now: float | None = None,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """Counts plus `mismatches` (a DataFrame [key, kind, detail]: every missing, extra or different item).

    `partitions` (hash buckets), `groups` (scan tasks per side) and `segments` (TotalSegments) default to the
    plan's sizing (dynamodb_partition.plan_sizes). The rows pass through the staging bucket, encrypted under
    the migration key (found by its alias unless given), and are removed afterwards. Expired items are counted
    (expiredSkipped, expiredSkippedTarget) but not compared. Keys in the output are key_string()s, which
    parse_key_string() turns back into a get_item Key.
    """
    kms = kms_key_arn or migration_key_arn(backend, cfg)
    ensure_checkpoint_table.fn(backend, cfg.target_region, resource_names(cfg).checkpoint_table, cfg.tags(), kms)
    ensure_staging_bucket.fn(backend, cfg, kms)
    plan = part.plan_table.fn(
        backend,
        cfg,
        source_table,
        target_table,
        segments=segments,
        groups=groups,
        buckets=partitions,
        now=now,
        detail_limit=detail_limit,
    )
    run_id = uuid.uuid4().hex[:16]
    scans = [part.scan_side.fn(backend, cfg, plan, s, g, run_id, kms) for s in part.SIDES for g in plan["groups"]]
    expect = part.expected_rows(scans)
    compares = [part.compare_bucket.fn(backend, cfg, plan, b, run_id, expect) for b in range(plan["buckets"])]
    out = part.add_table_counts(plan, scans, compares)
    out["mismatches"] = part.collect_table.fn(backend, cfg, plan, run_id)
    return out
