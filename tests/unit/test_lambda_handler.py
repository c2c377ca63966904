"""The validation Lambda's handler: pure rules on describe outputs, and in-process runs against moto."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.names import resource_names
from tasks.provision.lambda_ import function_environment
from tasks.validate.validator_input import parse_pairs

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


# ---------------------------------------------------------------- quick data checks (pairs)

SOURCE_REGION = "us-east-1"


def test_pairs_from_event_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_pairs("a=a-eu, b=b-eu,") == [{"source": "a", "target": "a-eu"}, {"source": "b", "target": "b-eu"}]
    assert parse_pairs("") == [] and parse_pairs(None) == []
    with pytest.raises(ValueError, match="source and a target"):
        parse_pairs("lonely")
    monkeypatch.setenv("BUCKET_PAIRS", "s1=t1")
    monkeypatch.setenv("TABLE_PAIRS", "ts=tt")
    monkeypatch.setenv("BUCKETS", "other")
    monkeypatch.setenv("TABLES", "")
    s = h.settings({})
    assert s["pairs"] == {"buckets": [{"source": "s1", "target": "t1"}], "tables": [{"source": "ts", "target": "tt"}]}
    # Pair targets get the configuration checks too, once.
    assert s["buckets"] == ["other", "t1"] and s["tables"] == ["tt"]
    # The event's pairs win over the environment's, kind by kind.
    s = h.settings({"pairs": {"buckets": [{"source": "x", "target": "y"}]}, "buckets": []})
    assert s["pairs"]["buckets"] == [{"source": "x", "target": "y"}]
    assert s["pairs"]["tables"] == [{"source": "ts", "target": "tt"}]
    assert s["buckets"] == ["y"]


def test_provisioned_environment_reads_back_as_pairs(cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """What function_environment writes is what settings() reads: every source -> target pair."""
    names = resource_names(cfg)
    env = function_environment(cfg, names, "arn:aws:sns:eu-west-1:1:t", "arn:key")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    s = h.settings({})
    assert s["sourceRegion"] == cfg.source_region and s["targetRegion"] == cfg.target_region
    assert {p["source"]: p["target"] for p in s["pairs"]["buckets"]} == names.buckets
    assert {p["source"]: p["target"] for p in s["pairs"]["tables"]} == names.tables
    assert sorted(s["buckets"]) == sorted(names.buckets.values())
    assert sorted(s["tables"]) == sorted(names.tables.values())


def test_evaluate_keys_pure() -> None:
    src = {"objects": {"a": 1, "b": 2, "c": 3, "d": 4}}
    dst = {"objects": {"a": 1, "b": 20, "e": 5}}
    check = h.evaluate_keys("bucket", "src", "dst", src, dst, limit=1)
    assert check["ok"] is False and check["check"] == "data.keys"
    assert check["resource"] == "dst" and check["source"] == "src"
    assert check["counts"] == {"source": 4, "target": 3, "missing": 2, "extra": 1, "different": 1}
    assert check["keys"] == {"missing": ["c"], "extra": ["e"], "different": ["b"]}  # first `limit` of each
    assert check["detail"].startswith("2 missing, 1 extra, 1 size-different (4 objects in src, 3 in target)")
    assert "missing: c ..." in check["detail"]
    same = h.evaluate_keys("bucket", "src", "dst", src, src)
    assert same["ok"] is True and same["keys"] == {} and "all 4 objects of src present" in same["detail"]
    gone = h.evaluate_keys("table", "s", "t", {"keys": {}}, {"error": {"code": "ResourceNotFoundException"}})
    assert gone["ok"] is False and gone["detail"] == "target table t does not exist"


BUCKET_SRC, BUCKET_DST = "data-src", "data-src-eu"
TABLE_SRC, TABLE_DST = "orders", "orders-eu"


def _bucket_with(backend: Backend, region: str, name: str, objects: dict[str, bytes]) -> None:
    s3 = backend.client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)


def _ddb_table(backend: Backend, region: str, name: str, items: list[dict[str, Any]], ttl: str | None) -> None:
    ddb = backend.client("dynamodb", region)
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
    for item in items:
        ddb.put_item(TableName=name, Item=item)


OBJECTS = {"a.txt": b"alpha", "dir/b.bin": b"\x00" * 100, "dir/c.csv": b"x,y\n1,2\n"}
ITEMS = [
    {"pk": {"S": f"user#{i}"}, "sk": {"N": str(i)}, "payload": {"S": "p" * i}, "select": {"S": "reserved word"}}
    for i in range(25)
]


def _migration(
    backend: Backend,
    *,
    target_objects: dict[str, bytes] | None = None,
    target_items: list[dict[str, Any]] | None = None,
    source_extra_items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Source (us-east-1) and well-configured target (eu-west-1) bucket and table; the handler's event."""
    key = _key(backend)
    _bucket_with(backend, SOURCE_REGION, BUCKET_SRC, OBJECTS)
    _good_bucket(backend, BUCKET_DST, key)
    for k, body in (OBJECTS if target_objects is None else target_objects).items():
        backend.client("s3", REGION).put_object(Bucket=BUCKET_DST, Key=k, Body=body)
    _ddb_table(backend, SOURCE_REGION, TABLE_SRC, ITEMS + (source_extra_items or []), ttl="expiresAt")
    _table_like_target(backend, key, ITEMS if target_items is None else target_items)
    topic, queue = _topic_with_queue(backend)
    return {
        "event": {
            "sourceRegion": SOURCE_REGION,
            "targetRegion": REGION,
            "pairs": {
                "buckets": [{"source": BUCKET_SRC, "target": BUCKET_DST}],
                "tables": [{"source": TABLE_SRC, "target": TABLE_DST}],
            },
            "topicArn": topic,
            "kmsKeyArn": key,
        },
        "queue": queue,
    }


def _table_like_target(backend: Backend, key: str, items: list[dict[str, Any]]) -> None:
    """The source's key schema, configured as provisioning leaves a target (stream, PITR, SSE-KMS)."""
    ddb = backend.client("dynamodb", REGION)
    ddb.create_table(
        TableName=TABLE_DST,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
    )
    ddb.update_continuous_backups(
        TableName=TABLE_DST, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for item in items:
        ddb.put_item(TableName=TABLE_DST, Item=item)


def _data_checks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["resource"]: c for c in result["checks"] if c["check"] == "data.keys"}


def test_identical_pairs_pass(backend: Backend) -> None:
    m = _migration(backend)
    result = h.handler(m["event"], None)
    assert result["ok"] is True, [c for c in result["checks"] if not c["ok"]]
    data = _data_checks(result)
    assert data[BUCKET_DST]["counts"] == {"source": 3, "target": 3, "missing": 0, "extra": 0, "different": 0}
    assert data[TABLE_DST]["counts"] == {
        "source": 25,
        "target": 25,
        "missing": 0,
        "extra": 0,
        "different": 0,
        "expiredSkipped": 0,
        "expiredSkippedTarget": 0,
    }
    # Configuration checks of the pair targets ran too (3 per bucket, 3 per table), plus 2 data checks.
    assert len(result["checks"]) == 8
    assert result["notified"] is False and _messages(backend, m["queue"]) == []


def _assert_fails_and_notifies(backend: Backend, m: dict[str, Any], resource: str, **counts: int) -> dict[str, Any]:
    result = h.handler(m["event"], None)
    assert result["ok"] is False
    failed = [c for c in result["checks"] if not c["ok"]]
    assert [(c["resource"], c["check"]) for c in failed] == [(resource, "data.keys")]
    check = failed[0]
    assert {k: check["counts"][k] for k in counts} == counts
    assert result["notified"] is True
    messages = _messages(backend, m["queue"])
    assert [msg["Message"] for msg in messages] == [result["summary"]]
    assert f"{resource} data.keys (" in result["summary"]
    return check


def test_missing_object_fails(backend: Backend) -> None:
    m = _migration(backend, target_objects={k: v for k, v in OBJECTS.items() if k != "dir/b.bin"})
    check = _assert_fails_and_notifies(backend, m, BUCKET_DST, missing=1, extra=0, different=0, target=2)
    assert check["keys"] == {"missing": ["dir/b.bin"]}
    assert "missing: dir/b.bin" in check["detail"]


def test_extra_object_fails(backend: Backend) -> None:
    m = _migration(backend, target_objects=OBJECTS | {"stray.log": b"?"})
    check = _assert_fails_and_notifies(backend, m, BUCKET_DST, missing=0, extra=1, different=0)
    assert check["keys"] == {"extra": ["stray.log"]}


def test_size_difference_fails(backend: Backend) -> None:
    m = _migration(backend, target_objects=OBJECTS | {"a.txt": b"alpha, longer"})
    check = _assert_fails_and_notifies(backend, m, BUCKET_DST, missing=0, extra=0, different=1)
    assert check["keys"] == {"different": ["a.txt"]}
    assert "1 size-different" in check["detail"]


def test_missing_item_fails(backend: Backend) -> None:
    m = _migration(backend, target_items=ITEMS[:-2])
    check = _assert_fails_and_notifies(backend, m, TABLE_DST, missing=2, extra=0, source=25, target=23)
    # Keys are digest.key_string()s: the same text the flow's report lists.
    assert check["keys"]["missing"] == sorted(
        ['{"pk":{"S":"user#23"},"sk":{"N":"23"}}', '{"pk":{"S":"user#24"},"sk":{"N":"24"}}']
    )


def test_expired_item_only_in_source_passes(backend: Backend) -> None:
    past = str(int(h.time.time()) - 3600)
    future = str(int(h.time.time()) + 3600)
    expired = {"pk": {"S": "gone"}, "sk": {"N": "1"}, "expiresAt": {"N": past}}
    living = {"pk": {"S": "kept"}, "sk": {"N": "1"}, "expiresAt": {"N": future}}
    m = _migration(backend, source_extra_items=[expired, living], target_items=[*ITEMS, living])
    result = h.handler(m["event"], None)
    assert result["ok"] is True, [c for c in result["checks"] if not c["ok"]]
    counts = _data_checks(result)[TABLE_DST]["counts"]
    assert counts["source"] == 26 and counts["target"] == 26 and counts["expiredSkipped"] == 1
    assert "TTL-expired left out: 1 source, 0 target" in _data_checks(result)[TABLE_DST]["detail"]
    # A not-yet-expired item missing from the target is still reported.
    backend.client("dynamodb", REGION).delete_item(TableName=TABLE_DST, Key={"pk": {"S": "kept"}, "sk": {"N": "1"}})
    again = _data_checks(h.handler(m["event"], None))[TABLE_DST]
    assert again["ok"] is False and again["keys"] == {"missing": ['{"pk":{"S":"kept"},"sk":{"N":"1"}}']}


def test_pairs_from_environment_and_missing_source(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _migration(backend)
    event = m["event"]
    monkeypatch.setenv("TARGET_REGION", REGION)
    monkeypatch.setenv("BUCKETS", BUCKET_DST)
    monkeypatch.setenv("TABLES", TABLE_DST)
    monkeypatch.setenv("BUCKET_PAIRS", f"{BUCKET_SRC}={BUCKET_DST},no-such-bucket={BUCKET_DST}")
    monkeypatch.setenv("TABLE_PAIRS", f"{TABLE_SRC}={TABLE_DST}")
    monkeypatch.setenv("KMS_KEY_ARN", event["kmsKeyArn"])
    monkeypatch.delenv("TOPIC_ARN", raising=False)
    monkeypatch.delenv("SOURCE_REGION", raising=False)
    with pytest.raises(ValueError, match="sourceRegion"):
        h.handler({}, None)
    monkeypatch.setenv("SOURCE_REGION", SOURCE_REGION)
    result = h.handler({}, None)
    failed = [c for c in result["checks"] if not c["ok"]]
    assert [(c["source"], c["detail"]) for c in failed] == [
        ("no-such-bucket", "source bucket no-such-bucket does not exist")
    ]
    assert result["notified"] is False  # no topic known
    # One data check per pair (both bucket pairs share a target), configuration checks once per target.
    assert [(c["source"], c["resource"]) for c in result["checks"] if c["check"] == "data.keys"] == [
        (BUCKET_SRC, BUCKET_DST),
        ("no-such-bucket", BUCKET_DST),
        (TABLE_SRC, TABLE_DST),
    ]
    assert len(result["checks"]) == 3 + 3 + 3


# ---------------------------------------------------------------- the recorded result (asynchronous runs)


def _checkpoint_table(backend: Backend, name: str) -> None:
    backend.client("dynamodb", REGION).create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_an_async_run_records_its_result_where_the_flow_reads_it(backend: Backend) -> None:
    key = _key(backend)
    _good_bucket(backend, "rec-bucket-eu", key)
    _checkpoint_table(backend, "ckpt")
    result = h.handler(
        {"targetRegion": REGION, "buckets": ["rec-bucket-eu"], "runId": "r-42", "resultTable": "ckpt"}, None
    )
    item = backend.client("dynamodb", REGION).get_item(
        TableName="ckpt", Key={"pk": {"S": "validator"}, "sk": {"S": "r-42"}}, ConsistentRead=True
    )["Item"]
    assert item["ok"] == {"BOOL": True} and item["total"] == {"N": str(len(result["checks"]))}
    assert item["summary"]["S"] == result["summary"] and json.loads(item["failedChecks"]["S"]) == []


def test_a_run_that_cannot_record_its_result_fails_so_the_dlq_gets_it(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key(backend)
    _good_bucket(backend, "rec2-bucket-eu", key)
    monkeypatch.setenv("RESULT_TABLE", "no-such-table")
    with pytest.raises(Exception, match=r"ResourceNotFoundException|not found"):
        h.handler({"targetRegion": REGION, "buckets": ["rec2-bucket-eu"], "runId": "r-1"}, None)
    # Without a run id (a direct invoke from the console) nothing is recorded and nothing fails.
    assert h.handler({"targetRegion": REGION, "buckets": ["rec2-bucket-eu"]}, None)["ok"] is True


def test_result_item_fits_in_a_dynamodb_item() -> None:
    checks = [{"resource": f"r{i}", "check": "data.keys", "ok": False, "detail": "x" * 1000} for i in range(2000)]
    item = h.result_item("r", {"ok": False, "checks": checks, "summary": "s", "notified": True}, "t")
    assert item["failed"] == {"N": "2000"}
    assert 0 < len(json.loads(item["failedChecks"]["S"])) < 2000
    assert len(json.dumps(item).encode()) < 400_000
