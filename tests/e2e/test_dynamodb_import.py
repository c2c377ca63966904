"""End to end on the moto server: a table backfilled by export to S3 + ImportTable (`--dynamodb-import-min-bytes 0`),
writes made while it runs replayed from the stream, the CLI killed once the ExportArn is recorded, and a re-run to GO
that neither exports nor imports a second time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

TABLE = "imp-table"
ITEMS = 120
CHECKPOINTS = "migration-checkpoints-eu-20261128-imp"


def _ddb(url: str, region: str) -> Any:
    return boto3.client(
        "dynamodb", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )


def _record(target: Any) -> dict[str, Any]:
    try:
        item = target.get_item(TableName=CHECKPOINTS, Key={"pk": {"S": f"ddb#{TABLE}"}, "sk": {"S": "import"}})
    except Exception:  # the checkpoint table is not there yet
        return {}
    return {k: v.get("S") for k, v in (item.get("Item") or {}).items()}


def test_export_import_with_writes_during_it_a_kill_and_a_rerun(
    moto_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    src, dst = _ddb(moto_url, "us-east-1"), _ddb(moto_url, "eu-west-1")
    src.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(ITEMS):
        src.put_item(
            TableName=TABLE,
            Item={"id": {"S": f"i{i:04d}"}, "n": {"N": "3.14159265358979323846264338327950288"},
                  "b": {"B": bytes([i, 0, 255])}, "m": {"M": {"l": {"L": [{"S": ""}, {"NULL": True}]}}}},
        )  # fmt: skip
    cfg = {
        "sourceRegion": "us-east-1",
        "targetRegion": "eu-west-1",
        "migrationBatch": "imp",
        "timestamp": "20261128",
        "environmentSuffix": "imp",
        "s3Buckets": [],
        "dynamodbTables": [{"name": TABLE}],
    }
    config, report = tmp_path / "imp.json", tmp_path / "report.json"
    config.write_text(json.dumps(cfg))
    args = [sys.executable, "-m", "flows.migrate", "--config", str(config), "--endpoint-url", moto_url,
            "--report", str(report), "--validation-level", "quick", "--dynamodb-import-min-bytes", "0"]  # fmt: skip

    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=ROOT, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    at_kill: dict[str, Any] = {}
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None and not at_kill.get("exportArn"):
            at_kill = _record(dst)
            time.sleep(0.05)
        # After the export time, so in the stream only: an update, a delete and a new item.
        src.put_item(TableName=TABLE, Item={"id": {"S": "i0001"}, "n": {"N": "-1"}})
        src.delete_item(TableName=TABLE, Key={"id": {"S": "i0002"}})
        src.put_item(TableName=TABLE, Item={"id": {"S": "new"}, "ss": {"SS": ["x", "y"]}})
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert at_kill.get("exportArn"), "the kill must come after the ExportArn is recorded"

    killed_at = time.monotonic()
    second = subprocess.run(args, cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    print(f"first run killed after {killed_at - started:.1f} s, re-run {time.monotonic() - killed_at:.1f} s")
    result = json.loads(report.read_text())
    assert result["verdict"]["decision"] == "GO", result["verdict"]
    table = result["resources"]["dynamodbTables"][0]
    backfill = table["backfill"]
    assert backfill["path"] == "export-import" and "export to S3 + ImportTable" in backfill["pathReason"]
    assert backfill["exportImport"]["exportArn"] == at_kill["exportArn"]  # the killed run's export, not a new one
    table_arn = src.describe_table(TableName=TABLE)["Table"]["TableArn"]
    assert len(src.list_exports(TableArn=table_arn)["ExportSummaries"]) == 1
    if at_kill.get("importArn"):
        assert backfill["exportImport"]["importArn"] == at_kill["importArn"]
    assert table["catchUp"]["records"] >= 3  # the writes made during the run, replayed from the stream
    assert table["validation"]["targetItems"] == ITEMS  # one deleted, one new
    assert any("point-in-time recovery" in c for c in result["sourceChanges"])

    # Type-exact: every item as the source holds it (sets compared sorted: DynamoDB keeps them unordered).
    def dump(client: Any, name: str) -> list[str]:
        items = client.scan(TableName=name, ConsistentRead=True)["Items"]
        norm = [{k: {"SS": sorted(v["SS"])} if "SS" in v else v for k, v in it.items()} for it in items]
        return sorted(json.dumps(it, sort_keys=True, default=repr) for it in norm)

    assert dump(src, TABLE) == dump(dst, f"{TABLE}-eu-20261128-imp")
