"""The migration CMK: key policy (pure), then create / idempotence / drift repair / collision against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.names import resource_names
from tasks.provision.kms import ROOT_SID, SERVICE_SID, ensure_key, key_policy, policies_equal

ACCOUNT = "123456789012"
TARGET = "eu-west-1"


def kms(backend: Backend) -> Any:
    return backend.client("kms", TARGET)


def test_key_policy_root_admin_and_service_use_only() -> None:
    policy = key_policy(ACCOUNT, TARGET)
    root, services = policy["Statement"]
    assert root["Sid"] == ROOT_SID
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert (root["Action"], root["Resource"], root["Effect"]) == ("kms:*", "*", "Allow")
    assert services["Sid"] == SERVICE_SID
    assert set(services["Principal"]) == {"Service"}
    assert sorted(services["Principal"]["Service"]) == [
        "cloudwatch.amazonaws.com",
        "dynamodb.amazonaws.com",
        "lambda.amazonaws.com",
        "logs.eu-west-1.amazonaws.com",
        "s3.amazonaws.com",
        "sns.amazonaws.com",
    ]
    assert sorted(services["Action"]) == sorted(
        ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    )
    # No wildcard action outside the root statement.
    assert "kms:*" not in services["Action"] and "*" not in services["Action"]
    assert key_policy(ACCOUNT, "cn-north-1")["Statement"][0]["Principal"]["AWS"].startswith("arn:aws-cn:")


def test_policies_equal_ignores_order_and_one_item_lists() -> None:
    a = key_policy(ACCOUNT, TARGET)
    b = json.loads(json.dumps(a))
    b["Statement"].reverse()
    b["Statement"][1]["Action"] = [b["Statement"][1]["Action"]]  # root: "kms:*" -> ["kms:*"]
    b["Statement"][0]["Principal"]["Service"].reverse()
    b["Id"] = "other"
    assert policies_equal(a, b)
    b["Statement"][0]["Principal"]["Service"].append("ec2.amazonaws.com")
    assert not policies_equal(a, b)


def test_ensure_key_creates_everything_and_reads_it_back(backend: Backend, cfg: MigrationConfig) -> None:
    out = ensure_key(backend, cfg, ACCOUNT)
    alias = resource_names(cfg).kms_alias
    assert out["created"] is True and out["repaired"] == []
    assert out["alias"] == alias == "alias/migration-key-eu-20261128-dev"
    assert out["rotationEnabled"] is True
    assert out["keyState"] == "Enabled" and out["keyManager"] == "CUSTOMER"
    assert out["policyStatements"] == [ROOT_SID, SERVICE_SID]
    assert out["arn"].startswith(f"arn:aws:kms:{TARGET}:{ACCOUNT}:key/")

    # Straight from moto, not from our return value.
    client = kms(backend)
    meta = client.describe_key(KeyId=alias)["KeyMetadata"]
    assert meta["KeyId"] == out["keyId"] and meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert client.get_key_rotation_status(KeyId=out["keyId"])["KeyRotationEnabled"] is True
    stored = json.loads(client.get_key_policy(KeyId=out["keyId"], PolicyName="default")["Policy"])
    assert policies_equal(stored, key_policy(ACCOUNT, TARGET))
    tags = {t["TagKey"]: t["TagValue"] for t in client.list_resource_tags(KeyId=out["keyId"])["Tags"]}
    assert cfg.tags().items() <= tags.items()
    assert backend.client("kms", "us-east-1").list_keys()["Keys"] == []  # nothing in the source region


def test_ensure_key_twice_creates_nothing_new(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key(backend, cfg, ACCOUNT)
    keys = kms(backend).list_keys()["Keys"]
    second = ensure_key(backend, cfg, ACCOUNT)
    assert second["created"] is False and second["repaired"] == []
    assert second["keyId"] == first["keyId"]
    assert kms(backend).list_keys()["Keys"] == keys
    aliases = [a for a in kms(backend).list_aliases()["Aliases"] if a["AliasName"] == first["alias"]]
    assert len(aliases) == 1


def test_ensure_key_repairs_rotation_and_policy(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key(backend, cfg, ACCOUNT)
    client = kms(backend)
    client.disable_key_rotation(KeyId=first["keyId"])
    loose = key_policy(ACCOUNT, TARGET)
    loose["Statement"][1]["Principal"]["Service"].append("ec2.amazonaws.com")
    client.put_key_policy(KeyId=first["keyId"], PolicyName="default", Policy=json.dumps(loose))

    out = ensure_key(backend, cfg, ACCOUNT)
    assert out["created"] is False
    assert sorted(out["repaired"]) == ["keyPolicy", "rotation"]
    assert client.get_key_rotation_status(KeyId=first["keyId"])["KeyRotationEnabled"] is True
    stored = json.loads(client.get_key_policy(KeyId=first["keyId"], PolicyName="default")["Policy"])
    assert policies_equal(stored, key_policy(ACCOUNT, TARGET))


def test_ensure_key_reenables_a_disabled_key(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key(backend, cfg, ACCOUNT)
    kms(backend).disable_key(KeyId=first["keyId"])
    out = ensure_key(backend, cfg, ACCOUNT)
    assert "enabled" in out["repaired"] and out["keyState"] == "Enabled"


def test_crash_before_alias_reuses_the_tagged_key(backend: Backend, cfg: MigrationConfig) -> None:
    first = ensure_key(backend, cfg, ACCOUNT)
    client = kms(backend)
    client.delete_alias(AliasName=first["alias"])  # as if we crashed between create_key and create_alias
    count = len(client.list_keys()["Keys"])

    out = ensure_key(backend, cfg, ACCOUNT)
    assert out["created"] is False and out["repaired"] == ["alias"]
    assert out["keyId"] == first["keyId"]
    assert len(client.list_keys()["Keys"]) == count
    assert client.describe_key(KeyId=first["alias"])["KeyMetadata"]["KeyId"] == first["keyId"]


def test_key_of_another_migration_is_not_reused(backend: Backend, cfg: MigrationConfig) -> None:
    other = cfg.model_copy(update={"timestamp": "20250101"})
    theirs = ensure_key(backend, other, ACCOUNT)
    ours = ensure_key(backend, cfg, ACCOUNT)
    assert ours["created"] is True and ours["keyId"] != theirs["keyId"]


def test_alias_on_a_foreign_key_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    client = kms(backend)
    foreign = client.create_key(Description="someone else's")["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName=resource_names(cfg).kms_alias, TargetKeyId=foreign)
    with pytest.raises(CollisionError) as exc:
        ensure_key(backend, cfg, ACCOUNT)
    assert "\n" not in str(exc.value) and resource_names(cfg).kms_alias in str(exc.value)
    assert len(client.list_keys()["Keys"]) == 1
