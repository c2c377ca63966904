"""IAM roles: least-privilege policy documents (pure) and idempotent ensure/repair read back from moto."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision import iam

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:migration-alerts-eu-20261128-dev"
SOURCE_KMS_PATTERN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"


def _statements(policy: dict) -> list[dict]:
    return list(policy["Statement"])


def test_replication_policy_is_scoped_to_arns() -> None:
    trust, policy = iam.replication_role_policies(
        ["src-a", "src-b"], ["dst-a", "dst-b"], KEY, source_region="us-east-1"
    )
    assert iam._trust_principal(trust) == ["s3.amazonaws.com"]
    assert iam.wildcard_actions(policy) == []
    # The only broad Resource is the documented source-region KMS pattern, and it is Decrypt-only and
    # conditioned on S3 in the source region.
    assert iam.wildcard_resources(policy) == [SOURCE_KMS_PATTERN]
    broad = [s for s in _statements(policy) if SOURCE_KMS_PATTERN in s["Resource"]]
    assert len(broad) == 1 and broad[0]["Action"] == ["kms:Decrypt"]
    assert broad[0]["Condition"]["StringEquals"]["kms:ViaService"] == "s3.us-east-1.amazonaws.com"
    for st in _statements(policy):
        for r in st["Resource"]:
            assert r != "*" and r.startswith("arn:aws:")
    by_sid = {s["Sid"]: s for s in _statements(policy)}
    assert by_sid["ReadSourceReplicationConfig"]["Resource"] == ["arn:aws:s3:::src-a", "arn:aws:s3:::src-b"]
    assert by_sid["WriteReplicas"]["Resource"] == ["arn:aws:s3:::dst-a/*", "arn:aws:s3:::dst-b/*"]
    assert set(by_sid["WriteReplicas"]["Action"]) == {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"}
    assert by_sid["EncryptReplicasWithTargetKey"]["Resource"] == [KEY]
    assert by_sid["EncryptReplicasWithTargetKey"]["Condition"]["StringEquals"]["kms:ViaService"] == (
        "s3.eu-west-1.amazonaws.com"
    )
    # Nothing may write to a source bucket.
    writes = [a for a in iam.policy_actions(policy) if a.startswith("s3:Replicate")]
    src_writes = [
        s for s in _statements(policy) if set(s["Action"]) & set(writes) and any("src-" in r for r in s["Resource"])
    ]
    assert src_writes == []


def test_replication_policy_needs_buckets(backend: Backend, cfg: MigrationConfig) -> None:
    with pytest.raises(ValueError, match="at least one"):
        iam.replication_role_policies([], [], KEY, source_region="us-east-1")
    tables_only = cfg.model_copy(update={"s3_buckets": []})
    out = iam.ensure_replication_role.fn(backend, tables_only, KEY)
    assert out["arn"] is None and out["skipped"]
    assert backend.client("iam", "eu-west-1").list_roles()["Roles"] == []


HANDLER = Path(__file__).resolve().parents[2] / "lambda" / "validator" / "handler.py"
# boto3 method (or paginator) the handler calls -> the IAM action it needs.
HANDLER_CALLS = {
    "get_bucket_versioning": "s3:GetBucketVersioning",
    "get_bucket_encryption": "s3:GetEncryptionConfiguration",
    "get_public_access_block": "s3:GetBucketPublicAccessBlock",
    "list_objects_v2": "s3:ListBucket",
    "describe_table": "dynamodb:DescribeTable",
    "describe_continuous_backups": "dynamodb:DescribeContinuousBackups",
    "describe_time_to_live": "dynamodb:DescribeTimeToLive",
    "scan": "dynamodb:Scan",
    "put_item": "dynamodb:PutItem",
    "publish": "sns:Publish",
}


def _handler_calls() -> set[str]:
    """Every AWS operation handler.py calls: client methods (`x.describe_table(`) and paginator names."""
    tree = ast.parse(HANDLER.read_text())
    calls: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                calls.add(str(node.args[0].value))
            elif name in HANDLER_CALLS:
                calls.add(name)
        # `_call(s3.get_bucket_versioning, ...)`: the method passed as a value
        if isinstance(node, ast.Attribute) and node.attr in HANDLER_CALLS and not isinstance(node.ctx, ast.Store):
            calls.add(node.attr)
    return calls


def _by_sid(policy: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in _statements(policy)}


def test_lambda_policy_grants_exactly_what_the_handler_calls(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    trust, policy = iam.lambda_role_policies(cfg, ACCOUNT, names, KEY, TOPIC)
    assert iam._trust_principal(trust) == ["lambda.amazonaws.com"]
    assert iam.wildcard_actions(policy) == [] and iam.wildcard_resources(policy) == []
    calls = _handler_calls()
    assert {"get_bucket_versioning", "list_objects_v2", "scan", "put_item", "publish"} <= calls
    data_actions = {a for a in iam.policy_actions(policy) if not a.startswith(("logs:", "kms:"))}
    assert data_actions == {HANDLER_CALLS[c] for c in calls}  # nothing more (no s3:GetObject, no GetBucketPolicy)


def test_lambda_policy_scopes_each_action_to_its_arns(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    _, policy = iam.lambda_role_policies(cfg, ACCOUNT, names, KEY, TOPIC)
    sid = _by_sid(policy)
    src_buckets = sorted(f"arn:aws:s3:::{b}" for b in names.buckets)
    dst_buckets = sorted(f"arn:aws:s3:::{b}" for b in names.buckets.values())
    src_tables = sorted(f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{t}" for t in names.tables)
    dst_tables = sorted(f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{t}" for t in names.tables.values())
    # Configuration reads on the targets only; the sources are only listed (keys and sizes).
    assert sid["ReadTargetBucketConfiguration"]["Resource"] == dst_buckets
    assert sid["ListBothSides"]["Action"] == ["s3:ListBucket"]
    assert sid["ListBothSides"]["Resource"] == sorted(src_buckets + dst_buckets)
    assert sid["ReadTargetTables"]["Resource"] == dst_tables
    assert sid["ReadSourceTables"]["Resource"] == src_tables
    assert "dynamodb:DescribeContinuousBackups" not in sid["ReadSourceTables"]["Action"]
    # The only write: the validator's own partition of the checkpoint table.
    record = sid["RecordResult"]
    assert record["Action"] == ["dynamodb:PutItem"]
    assert record["Resource"] == [f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{names.checkpoint_table}"]
    assert record["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["validator"]}}
    writes = [
        (a, st["Sid"])
        for st in _statements(policy)
        for a in st["Action"]
        if a.split(":")[1].startswith(("Put", "Delete", "Update", "Create", "Batch")) and not a.startswith("logs:")
    ]
    assert writes == [("dynamodb:PutItem", "RecordResult")]
    assert sid["PublishAlerts"]["Resource"] == [TOPIC]
    assert sid["WriteOwnLogs"]["Resource"] == [
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{names.log_group}",
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{names.log_group}:*",
    ]


def test_lambda_policy_uses_the_key_only_through_services(cfg: MigrationConfig) -> None:
    _, policy = iam.lambda_role_policies(cfg, ACCOUNT, resource_names(cfg), KEY, TOPIC)
    kms = [st for st in _statements(policy) if any(a.startswith("kms:") for a in st["Action"])]
    via = {st["Condition"]["StringEquals"]["kms:ViaService"]: sorted(st["Action"]) for st in kms}
    assert via == {
        "lambda.eu-west-1.amazonaws.com": ["kms:Decrypt"],
        "sns.eu-west-1.amazonaws.com": ["kms:Decrypt", "kms:GenerateDataKey"],
        "dynamodb.eu-west-1.amazonaws.com": ["kms:Decrypt", "kms:DescribeKey"],
    }
    for st in kms:
        assert st["Resource"] == [KEY]
        assert all(a.startswith("kms:") for a in st["Action"])
        assert set(st["Condition"]) == {"StringEquals"}


def test_ensure_replication_role_is_idempotent_and_measured(backend: Backend, cfg: MigrationConfig) -> None:
    first = iam.ensure_replication_role.fn(backend, cfg, KEY)
    assert first["created"] is True and first["repaired"] == []
    assert first["trustPrincipal"] == ["s3.amazonaws.com"]
    assert first["wildcardActions"] == []
    assert first["wildcardResources"] == [SOURCE_KMS_PATTERN]
    assert "s3:ReplicateObject" in first["policyActions"]
    assert first["policyActions"] == sorted(first["policyActions"])

    second = iam.ensure_replication_role.fn(backend, cfg, KEY)
    assert second["created"] is False and second["repaired"] == []
    assert second["arn"] == first["arn"]
    client = backend.client("iam", "eu-west-1")
    roles = [r["RoleName"] for r in client.list_roles()["Roles"]]
    assert roles.count(resource_names(cfg).replication_role) == 1
    tags = {t["Key"]: t["Value"] for t in client.list_role_tags(RoleName=first["name"])["Tags"]}
    assert cfg.owns(tags)


def test_lambda_role_drift_is_repaired(backend: Backend, cfg: MigrationConfig) -> None:
    first = iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)
    name = first["name"]
    client = backend.client("iam", "eu-west-1")
    client.delete_role_policy(RoleName=name, PolicyName=iam.POLICY_NAME)
    client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(iam.trust_policy("ec2.amazonaws.com")))
    client.untag_role(RoleName=name, TagKeys=["SourceRegion"])
    assert iam.read_role(backend, cfg, name)["policyActions"] == []

    fixed = iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)
    assert fixed["created"] is False
    assert set(fixed["repaired"]) == {"inlinePolicy", "trustPolicy", "tags"}
    assert fixed["trustPrincipal"] == ["lambda.amazonaws.com"]
    assert fixed["policyActions"] == first["policyActions"]
    assert iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)["repaired"] == []


def test_extra_grants_are_reported_not_removed(backend: Backend, cfg: MigrationConfig) -> None:
    name = iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)["name"]
    client = backend.client("iam", "eu-west-1")
    client.put_role_policy(
        RoleName=name,
        PolicyName="someone-else",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    again = iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)
    assert again["otherInlinePolicies"] == ["someone-else"]
    assert again["wildcardActions"] == []  # measured on our policy, the extra one is flagged separately


def test_foreign_role_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    name = resource_names(cfg).lambda_role
    backend.client("iam", "eu-west-1").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(iam.trust_policy("lambda.amazonaws.com"))
    )
    with pytest.raises(CollisionError, match=name):
        iam.ensure_lambda_role.fn(backend, cfg, KEY, TOPIC)


def test_replication_kms_statements_follow_the_s3_replication_docs(backend: Backend, cfg: MigrationConfig) -> None:
    """S3 User Guide, replicating encrypted objects: kms:Decrypt of source objects only via S3 in the source
    region for the source buckets' objects, kms:Encrypt of replicas only via S3 in the destination region for
    the destination buckets' objects; with S3 Bucket Keys the context is the bucket ARN, so both forms are
    listed. The conditions must survive the round trip through IAM."""
    names = resource_names(cfg)
    src = sorted(f"arn:aws:s3:::{b}" for b in names.buckets)
    dst = sorted(f"arn:aws:s3:::{b}" for b in names.buckets.values())
    out = iam.ensure_replication_role.fn(backend, cfg, KEY)
    doc = backend.client("iam", "eu-west-1").get_role_policy(RoleName=out["name"], PolicyName=iam.POLICY_NAME)
    stored = doc["PolicyDocument"]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    kms_statements = {s["Sid"]: s for s in stored["Statement"] if any(a.startswith("kms:") for a in s["Action"])}
    assert sorted(kms_statements) == ["DecryptSourceObjectsViaS3", "EncryptReplicasWithTargetKey"]

    decrypt = kms_statements["DecryptSourceObjectsViaS3"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == [SOURCE_KMS_PATTERN]
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert sorted(decrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]) == sorted(
        src + [f"{a}/*" for a in src]
    )

    encrypt = kms_statements["EncryptReplicasWithTargetKey"]
    assert "kms:Encrypt" in encrypt["Action"] and "kms:Decrypt" not in encrypt["Action"]
    assert encrypt["Resource"] == [KEY]
    assert encrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert sorted(encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]) == sorted(
        dst + [f"{a}/*" for a in dst]
    )
    # No KMS statement without both conditions.
    assert all({"kms:ViaService"} <= set(s["Condition"]["StringEquals"]) for s in kms_statements.values())
