"""End to end on the moto server through the real CLI: what a DynamoDB migration must never do to its data.

- A source table without TTL gets a target without TTL (with TTL on `ttl`, AWS would delete every copied item
  whose `ttl` holds a past time, days after cutover; moto enforces no TTL, so the setting is what is checked).
- A table whose hash key is binary is copied and validated (moto answers 500 to segmented scans of such a
  table; one planned segment scans without segment parameters), in seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.test_cli import run_cli

pytestmark = pytest.mark.e2e

PLAIN, BINARY = "safety-plain", "safety-binary"


def _client(url: str, service: str, region: str) -> Any:
    return boto3.client(
        service, endpoint_url=url, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture(scope="module")
def safety_config(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two source tables without TTL: one with a string key and a `ttl` attribute in the past, one with a
    binary hash key; a config naming only them (no bucket, so the run stays short)."""
    ddb = _client(moto_url, "dynamodb", "us-east-1")
    ddb.create_table(
        TableName=PLAIN,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    ddb.create_table(
        TableName=BINARY,
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "B"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    past = str(int(time.time()) - 30 * 86400)
    for i in range(60):
        ddb.put_item(TableName=PLAIN, Item={"id": {"S": f"i{i:03d}"}, "ttl": {"N": past}, "n": {"N": str(i)}})
    for i in range(300):
        ddb.put_item(TableName=BINARY, Item={"k": {"B": i.to_bytes(2, "big") + b"\x00\xff"}, "n": {"N": str(i)}})
    cfg = {
        "sourceRegion": "us-east-1",
        "targetRegion": "eu-west-1",
        "migrationBatch": "safety",
        "timestamp": "20261201",
        "environmentSuffix": "e2e",
        "dynamodbTables": [{"name": PLAIN}, {"name": BINARY}],
    }
    path = tmp_path_factory.mktemp("safety") / "migration.json"
    path.write_text(json.dumps(cfg))
    return path


def test_ttl_mirrored_and_binary_hash_key_copied(
    moto_url: str, cli_env: dict[str, str], safety_config: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    run = run_cli(["--config", str(safety_config), "--endpoint-url", moto_url, "--report", str(report_path)], cli_env)
    took = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["verdict"]["decision"] == "GO"

    target = _client(moto_url, "dynamodb", "eu-west-1")
    tables = {t["source"]: t for t in report["resources"]["dynamodbTables"]}
    for source in (PLAIN, BINARY):
        name = f"{source}-eu-20261201-e2e"
        ttl = target.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "DISABLED", (source, ttl)
        assert tables[source]["ttl"]["status"] == "DISABLED"
    diffs = {d["setting"]: d for d in report["configurationDifferences"]}
    assert diffs[f"ttl {PLAIN}"]["source"] == "DISABLED" and diffs[f"ttl {PLAIN}"]["target"] == "DISABLED"

    assert tables[BINARY]["backfill"]["written"] == 300
    assert target.scan(TableName=f"{BINARY}-eu-20261201-e2e", Select="COUNT")["Count"] == 300
    checked = {t["source"]: t for t in report["validation"]["tables"]}
    assert checked[BINARY]["sourceItems"] == checked[BINARY]["targetItems"] == 300
    assert (checked[BINARY]["missing"], checked[BINARY]["extra"], checked[BINARY]["different"]) == (0, 0, 0)
    # Validated as partitioned tasks through the staging bucket, which holds none of their rows afterwards.
    assert checked[PLAIN]["taskRuns"] == 3 and checked[PLAIN]["sourceItems"] == 60
    staged = _client(moto_url, "s3", "eu-west-1").list_object_versions(
        Bucket="migration-ddb-staging-eu-20261201-e2e", Prefix="validation/"
    )
    assert staged.get("Versions", []) == [] and staged.get("DeleteMarkers", []) == []
    assert took < 120, f"the run took {took:.0f} s"
