"""End to end on MiniStack, the second emulator: the real CLIs from migrate to teardown.

moto is lenient and never replicates nor runs Lambda code; MiniStack really replicates new writes (its replicas
arrive without SSE-KMS) and runs the validator Lambda in its own interpreter. The chain is one migration, so the
steps below run in file order on one module-scoped MiniStack and share `chain`; each step asserts what the issue
asks of it, so a failing step says which part of the chain broke.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.ministack]

SOURCE, TARGET = "us-east-1", "eu-west-1"
BUCKET, TABLE = "ms-bucket", "ms-table"
TARGET_BUCKET, TARGET_TABLE = "ms-bucket-eu-20261201-ms", "ms-table-eu-20261201-ms"  # {name}-{prefix}-{ts}-{suffix}
TAGGED_KEY = "tagged/é+% report.bin"
OBJECTS, ITEMS = 30, 100
CONFIG = {
    "sourceRegion": SOURCE,
    "targetRegion": TARGET,
    "migrationBatch": "ms",
    "timestamp": "20261201",
    "environmentSuffix": "ms",
    "s3Buckets": [{"name": BUCKET, "versioning": True, "lifecycleDays": 30}],
    "dynamodbTables": [{"name": TABLE}],
}


def client(url: str, service: str, region: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # any service name, one credentials pair
        service, endpoint_url=url, region_name=region, aws_access_key_id="test", aws_secret_access_key="test"
    )


def cli(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout[-4000:] + proc.stderr[-4000:]


def bucket_state(url: str, region: str, bucket: str) -> dict[str, dict[str, Any]]:
    """Every current object: body, content type, user metadata and tags (small data: bodies in full)."""
    s3 = client(url, "s3", region)
    out: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            got = s3.get_object(Bucket=bucket, Key=obj["Key"])
            tags = s3.get_object_tagging(Bucket=bucket, Key=obj["Key"])["TagSet"]
            out[obj["Key"]] = {
                "body": got["Body"].read(),
                "contentType": got.get("ContentType"),
                "metadata": got.get("Metadata", {}),
                "tags": sorted((t["Key"], t["Value"]) for t in tags),
            }
    return out


def table_state(url: str, region: str, table: str) -> list[str]:
    """Every item, canonical JSON (set members sorted), sorted: equal lists mean equal tables."""

    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: canon(v) for k, v in value.items()}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    items: list[str] = []
    pages = client(url, "dynamodb", region).get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    for page in pages:
        for item in page["Items"]:
            for attr in item.values():
                for set_type in ("SS", "NS", "BS"):
                    if set_type in attr:
                        attr[set_type] = sorted(attr[set_type])
            items.append(json.dumps(canon(item), sort_keys=True, default=repr))
    return sorted(items)


def not_under_key(url: str, key_arn: str) -> dict[str, Any]:
    """Target objects whose HEAD does not say SSE-KMS with the migration key (key -> what HEAD said)."""
    s3 = client(url, "s3", TARGET)
    wrong: dict[str, Any] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=TARGET_BUCKET):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=TARGET_BUCKET, Key=obj["Key"])
            said = (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))
            if said != ("aws:kms", key_arn):
                wrong[obj["Key"]] = said
    return wrong


def everything(url: str) -> dict[str, Any]:
    """What the backend holds, region by region (it was reset: all of it is the seed's or the migration's)."""
    out: dict[str, Any] = {
        "buckets": sorted(b["Name"] for b in client(url, "s3", SOURCE).list_buckets()["Buckets"]),
        "roles": sorted(r["RoleName"] for r in client(url, "iam", SOURCE).list_roles()["Roles"]),
        "policies": sorted(
            p["PolicyName"] for p in client(url, "iam", SOURCE).list_policies(Scope="Local")["Policies"]
        ),
    }
    for region in (SOURCE, TARGET):
        kms = client(url, "kms", region)
        out[region] = {
            "tables": sorted(client(url, "dynamodb", region).list_tables()["TableNames"]),
            "liveKeys": sorted(
                k["KeyId"]
                for k in kms.list_keys()["Keys"]
                if kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] != "PendingDeletion"
            ),
            "aliases": sorted(
                a["AliasName"] for a in kms.list_aliases()["Aliases"] if not a["AliasName"].startswith("alias/aws/")
            ),
            "functions": sorted(f["FunctionName"] for f in client(url, "lambda", region).list_functions()["Functions"]),
            "topics": sorted(t["TopicArn"] for t in client(url, "sns", region).list_topics()["Topics"]),
            "subscriptions": sorted(
                x["SubscriptionArn"] for x in client(url, "sns", region).list_subscriptions()["Subscriptions"]
            ),
            "logGroups": sorted(
                g["logGroupName"] for g in client(url, "logs", region).describe_log_groups()["logGroups"]
            ),
            "alarms": sorted(
                a["AlarmName"] for a in client(url, "cloudwatch", region).describe_alarms()["MetricAlarms"]
            ),
            "dashboards": sorted(
                d["DashboardName"] for d in client(url, "cloudwatch", region).list_dashboards()["DashboardEntries"]
            ),
        }
    return out


@pytest.fixture(scope="module")
def chain(ministack_url: str, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The seeded source (objects, one with metadata and tags; a hundred items) and what the steps pass on."""
    s3 = client(ministack_url, "s3", SOURCE)
    s3.create_bucket(Bucket=BUCKET)  # us-east-1: no LocationConstraint, as on AWS
    for i in range(OBJECTS):
        s3.put_object(Bucket=BUCKET, Key=f"data/{i:03d}.txt", Body=f"object {i} ".encode() * (i + 1))
    s3.put_object(
        Bucket=BUCKET,
        Key=TAGGED_KEY,
        Body=bytes(range(256)) * 8,
        ContentType="application/octet-stream",
        Metadata={"owner": "team-a", "note": "kept"},
        Tagging="class=gold&team=a",
    )
    ddb = client(ministack_url, "dynamodb", SOURCE)
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    for i in range(ITEMS):
        ddb.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"p{i % 10}"},
                "sk": {"N": str(i)},
                "n": {"N": "3.14159265358979323846264338327950288"},
                "m": {"M": {"l": {"L": [{"S": ""}, {"BOOL": True}, {"NULL": True}]}}},
                "ss": {"SS": ["a", "b"]},
                "b": {"B": bytes([i])},
            },
        )
    tmp = tmp_path_factory.mktemp("ministack-chain")
    config = tmp / "migration.json"
    config.write_text(json.dumps(CONFIG))
    env = {**cli_env, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    base = ["--config", str(config), "--endpoint-url", ministack_url]
    return {"url": ministack_url, "env": env, "base": base, "tmp": tmp, "report": tmp / "migrate.json"}


def test_migrate_reaches_go_with_data_equal_under_the_key_and_the_lambda_executed(chain: dict[str, Any]) -> None:
    url = chain["url"]
    source_before = bucket_state(url, SOURCE, BUCKET), table_state(url, SOURCE, TABLE)

    proc = cli("flows.migrate", [*chain["base"], "--report", str(chain["report"])], chain["env"])
    assert proc.returncode == 0, output(proc)
    report = json.loads(chain["report"].read_text())
    assert report["verdict"]["decision"] == "GO", report["verdict"]
    assert report["status"]["ok"] is True, report["status"]
    assert report["validation"]["level"] == "full"
    assert report["validation"]["passed"] is True
    assert report["validation"]["mismatches"] == {"missing": 0, "extra": 0, "different": 0, "encryption": 0}

    # Data equal, measured here and not taken from the report: bytes, content type, metadata, tags, every item.
    source_now = bucket_state(url, SOURCE, BUCKET), table_state(url, SOURCE, TABLE)
    assert source_now == source_before  # the source's data is never modified
    assert len(source_now[0]) == OBJECTS + 1 and len(source_now[1]) == ITEMS
    assert bucket_state(url, TARGET, TARGET_BUCKET) == source_now[0]
    assert table_state(url, TARGET, TARGET_TABLE) == source_now[1]

    # Every target object under the migration's key, from a HEAD of each.
    key_arn = report["resources"]["kms"]["arn"]
    by_alias = client(url, "kms", TARGET).describe_key(KeyId=report["resources"]["kms"]["alias"])["KeyMetadata"]
    assert by_alias["Arn"] == key_arn
    assert not_under_key(url, key_arn) == {}

    # The validator really executed and passed: the report says so, and the function's own log shows the run.
    lam = report["validation"]["lambda"]
    assert lam["executed"] is True, lam
    assert lam["ok"] is True, lam
    assert lam["failedChecks"] == []
    # ... asynchronously (the dead-letter target can fire), its result read back from where the handler recorded it
    assert (lam["invocationType"], lam["outcome"], lam["measuredFrom"]) == ("Event", "passed", "recorded result"), lam
    function = report["resources"]["lambda"]["name"]
    logs = client(url, "logs", TARGET)
    group = f"/aws/lambda/{function}"
    messages = [
        event["message"]
        for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
    ]
    assert any(m.startswith("REPORT RequestId") for m in messages), messages
    results = [json.loads(m) for m in messages if m.startswith('{"ok"')]
    assert results and all(r["ok"] is True and r["failed"] == 0 for r in results), messages
    # What MiniStack measures where moto cannot (moto: "deployed, not executed", no DeadLetterConfig read-back).
    assert report["resources"]["lambda"]["deadLetterTargetMeasured"] == "read back"
    chain["keyArn"] = key_arn


def test_writes_on_the_source_then_sync_converge(chain: dict[str, Any]) -> None:
    url, env, base = chain["url"], chain["env"], chain["base"]
    key_arn = (
        chain.get("keyArn")
        or client(url, "kms", TARGET).describe_key(KeyId="alias/migration-key-eu-20261201-ms")["KeyMetadata"]["Arn"]
    )
    s3, ddb = client(url, "s3", SOURCE), client(url, "dynamodb", SOURCE)
    s3.put_object(Bucket=BUCKET, Key="data/new-after-migrate.txt", Body=b"written after the backfill")
    s3.put_object(Bucket=BUCKET, Key="data/000.txt", Body=b"overwritten after the backfill")
    s3.delete_object(Bucket=BUCKET, Key="data/001.txt")
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "new"}, "sk": {"N": "1000"}, "v": {"S": "after"}})
    ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "p0"}, "sk": {"N": "0"}},
        UpdateExpression="SET v = :v REMOVE ss",
        ExpressionAttributeValues={":v": {"N": "42"}},
    )
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "p1"}, "sk": {"N": "1"}})

    sync = cli("flows.sync", [*base, "--report", str(chain["tmp"] / "sync.json")], env)
    assert sync.returncode == 0, output(sync)
    assert json.loads((chain["tmp"] / "sync.json").read_text())["ok"] is True

    validate = cli("flows.validate", [*base, "--level", "full", "--report", str(chain["tmp"] / "validate.json")], env)
    assert validate.returncode == 0, output(validate)
    result = json.loads((chain["tmp"] / "validate.json").read_text())
    assert result["level"] == "full"
    assert result["passed"] is True, result["mismatches"]

    source_now = bucket_state(url, SOURCE, BUCKET), table_state(url, SOURCE, TABLE)
    assert "data/001.txt" not in source_now[0] and len(source_now[1]) == ITEMS
    assert bucket_state(url, TARGET, TARGET_BUCKET) == source_now[0]
    assert table_state(url, TARGET, TARGET_TABLE) == source_now[1]
    # MiniStack replicates the two new writes itself, without SSE-KMS: the catch-up must put them under the key.
    wrong = not_under_key(url, key_arn)
    assert wrong == {}, f"target objects not under the migration key after sync (key: (SSE, key id)): {wrong}"


def test_teardown_removes_everything_of_ours_and_undoes_the_source_changes(chain: dict[str, Any]) -> None:
    url = chain["url"]
    source_before = bucket_state(url, SOURCE, BUCKET), table_state(url, SOURCE, TABLE)

    proc = cli(
        "flows.teardown", [*chain["base"], "--delete-target-data", "--report", str(chain["report"])], chain["env"]
    )
    assert proc.returncode == 0, output(proc)

    left = everything(url)
    assert left["buckets"] == [BUCKET]
    assert left["roles"] == [] and left["policies"] == []
    assert left[SOURCE] == {
        "tables": [TABLE],
        "liveKeys": [],
        "aliases": [],
        "functions": [],
        "topics": [],
        "subscriptions": [],
        "logGroups": [],
        "alarms": [],
        "dashboards": [],
    }
    assert left[TARGET] == {
        "tables": [],
        "liveKeys": [],  # the migration key is scheduled for deletion (KMS has no immediate delete)
        "aliases": [],
        "functions": [],
        "topics": [],
        "subscriptions": [],
        "logGroups": [],
        "alarms": [],
        "dashboards": [],
    }

    # The source: data as it was, and our changes undone (versioning can only be suspended once enabled).
    assert (bucket_state(url, SOURCE, BUCKET), table_state(url, SOURCE, TABLE)) == source_before
    s3 = client(url, "s3", SOURCE)
    with pytest.raises(ClientError) as no_rule:
        s3.get_bucket_replication(Bucket=BUCKET)
    assert no_rule.value.response["Error"]["Code"] == "ReplicationConfigurationNotFoundError"
    assert s3.get_bucket_versioning(Bucket=BUCKET).get("Status") == "Suspended"
    stream = client(url, "dynamodb", SOURCE).describe_table(TableName=TABLE)["Table"].get("StreamSpecification")
    assert not (stream or {}).get("StreamEnabled"), stream
