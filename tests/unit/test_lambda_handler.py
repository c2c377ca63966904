"""The validation Lambda's handler: pure rules on describe outputs, and in-process runs against moto."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tasks.aws import Backend

HANDLER_PATH = Path(__file__).resolve().parents[2] / "lambda" / "validator" / "handler.py"
REGION = "eu-west-1"


def _load() -> ModuleType:
    # "lambda" is a keyword, so the package cannot be imported by name: load the file as the runtime does.
    spec = importlib.util.spec_from_file_location("validator_handler", HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["validator_handler"] = module
    spec.loader.exec_module(module)
    return module


h = _load()

GOOD_BUCKET: dict[str, Any] = {
    "versioning": {"Status": "Enabled"},
    "encryption": {
        "ServerSideEncryptionConfiguration": {
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:k/abc"}}
            ]
        }
    },
    "publicAccessBlock": {
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
    },
}


def _by_check(checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in checks}


def test_bucket_rules_pure() -> None:
    assert all(c["ok"] for c in h.evaluate_bucket("b", GOOD_BUCKET))
    bad = dict(GOOD_BUCKET)
    bad["versioning"] = {}
    bad["encryption"] = {"error": {"code": "ServerSideEncryptionConfigurationNotFoundError", "message": ""}}
    bad["publicAccessBlock"] = {"PublicAccessBlockConfiguration": {"BlockPublicAcls": True}}
    checks = _by_check(h.evaluate_bucket("b", bad))
    assert not checks["versioning"]["ok"] and "never enabled" in checks["versioning"]["detail"]
    assert not checks["encryption"]["ok"] and checks["encryption"]["detail"] == "no default encryption"
    assert not checks["publicAccessBlock"]["ok"] and "RestrictPublicBuckets" in checks["publicAccessBlock"]["detail"]
    # Wrong CMK when the expected key is known.
    wrong_key = _by_check(h.evaluate_bucket("b", GOOD_BUCKET, "arn:k/other"))
    assert not wrong_key["encryption"]["ok"]
    assert _by_check(h.evaluate_bucket("b", GOOD_BUCKET, "arn:k/abc"))["encryption"]["ok"]


def test_table_rules_pure() -> None:
    good = {
        "table": {
            "Table": {
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                "SSEDescription": {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": "arn:k/abc"},
            }
        },
        "continuousBackups": {
            "ContinuousBackupsDescription": {"PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED"}}
        },
    }
    assert [c["ok"] for c in h.evaluate_table("t", good, "arn:k/abc")] == [True, True, True]
    bad = {
        "table": {"Table": {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}}},
        "continuousBackups": {
            "ContinuousBackupsDescription": {
                "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}
            }
        },
    }
    checks = _by_check(h.evaluate_table("t", bad))
    assert {k: v["ok"] for k, v in checks.items()} == {
        "stream": False,
        "pointInTimeRecovery": False,
        "encryption": False,
    }
    missing = h.evaluate_table("t", {"table": {"error": {"code": "ResourceNotFoundException", "message": ""}}})
    assert missing == [{"resource": "t", "check": "exists", "ok": False, "detail": "table does not exist"}]


def test_summary_is_one_paragraph() -> None:
    checks = h.evaluate_bucket(
        "b",
        {
            "versioning": {"Status": "Suspended"},
            "encryption": GOOD_BUCKET["encryption"],
            "publicAccessBlock": GOOD_BUCKET["publicAccessBlock"],
        },
    )
    text = h.summarize(REGION, checks)
    assert "\n" not in text and "1 of 3 checks failed" in text and "b versioning (status Suspended)" in text


# ---------------------------------------------------------------- against moto


def _key(backend: Backend) -> str:
    return str(backend.client("kms", REGION).create_key()["KeyMetadata"]["Arn"])


def _good_bucket(backend: Backend, name: str, key: str) -> None:
    s3 = backend.client("s3", REGION)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _table(backend: Backend, name: str, key: str | None, *, stream: bool = True, pitr: bool = True) -> None:
    ddb = backend.client("dynamodb", REGION)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if key:
        kwargs["SSESpecification"] = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
    ddb.create_table(**kwargs)
    if pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


def _topic_with_queue(backend: Backend) -> tuple[str, str]:
    sns = backend.client("sns", REGION)
    sqs = backend.client("sqs", REGION)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def _messages(backend: Backend, queue_url: str) -> list[dict[str, Any]]:
    out = backend.client("sqs", REGION).receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def test_handler_passes_on_correct_configuration(backend: Backend) -> None:
    key = _key(backend)
    _good_bucket(backend, "good-bucket-eu", key)
    _table(backend, "good-table-eu", key)
    topic, queue = _topic_with_queue(backend)
    result = h.handler(
        {
            "targetRegion": REGION,
            "buckets": ["good-bucket-eu"],
            "tables": ["good-table-eu"],
            "topicArn": topic,
            "kmsKeyArn": key,
        },
        None,
    )
    assert result["ok"] is True, result["checks"]
    assert len(result["checks"]) == 6
    assert result["notified"] is False
    assert _messages(backend, queue) == []


def test_handler_fails_and_publishes_on_misconfiguration(backend: Backend) -> None:
    key = _key(backend)
    s3 = backend.client("s3", REGION)
    s3.create_bucket(Bucket="bad-bucket-eu", CreateBucketConfiguration={"LocationConstraint": REGION})
    _table(backend, "bad-table-eu", None, stream=False, pitr=False)
    topic, queue = _topic_with_queue(backend)
    result = h.handler(
        {
            "targetRegion": REGION,
            "buckets": ["bad-bucket-eu"],
            "tables": ["bad-table-eu", "missing-table-eu"],
            "topicArn": topic,
            "kmsKeyArn": key,
        },
        None,
    )
    assert result["ok"] is False
    failed = {(c["resource"], c["check"]) for c in result["checks"] if not c["ok"]}
    assert failed >= {
        ("bad-bucket-eu", "versioning"),
        ("bad-bucket-eu", "publicAccessBlock"),
        ("bad-table-eu", "stream"),
        ("bad-table-eu", "pointInTimeRecovery"),
        ("bad-table-eu", "encryption"),
        ("missing-table-eu", "exists"),
    }
    assert result["notified"] is True
    messages = _messages(backend, queue)
    assert len(messages) == 1
    assert messages[0]["Message"] == result["summary"]
    assert "bad-table-eu stream (stream disabled)" in messages[0]["Message"]
    assert messages[0]["Subject"].startswith("Region migration validation failed")


def test_handler_reads_environment(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key(backend)
    _good_bucket(backend, "env-bucket-eu", key)
    monkeypatch.setenv("TARGET_REGION", REGION)
    monkeypatch.setenv("BUCKETS", "env-bucket-eu, ")
    monkeypatch.setenv("TABLES", "")
    monkeypatch.delenv("TOPIC_ARN", raising=False)
    result = h.handler({}, None)
    assert result["ok"] is True
    assert {c["resource"] for c in result["checks"]} == {"env-bucket-eu"}
