"""The migration CMK: key policy (pure), then create / idempotence / drift repair / collision against moto."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision import cloudwatch
from tasks.provision.cloudwatch import alarm_prefix
from tasks.provision.kms import (
    ALARMS_SID,
    LOGS_SID,
    ROOT_SID,
    ensure_key,
    ensure_source_key,
    key_policy,
    policies_equal,
    service_grants,
)

ACCOUNT = "123456789012"
TARGET = "eu-west-1"


def kms(backend: Backend) -> Any:
    return backend.client("kms", TARGET)


def _policy(cfg: MigrationConfig, region: str = TARGET, log_group: bool = True) -> dict[str, Any]:
    names = resource_names(cfg)
    return key_policy(
        ACCOUNT, region, alarm_name_prefix=alarm_prefix(cfg), log_group=names.log_group if log_group else None
    )


# The policy every key had before issue 8: six service principals, no conditions.
OLD_SERVICES = [
    "cloudwatch.amazonaws.com",
    "dynamodb.amazonaws.com",
    "lambda.amazonaws.com",
    f"logs.{TARGET}.amazonaws.com",
    "s3.amazonaws.com",
    "sns.amazonaws.com",
]


def _old_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": ROOT_SID,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "AllowUseByMigrationServices",
                "Effect": "Allow",
                "Principal": {"Service": OLD_SERVICES},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"],
                "Resource": "*",
            },
        ],
    }


def test_key_policy_grants_services_only_what_is_ours(cfg: MigrationConfig) -> None:
    """Root delegates to IAM; only CloudWatch Logs (our log group) and CloudWatch alarms (ours, this account)
    act as themselves, each under conditions; S3, DynamoDB, Lambda and SNS get no principal grant."""
    names = resource_names(cfg)
    policy = _policy(cfg)
    root = policy["Statement"][0]
    assert root["Sid"] == ROOT_SID
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert (root["Action"], root["Resource"], root["Effect"]) == ("kms:*", "*", "Allow")
    assert [s for s in policy["Statement"][1:] if "AWS" in s["Principal"]] == []

    grants = service_grants(policy)
    assert sorted(grants) == ["cloudwatch.amazonaws.com", f"logs.{TARGET}.amazonaws.com"]
    assert all(s.get("Condition") for s in policy["Statement"][1:])  # no unconditioned service grant

    logs = grants[f"logs.{TARGET}.amazonaws.com"]
    assert logs["sid"] == LOGS_SID
    group_arn = f"arn:aws:logs:{TARGET}:{ACCOUNT}:log-group:/aws/lambda/{names.lambda_function}"
    assert logs["conditions"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": group_arn}}

    alarms = grants["cloudwatch.amazonaws.com"]
    assert alarms["sid"] == ALARMS_SID
    assert alarms["actions"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    pattern = alarms["conditions"]["ArnLike"]["aws:SourceArn"]
    assert pattern == f"arn:aws:cloudwatch:{TARGET}:{ACCOUNT}:alarm:migration-alarm-eu-20261128-dev-*"
    assert alarms["conditions"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    # Every alarm this migration creates in the target region matches; another environment's does not.
    specs = cloudwatch.alarm_specs(cfg, names, list(names.buckets), "rule")
    for spec in specs:
        if cloudwatch.alarm_region(cfg, spec) == TARGET:
            assert fnmatchcase(f"arn:aws:cloudwatch:{TARGET}:{ACCOUNT}:alarm:{spec['AlarmName']}", pattern)
    other = cfg.model_copy(update={"environment_suffix": "prod"})
    theirs = cloudwatch.alarm_specs(other, resource_names(other), list(names.buckets), "rule")[0]["AlarmName"]
    assert not fnmatchcase(f"arn:aws:cloudwatch:{TARGET}:{ACCOUNT}:alarm:{theirs}", pattern)

    # The source region's key: root + our alarms there, nothing else.
    source = service_grants(_policy(cfg, "us-east-1", log_group=False))
    assert list(source) == ["cloudwatch.amazonaws.com"]
    assert source["cloudwatch.amazonaws.com"]["conditions"]["ArnLike"]["aws:SourceArn"].startswith(
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:migration-alarm-"
    )
    china = _policy(cfg, "cn-north-1")
    assert china["Statement"][0]["Principal"]["AWS"].startswith("arn:aws-cn:")
    assert service_grants(china)["logs.cn-north-1.amazonaws.com"]["conditions"]["ArnEquals"][
        "kms:EncryptionContext:aws:logs:arn"
    ].startswith("arn:aws-cn:logs:cn-north-1:")


def test_policies_equal_ignores_order_and_one_item_lists(cfg: MigrationConfig) -> None:
    a = _old_policy()
    b = json.loads(json.dumps(a))
    b["Statement"].reverse()
    b["Statement"][1]["Action"] = [b["Statement"][1]["Action"]]  # root: "kms:*" -> ["kms:*"]
    b["Statement"][0]["Principal"]["Service"].reverse()
    b["Id"] = "other"
    assert policies_equal(a, b)
    b["Statement"][0]["Principal"]["Service"].append("ec2.amazonaws.com")
    assert not policies_equal(a, b)
    assert not policies_equal(_old_policy(), _policy(cfg))


def test_ensure_key_creates_everything_and_reads_it_back(backend: Backend, cfg: MigrationConfig) -> None:
    out = ensure_key.fn(backend, cfg, ACCOUNT)
    alias = resource_names(cfg).kms_alias
    assert out["created"] is True and out["repaired"] == []
    assert out["alias"] == alias == "alias/migration-key-eu-20261128-dev"
    assert out["rotationEnabled"] is True
    assert out["keyState"] == "Enabled" and out["keyManager"] == "CUSTOMER"
    assert out["policyStatements"] == [ROOT_SID, LOGS_SID, ALARMS_SID]
    assert sorted(out["serviceGrants"]) == ["cloudwatch.amazonaws.com", f"logs.{TARGET}.amazonaws.com"]
    assert out["arn"].startswith(f"arn:aws:kms:{TARGET}:{ACCOUNT}:key/")

    # Straight from moto, not from our return value.
    client = kms(backend)
    meta = client.describe_key(KeyId=alias)["KeyMetadata"]
    assert meta["KeyId"] == out["keyId"] and meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert client.get_key_rotation_status(KeyId=out["keyId"])["KeyRotationEnabled"] is True
    stored = json.loads(client.get_key_policy(KeyId=out["keyId"], PolicyName="default")["Policy"])
    assert policies_equal(stored, _policy(cfg))
    assert service_grants(stored) == out["serviceGrants"]  # the conditions survive the round trip
    tags = {t["TagKey"]: t["TagValue"] for t in client.list_resource_tags(KeyId=out["keyId"])["Tags"]}
    assert cfg.tags().items() <= tags.items()
    assert backend.client("kms", "us-east-1").list_keys()["Keys"] == []  # the target key: nothing in the source


def test_ensure_key_twice_creates_nothing_new(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key.fn(backend, cfg, ACCOUNT)
    keys = kms(backend).list_keys()["Keys"]
    second = ensure_key.fn(backend, cfg, ACCOUNT)
    assert second["created"] is False and second["repaired"] == []
    assert second["keyId"] == first["keyId"]
    assert kms(backend).list_keys()["Keys"] == keys
    aliases = [a for a in kms(backend).list_aliases()["Aliases"] if a["AliasName"] == first["alias"]]
    assert len(aliases) == 1


def test_ensure_key_repairs_rotation_and_policy(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key.fn(backend, cfg, ACCOUNT)
    client = kms(backend)
    client.disable_key_rotation(KeyId=first["keyId"])
    loose = _policy(cfg)
    del loose["Statement"][2]["Condition"]["StringEquals"]  # aws:SourceAccount dropped
    client.put_key_policy(KeyId=first["keyId"], PolicyName="default", Policy=json.dumps(loose))

    out = ensure_key.fn(backend, cfg, ACCOUNT)
    assert out["created"] is False
    assert sorted(out["repaired"]) == ["keyPolicy", "rotation"]
    assert client.get_key_rotation_status(KeyId=first["keyId"])["KeyRotationEnabled"] is True
    stored = json.loads(client.get_key_policy(KeyId=first["keyId"], PolicyName="default")["Policy"])
    assert policies_equal(stored, _policy(cfg))


def test_key_with_the_old_unconditioned_policy_is_tightened(backend: Backend, cfg: MigrationConfig) -> None:
    """A key provisioned before issue 8 (six service principals, no conditions) is repaired on the next run."""
    first = ensure_key.fn(backend, cfg, ACCOUNT)
    client = kms(backend)
    client.put_key_policy(KeyId=first["keyId"], PolicyName="default", Policy=json.dumps(_old_policy()))
    out = ensure_key.fn(backend, cfg, ACCOUNT)
    assert out["repaired"] == ["keyPolicy"]
    stored = json.loads(client.get_key_policy(KeyId=first["keyId"], PolicyName="default")["Policy"])
    assert sorted(service_grants(stored)) == ["cloudwatch.amazonaws.com", f"logs.{TARGET}.amazonaws.com"]
    assert ensure_key.fn(backend, cfg, ACCOUNT)["repaired"] == []


def test_source_key_is_its_own_tagged_idempotent_key(backend: Backend, cfg: MigrationConfig) -> None:
    """The source-region alert key: named from tasks.names, in the source region, tagged, rotated, policy =
    root + our alarms there; a re-run creates nothing."""
    target = ensure_key.fn(backend, cfg, ACCOUNT)
    out = ensure_source_key(backend, cfg, ACCOUNT)
    alias = resource_names(cfg).source_kms_alias
    assert out["created"] is True and out["alias"] == alias and out["region"] == "us-east-1"
    assert out["arn"].startswith(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/") and out["keyId"] != target["keyId"]
    assert out["rotationEnabled"] is True and out["policyStatements"] == [ROOT_SID, ALARMS_SID]
    src = backend.client("kms", "us-east-1")
    stored = json.loads(src.get_key_policy(KeyId=out["keyId"], PolicyName="default")["Policy"])
    assert policies_equal(stored, _policy(cfg, "us-east-1", log_group=False))
    tags = {t["TagKey"]: t["TagValue"] for t in src.list_resource_tags(KeyId=out["keyId"])["Tags"]}
    assert cfg.tags().items() <= tags.items()
    keys = src.list_keys()["Keys"]
    again = ensure_source_key(backend, cfg, ACCOUNT)
    assert again["created"] is False and again["repaired"] == [] and again["keyId"] == out["keyId"]
    assert src.list_keys()["Keys"] == keys


def test_ensure_key_reenables_a_disabled_key(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key.fn(backend, cfg, ACCOUNT)
    kms(backend).disable_key(KeyId=first["keyId"])
    out = ensure_key.fn(backend, cfg, ACCOUNT)
    assert "enabled" in out["repaired"] and out["keyState"] == "Enabled"


def test_crash_before_alias_reuses_the_tagged_key(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key.fn(backend, cfg, ACCOUNT)
    client = kms(backend)
    client.delete_alias(AliasName=first["alias"])  # as if we crashed between create_key and create_alias
    count = len(client.list_keys()["Keys"])

    out = ensure_key.fn(backend, cfg, ACCOUNT)
    assert out["created"] is False and out["repaired"] == ["alias"]
    assert out["keyId"] == first["keyId"]
    assert len(client.list_keys()["Keys"]) == count
    assert client.describe_key(KeyId=first["alias"])["KeyMetadata"]["KeyId"] == first["keyId"]


def test_key_of_another_migration_is_not_reused(backend: Backend, cfg: MigrationConfig) -> None:
    other = cfg.model_copy(update={"timestamp": "20250101"})
    theirs = ensure_key.fn(backend, other, ACCOUNT)
    ours = ensure_key.fn(backend, cfg, ACCOUNT)
    assert ours["created"] is True and ours["keyId"] != theirs["keyId"]


def test_alias_on_a_foreign_key_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    client = kms(backend)
    foreign = client.create_key(Description="someone else's")["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName=resource_names(cfg).kms_alias, TargetKeyId=foreign)
    with pytest.raises(CollisionError) as exc:
        ensure_key.fn(backend, cfg, ACCOUNT)
    assert "\n" not in str(exc.value) and resource_names(cfg).kms_alias in str(exc.value)
    assert len(client.list_keys()["Keys"]) == 1
