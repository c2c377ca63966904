"""IAM roles: least-privilege policy documents (pure) and idempotent ensure/repair read back from moto."""

from __future__ import annotations

import json

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
    tables_only = cfg.model_copy(update={"s3Buckets": []})
    out = iam.ensure_replication_role(backend, tables_only, KEY)
    assert out["arn"] is None and out["skipped"]
    assert backend.client("iam", "eu-west-1").list_roles()["Roles"] == []


def test_lambda_policy_is_scoped_to_arns(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    trust, policy = iam.lambda_role_policies(cfg, ACCOUNT, names, KEY, TOPIC)
    assert iam._trust_principal(trust) == ["lambda.amazonaws.com"]
    assert iam.wildcard_actions(policy) == []
    assert iam.wildcard_resources(policy) == []
    resources = iam.policy_resources(policy)
    assert "*" not in resources
    for table_source, table_target in names.tables.items():
        assert f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table_source}" in resources
        assert f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/{table_target}" in resources
    for bucket_source, bucket_target in names.buckets.items():
        assert f"arn:aws:s3:::{bucket_source}" in resources
        assert f"arn:aws:s3:::{bucket_target}" in resources
    assert f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{names.log_group}:*" in resources
    actions = iam.policy_actions(policy)
    for needed in (
        "sns:Publish",
        "kms:Decrypt",
        "s3:GetBucketVersioning",
        "s3:GetEncryptionConfiguration",
        "s3:GetBucketPublicAccessBlock",
        "dynamodb:DescribeTable",
        "dynamodb:DescribeContinuousBackups",
        "logs:PutLogEvents",
    ):
        assert needed in actions
    assert not [
        a
        for a in actions
        if a.split(":")[1].startswith(("Put", "Delete", "Update", "Create")) and not a.startswith("logs:")
    ]


def test_ensure_replication_role_is_idempotent_and_measured(backend: Backend, cfg: MigrationConfig) -> None:
    first = iam.ensure_replication_role(backend, cfg, KEY)
    assert first["created"] is True and first["repaired"] == []
    assert first["trustPrincipal"] == ["s3.amazonaws.com"]
    assert first["wildcardActions"] == []
    assert first["wildcardResources"] == [SOURCE_KMS_PATTERN]
    assert "s3:ReplicateObject" in first["policyActions"]
    assert first["policyActions"] == sorted(first["policyActions"])

    second = iam.ensure_replication_role(backend, cfg, KEY)
    assert second["created"] is False and second["repaired"] == []
    assert second["arn"] == first["arn"]
    client = backend.client("iam", "eu-west-1")
    roles = [r["RoleName"] for r in client.list_roles()["Roles"]]
    assert roles.count(resource_names(cfg).replication_role) == 1
    tags = {t["Key"]: t["Value"] for t in client.list_role_tags(RoleName=first["name"])["Tags"]}
    assert cfg.owns(tags)


def test_lambda_role_drift_is_repaired(backend: Backend, cfg: MigrationConfig) -> None:
    first = iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)
    name = first["name"]
    client = backend.client("iam", "eu-west-1")
    client.delete_role_policy(RoleName=name, PolicyName=iam.POLICY_NAME)
    client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(iam.trust_policy("ec2.amazonaws.com")))
    client.untag_role(RoleName=name, TagKeys=["SourceRegion"])
    assert iam.read_role(backend, cfg, name)["policyActions"] == []

    fixed = iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)
    assert fixed["created"] is False
    assert set(fixed["repaired"]) == {"inlinePolicy", "trustPolicy", "tags"}
    assert fixed["trustPrincipal"] == ["lambda.amazonaws.com"]
    assert fixed["policyActions"] == first["policyActions"]
    assert iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)["repaired"] == []


def test_extra_grants_are_reported_not_removed(backend: Backend, cfg: MigrationConfig) -> None:
    name = iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)["name"]
    client = backend.client("iam", "eu-west-1")
    client.put_role_policy(
        RoleName=name,
        PolicyName="someone-else",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    again = iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)
    assert again["otherInlinePolicies"] == ["someone-else"]
    assert again["wildcardActions"] == []  # measured on our policy, the extra one is flagged separately


def test_foreign_role_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    name = resource_names(cfg).lambda_role
    backend.client("iam", "eu-west-1").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(iam.trust_policy("lambda.amazonaws.com"))
    )
    with pytest.raises(CollisionError, match=name):
        iam.ensure_lambda_role(backend, cfg, KEY, TOPIC)


def test_replication_kms_statements_follow_the_s3_replication_docs(backend: Backend, cfg: MigrationConfig) -> None:
    """S3 User Guide, replicating encrypted objects: kms:Decrypt of source objects only via S3 in the source
    region for the source buckets' objects, kms:Encrypt of replicas only via S3 in the destination region for
    the destination buckets' objects; with S3 Bucket Keys the context is the bucket ARN, so both forms are
    listed. The conditions must survive the round trip through IAM."""
    names = resource_names(cfg)
    src = sorted(f"arn:aws:s3:::{b}" for b in names.buckets)
    dst = sorted(f"arn:aws:s3:::{b}" for b in names.buckets.values())
    out = iam.ensure_replication_role(backend, cfg, KEY)
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
