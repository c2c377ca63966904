"""Target buckets: pure policy/lifecycle helpers, then create / idempotence / drift / collision against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

import tasks.provision.s3 as s3mod
from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import CollisionError
from tasks.provision.s3 import (
    PUBLIC_ACCESS_BLOCK,
    describe_bucket,
    ensure_bucket,
    is_tls_only,
    lifecycle_rules,
    summarize_lifecycle,
    tls_only_policy,
)

SOURCE = "us-east-1"
TARGET = "eu-west-1"


def make_source_and_key(backend: Backend, cfg: MigrationConfig) -> str:
    """The source bucket (us-east-1, no LocationConstraint) and a target-region CMK; returns the key ARN."""
    src = backend.client("s3", SOURCE)
    for b in cfg.s3_buckets:
        src.create_bucket(Bucket=b.name)
    return str(backend.client("kms", TARGET).create_key()["KeyMetadata"]["Arn"])


def s3(backend: Backend) -> Any:
    return backend.client("s3", TARGET)


@pytest.fixture
def tls_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Act as a backend that evaluates aws:SecureTransport (AWS over HTTPS): our own requests stay allowed.

    moto 5.2 ignores the Bool condition operator, so there the TLS-only Deny refuses everything and
    ensure_bucket (correctly) rolls it back; these tests cover the path real AWS takes.
    """
    monkeypatch.setattr(s3mod, "_probe", lambda client, bucket: "allowed")


def test_tls_only_policy_is_recognised_and_weaker_ones_are_not() -> None:
    policy = tls_only_policy("b-1")
    (st,) = policy["Statement"]
    assert st["Effect"] == "Deny" and st["Action"] == "s3:*" and st["Principal"] == "*"
    assert st["Resource"] == ["arn:aws:s3:::b-1", "arn:aws:s3:::b-1/*"]
    assert st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert is_tls_only(policy, "b-1")
    assert not is_tls_only(policy, "other-bucket")
    assert not is_tls_only(None, "b-1")
    objects_only = json.loads(json.dumps(policy))
    objects_only["Statement"][0]["Resource"] = "arn:aws:s3:::b-1/*"
    assert not is_tls_only(objects_only, "b-1")
    allow = json.loads(json.dumps(policy))
    allow["Statement"][0]["Effect"] = "Allow"
    assert not is_tls_only(allow, "b-1")
    get_only = json.loads(json.dumps(policy))
    get_only["Statement"][0]["Action"] = ["s3:GetObject"]
    assert not is_tls_only(get_only, "b-1")


def test_lifecycle_rules_follow_the_spec(cfg: MigrationConfig) -> None:
    (rule,) = summarize_lifecycle(lifecycle_rules(cfg.s3_buckets[1]))
    assert rule["status"] == "Enabled"
    assert (rule["expirationDays"], rule["noncurrentExpirationDays"], rule["abortMultipartDays"]) == (180, 180, 7)


def test_ensure_bucket_creates_and_reads_back(backend: Backend, cfg: MigrationConfig) -> None:
    key_arn = make_source_and_key(backend, cfg)
    spec = cfg.s3_buckets[0]
    out = ensure_bucket.fn(backend, cfg, spec, key_arn)
    name = "analytics-raw-data-eu-20261128-dev"
    assert out["created"] is True and out["repaired"] == []
    assert (out["source"], out["name"], out["region"]) == (spec.name, name, TARGET)
    assert out["arn"] == f"arn:aws:s3:::{name}"
    assert out["versioning"] == "Enabled"
    assert out["encryption"] == {"algorithm": "aws:kms", "kmsKeyArn": key_arn, "bucketKeyEnabled": True}
    assert out["publicAccessBlock"] == PUBLIC_ACCESS_BLOCK
    assert out["lifecycle"] == [
        {
            "id": "region-migration-expiry",
            "status": "Enabled",
            "expirationDays": 90,
            "noncurrentExpirationDays": 90,
            "abortMultipartDays": 7,
        }
    ]
    assert out["tags"] == cfg.tags()

    # Straight from moto.
    c = s3(backend)
    assert c.get_bucket_location(Bucket=name)["LocationConstraint"] == TARGET
    assert c.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = c.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    assert rule["BucketKeyEnabled"] is True
    assert c.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCK
    # The TLS-only policy is either in place, or measured as unsupported and absent: never claimed falsely.
    if out["tlsOnlyPolicy"]:
        assert is_tls_only(json.loads(c.get_bucket_policy(Bucket=name)["Policy"]), name)
        assert "tlsOnlyPolicy" not in out["notSupportedByBackend"]
    else:
        assert "tlsOnlyPolicy" in out["notSupportedByBackend"]
        assert s3mod._read(c.get_bucket_policy, Bucket=name) is None
    # Either way the migration can write, and new objects are encrypted with the CMK.
    c.put_object(Bucket=name, Key="k", Body=b"x")
    head = c.head_object(Bucket=name, Key="k")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    # moto drops tags given to CreateBucket; that too is measured (we tagged right after).
    assert set(out["notSupportedByBackend"]) <= {"tagsAtCreateBucket", "tlsOnlyPolicy"}


def test_tls_policy_kept_where_the_backend_honours_it(
    backend: Backend, cfg: MigrationConfig, tls_honoured: None
) -> None:
    key_arn = make_source_and_key(backend, cfg)
    out = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    assert out["tlsOnlyPolicy"] is True and "tlsOnlyPolicy" not in out["notSupportedByBackend"]
    assert is_tls_only(json.loads(s3(backend).get_bucket_policy(Bucket=out["name"])["Policy"]), out["name"])


def test_tls_policy_rolled_back_when_it_blocks_our_own_requests(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_arn = make_source_and_key(backend, cfg)
    name = cfg.target_name(cfg.s3_buckets[0].name)
    s3(backend).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": TARGET})
    tags = [{"Key": k, "Value": v} for k, v in cfg.tags().items()]
    s3(backend).put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})
    grant = {
        "Sid": "ReplicationGrant",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:ReplicateObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    previous = {"Version": "2012-10-17", "Statement": [grant]}
    s3(backend).put_bucket_policy(Bucket=name, Policy=json.dumps(previous))
    answers = iter(["allowed", "denied"])  # allowed before the policy, denied once it is in place
    monkeypatch.setattr(s3mod, "_probe", lambda client, bucket: next(answers))

    out = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    assert out["tlsOnlyPolicy"] is False and "tlsOnlyPolicy" in out["notSupportedByBackend"]
    assert "tlsOnlyPolicy" not in out["repaired"]
    assert json.loads(s3(backend).get_bucket_policy(Bucket=name)["Policy"]) == previous


def test_ensure_bucket_twice_creates_nothing_new(backend: Backend, cfg: MigrationConfig) -> None:
    key_arn = make_source_and_key(backend, cfg)
    first = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    buckets = s3(backend).list_buckets()["Buckets"]
    second = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    assert second["created"] is False and second["repaired"] == []
    assert s3(backend).list_buckets()["Buckets"] == buckets
    assert set(second["notSupportedByBackend"]) == set(first["notSupportedByBackend"]) - {"tagsAtCreateBucket"}
    drop = ("created", "repaired", "notSupportedByBackend")
    assert {k: v for k, v in second.items() if k not in drop} == {k: v for k, v in first.items() if k not in drop}


def test_ensure_bucket_repairs_drift(backend: Backend, cfg: MigrationConfig, tls_honoured: None) -> None:
    key_arn = make_source_and_key(backend, cfg)
    spec = cfg.s3_buckets[0]
    name = ensure_bucket.fn(backend, cfg, spec, key_arn)["name"]
    c = s3(backend)
    c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    c.delete_public_access_block(Bucket=name)
    c.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    c.delete_bucket_policy(Bucket=name)
    c.delete_bucket_lifecycle(Bucket=name)
    tags = {k: v for k, v in cfg.tags().items() if k != "SourceRegion"}
    c.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    assert describe_bucket(backend, TARGET, name)["versioning"] == "Suspended"

    out = ensure_bucket.fn(backend, cfg, spec, key_arn)
    assert out["created"] is False
    assert sorted(out["repaired"]) == sorted(
        ["versioning", "publicAccessBlock", "encryption", "tlsOnlyPolicy", "lifecycle", "tags"]
    )
    back = describe_bucket(backend, TARGET, name)
    assert back["versioning"] == "Enabled"
    assert back["publicAccessBlock"] == PUBLIC_ACCESS_BLOCK
    assert back["encryption"] == {"algorithm": "aws:kms", "kmsKeyArn": key_arn, "bucketKeyEnabled": True}
    assert back["tlsOnlyPolicy"] is True and back["lifecycle"][0]["expirationDays"] == 90
    assert back["tags"] == cfg.tags()
    assert ensure_bucket.fn(backend, cfg, spec, key_arn)["repaired"] == []


def test_policy_repair_keeps_other_statements(backend: Backend, cfg: MigrationConfig, tls_honoured: None) -> None:
    key_arn = make_source_and_key(backend, cfg)
    name = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)["name"]
    extra = {
        "Sid": "ReplicationGrant",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "s3:ReplicateObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    s3(backend).put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [extra]}))
    out = ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    assert out["repaired"] == ["tlsOnlyPolicy"]
    assert out["tlsOnlyPolicy"] is True
    assert out["policyStatements"] == ["ReplicationGrant", "DenyInsecureTransport"]


def test_untagged_existing_bucket_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    key_arn = make_source_and_key(backend, cfg)
    name = cfg.target_name(cfg.s3_buckets[0].name)
    s3(backend).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": TARGET})
    with pytest.raises(CollisionError) as exc:
        ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)
    assert name in str(exc.value) and "\n" not in str(exc.value)
    # Nothing was changed on the foreign bucket.
    assert s3(backend).get_bucket_versioning(Bucket=name).get("Status") is None


def test_bucket_of_another_batch_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    key_arn = make_source_and_key(backend, cfg)
    other = cfg.model_copy(update={"migration_batch": "batch-999"})
    ensure_bucket.fn(backend, other, other.s3_buckets[0], key_arn)
    with pytest.raises(CollisionError):
        ensure_bucket.fn(backend, cfg, cfg.s3_buckets[0], key_arn)


def test_target_in_us_east_1_omits_location_constraint(backend: Backend, cfg: MigrationConfig) -> None:
    flipped = cfg.model_copy(update={"source_region": "eu-west-1", "target_region": "us-east-1"})
    key_arn = str(backend.client("kms", "us-east-1").create_key()["KeyMetadata"]["Arn"])
    out = ensure_bucket.fn(backend, flipped, flipped.s3_buckets[0], key_arn)
    assert out["created"] is True and out["region"] == "us-east-1"
    assert out["name"] == "analytics-raw-data-us-20261128-dev"
    loc = backend.client("s3", "us-east-1").get_bucket_location(Bucket=out["name"])["LocationConstraint"]
    assert loc is None


def test_describe_bucket_of_a_bare_bucket_reports_absences(backend: Backend) -> None:
    c = s3(backend)
    c.create_bucket(Bucket="bare-bucket-1", CreateBucketConfiguration={"LocationConstraint": TARGET})
    out = describe_bucket(backend, TARGET, "bare-bucket-1")
    assert out["region"] == TARGET and out["versioning"] == "Disabled"
    assert out["publicAccessBlock"] is None and out["lifecycle"] == []
    assert out["tlsOnlyPolicy"] is False and out["tags"] == {}
