"""Names of everything a migration creates: pure, so plan, provision and teardown agree."""

from __future__ import annotations

from dataclasses import dataclass

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
    checkpoint_table: str
    buckets: dict[str, str]
    tables: dict[str, str]


def resource_names(cfg: MigrationConfig) -> ResourceNames:
    """Every name follows `{name}-{regionprefix}-{timestamp}-{environmentSuffix}` (IAM roles are global,
    so they carry the target region prefix too and stay unique per migration)."""
    n = cfg.target_name
    function = n("migration-validator")
    return ResourceNames(
        kms_alias=f"alias/{n('migration-key')}",
        topic=n("migration-alerts"),
        # In the source region, for the S3 replication alarms (an alarm's SNS action must be in its region).
        source_kms_alias=f"alias/{n('migration-source-alerts-key')}",
        source_topic=n("migration-source-alerts"),
        lambda_function=function,
        lambda_role=n("migration-validator-role")[:64],
        replication_role=n("migration-s3-replication")[:64],
        log_group=f"/aws/lambda/{function}",
        dashboard=n("migration-dashboard"),
        checkpoint_table=n("migration-checkpoints"),
        buckets={b.name: n(b.name) for b in cfg.s3Buckets},
        tables={t.name: n(t.name) for t in cfg.dynamodbTables},
    )
