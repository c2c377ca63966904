"""Names of everything a migration creates: pure, so plan, provision and teardown agree.

This module is the one source of derived names and of the AWS limits they must meet. The config model
checks every name here before anything is created; a name that does not fit is refused, never cut
(a name cut to a limit can collide with another migration's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tasks.aws import arn

if TYPE_CHECKING:
    from config.model import MigrationConfig


@dataclass(frozen=True)
class ResourceNames:
    """Target-region names (plus the source-region alert key and topic); buckets and tables map source
    name -> target name."""

    kms_alias: str
    topic: str
    source_kms_alias: str
    source_topic: str
    lambda_function: str
    lambda_role: str
    replication_role: str
    log_group: str
    dashboard: str
    alarm_prefix: str
    checkpoint_table: str
    buckets: dict[str, str]
    tables: dict[str, str]
    batch_role: str = ""
    reports_bucket: str = ""


@dataclass(frozen=True)
class NameRule:
    """An AWS naming rule: what the resource is, its length range and allowed characters."""

    what: str
    limit: int
    pattern: re.Pattern[str]
    chars: str
    minimum: int = 1


# From the AWS API references (checked 2026-12): Lambda CreateFunction ("If you specify only the function
# name, it is limited to 64 characters"), IAM CreateRole RoleName (1-64, [\w+=,.@-]+), SNS CreateTopic
# (1-256 of letters, digits, '_' and '-'), KMS CreateAlias (1-256 of letters, digits, '/', '_', '-'),
# CloudWatch PutMetricAlarm AlarmName (1-255) and PutDashboard (max 255, A-Z a-z 0-9 '-' '_'),
# CloudWatch Logs CreateLogGroup (1-512, [.\-_/#A-Za-z0-9]+), DynamoDB table names (3-255, [a-zA-Z0-9_.-]+).
# S3 bucket names have more rules (config.model.bucket_name_problem).
RULES: dict[str, NameRule] = {
    "kms_alias": NameRule("KMS alias", 256, re.compile(r"alias/[A-Za-z0-9/_-]+"), "letters, digits, '/', '_', '-'"),
    "topic": NameRule("SNS topic name", 256, re.compile(r"[A-Za-z0-9_-]+"), "letters, digits, '_', '-'"),
    "source_kms_alias": NameRule(
        "KMS alias", 256, re.compile(r"alias/[A-Za-z0-9/_-]+"), "letters, digits, '/', '_', '-'"
    ),
    "source_topic": NameRule("SNS topic name", 256, re.compile(r"[A-Za-z0-9_-]+"), "letters, digits, '_', '-'"),
    "lambda_function": NameRule("Lambda function name", 64, re.compile(r"[A-Za-z0-9_-]+"), "letters, digits, '_', '-'"),
    "lambda_role": NameRule("IAM role name", 64, re.compile(r"[\w+=,.@-]+"), "letters, digits, '+=,.@_-'"),
    "replication_role": NameRule("IAM role name", 64, re.compile(r"[\w+=,.@-]+"), "letters, digits, '+=,.@_-'"),
    "log_group": NameRule("log group name", 512, re.compile(r"[.\-_/#A-Za-z0-9]+"), "letters, digits, '._/#-'"),
    "dashboard": NameRule("CloudWatch dashboard name", 255, re.compile(r"[A-Za-z0-9_-]+"), "letters, digits, '_', '-'"),
    # Alarm names are this prefix + what the alarm watches; tasks.provision.cloudwatch keeps a full name
    # within 255 by cutting it at 244 and appending a digest of the whole name (so it stays unique): the
    # prefix must fit in those 244, or teardown's AlarmNamePrefix lookup would miss our alarms.
    "alarm_prefix": NameRule("CloudWatch alarm name prefix", 244, re.compile(r"[ -~]+"), "printable ASCII"),
    "checkpoint_table": NameRule(
        "DynamoDB table name", 255, re.compile(r"[A-Za-z0-9_.-]+"), "letters, digits, '_', '.', '-'", 3
    ),
    "batch_role": NameRule("IAM role name", 64, re.compile(r"[\w+=,.@-]+"), "letters, digits, '+=,.@_-'"),
    # S3 CreateBucket: 3-63 characters of lowercase letters, digits, '.' and '-' (config.model.bucket_name_problem).
    "reports_bucket": NameRule(
        "S3 bucket name", 63, re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]"), "lowercase letters, digits, '.', '-'", 3
    ),
    "tables": NameRule("DynamoDB table name", 255, re.compile(r"[A-Za-z0-9_.-]+"), "letters, digits, '_', '.', '-'", 3),
}


def region_prefix(region: str) -> str:
    """First part of a region code: 'eu' for eu-west-1."""
    return region.split("-")[0]


def target_name(name: str, target_region: str, timestamp: str, environment_suffix: str) -> str:
    """`{name}-{regionprefix}-{timestamp}-{environmentSuffix}`, the seed's naming rule."""
    return f"{name}-{region_prefix(target_region)}-{timestamp}-{environment_suffix}"


def derived_names(
    target_region: str, timestamp: str, environment_suffix: str, buckets: Iterable[str], tables: Iterable[str]
) -> ResourceNames:
    """Every name, from the parts of the config that make them (so the config model can check them)."""

    def n(name: str) -> str:
        return target_name(name, target_region, timestamp, environment_suffix)

    function = n("migration-validator")
    return ResourceNames(
        kms_alias=f"alias/{n('migration-key')}",
        topic=n("migration-alerts"),
        # In the source region, for the S3 replication alarms (an alarm's SNS action must be in its region).
        source_kms_alias=f"alias/{n('migration-source-alerts-key')}",
        source_topic=n("migration-source-alerts"),
        lambda_function=function,
        # IAM roles are global, so they carry the target region prefix too and stay unique per migration.
        lambda_role=n("migration-validator-role"),
        replication_role=n("migration-s3-replication"),
        log_group=f"/aws/lambda/{function}",
        dashboard=n("migration-dashboard"),
        alarm_prefix=n("migration-alarm") + "-",
        checkpoint_table=n("migration-checkpoints"),
        buckets={b: n(b) for b in buckets},
        tables={t: n(t) for t in tables},
        # S3 Batch Operations (S3 Batch Replication of a big bucket): its role, and its reports bucket in the
        # source region (a generated manifest must live in the source bucket's region; reports are SSE-S3).
        batch_role=n("migration-s3-batch"),
        reports_bucket=n("migration-batch-reports"),
    )


STAGING = "migration-ddb-staging"


def staging_bucket(cfg: MigrationConfig) -> str:
    """The target-region bucket DynamoDB exports land in for ImportTable (when a table takes that path), and
    DynamoDB validation's hashed rows between its two task stages (validation/...); its name is checked by S3's
    rules in tasks/provision/s3.ensure_staging_bucket's BucketSpec."""
    return cfg.target_name(STAGING)


def resource_names(cfg: MigrationConfig) -> ResourceNames:
    """Every name follows `{name}-{regionprefix}-{timestamp}-{environmentSuffix}`."""
    return derived_names(
        cfg.target_region,
        cfg.timestamp,
        cfg.environment_suffix,
        [b.name for b in cfg.s3_buckets],
        [t.name for t in cfg.dynamodb_tables],
    )


def name_problem(rule: NameRule, name: str) -> str | None:
    """Why `name` breaks `rule` (one clause, naming the limit), or None."""
    if len(name) > rule.limit:
        return f"{rule.what} {name!r} is {len(name)} characters, over the AWS limit of {rule.limit}"
    if len(name) < rule.minimum:
        return f"{rule.what} {name!r} is {len(name)} characters, under the AWS minimum of {rule.minimum}"
    if not rule.pattern.fullmatch(name):
        return f"{rule.what} {name!r} may contain only {rule.chars}"
    return None


def fixed_name_problems(names: ResourceNames) -> list[str]:
    """Problems of the names made only from timestamp and environmentSuffix (not from a bucket or table)."""
    out = []
    for f in fields(ResourceNames):
        value, rule = getattr(names, f.name), RULES.get(f.name)
        if isinstance(value, Mapping) or rule is None:  # a name without a rule fails tests/unit/test_config.py
            continue
        problem = name_problem(rule, value)
        if problem:
            out.append(problem)
    return out


def fixed_name_budget(target_region: str) -> int:
    """How many characters timestamp + environmentSuffix may have together so every fixed name fits."""
    empty = derived_names(target_region, "", "", [], [])
    room = []
    for f in fields(ResourceNames):
        value, rule = getattr(empty, f.name), RULES.get(f.name)
        if rule and not isinstance(value, Mapping):
            room.append(rule.limit - len(value))
    return min(room)


# ---------------------------------------------------------------- ARNs built before the resource exists


def topic_arn(region: str, account_id: str, name: str) -> str:
    """A standard SNS topic's ARN (partition from botocore), known before it exists: look before create."""
    return arn("sns", region, account_id, name)


def alert_topic_arn(cfg: MigrationConfig, account_id: str) -> str:
    """The migration's alert topic (target region): where task hooks, NO-GO alerts and the SnsAlert block publish."""
    return topic_arn(cfg.target_region, account_id, resource_names(cfg).topic)


# ---------------------------------------------------------------- report files

REPORT_DIR = Path("reports")
ReportKind = Literal["migration-report", "sync", "cutover", "validation"]


def report_path(kind: ReportKind, cfg: MigrationConfig, override: str | Path | None = None) -> Path:
    """Where a flow writes (and teardown looks for) its JSON result: the path the user gave, else
    `reports/{kind}-{migrationBatch}-{environmentSuffix}.json` (relative to the working directory)."""
    if override:
        return Path(override)
    return REPORT_DIR / f"{kind}-{cfg.migration_batch}-{cfg.environment_suffix}.json"
