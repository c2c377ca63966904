"""Kill -9 the CLI in the middle of the backfill, run it again: it resumes, loses nothing, duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tasks.move.s3 import MANIFEST_FLUSH
from tasks.steps import S3_COPY_WORKERS
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

OBJECTS = 600
ITEMS = 3000


def _clients(url: str, region: str) -> tuple[object, object]:
    kw = {
        "endpoint_url": url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": region,
    }
    return boto3.client("s3", **kw), boto3.client("dynamodb", **kw)


def test_killed_run_resumes_to_the_same_result(moto_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    s3, ddb = _clients(moto_url, "us-east-1")
    s3.create_bucket(Bucket="kill-bucket")  # type: ignore[attr-defined]
    for i in range(OBJECTS):
        s3.put_object(Bucket="kill-bucket", Key=f"obj/{i:04d}", Body=f"body {i}".encode() * 20)  # type: ignore[attr-defined]
    ddb.create_table(  # type: ignore[attr-defined]
        TableName="kill-table",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, ITEMS, 25):
        ddb.batch_write_item(  # type: ignore[attr-defined]
            RequestItems={
                "kill-table": [
                    {"PutRequest": {"Item": {"id": {"S": f"i{i:05d}"}, "v": {"N": str(i)}}}}
                    for i in range(start, start + 25)
                ]
            }
        )
    cfg = {
        "sourceRegion": "us-east-1",
        "targetRegion": "eu-west-1",
        "migrationBatch": "kill",
        "timestamp": "20261128",
        "environmentSuffix": "k",
        "s3Buckets": [{"name": "kill-bucket"}],
        "dynamodbTables": [{"name": "kill-table"}],
    }
    config = tmp_path / "kill.json"
    config.write_text(json.dumps(cfg))
    report = tmp_path / "report.json"
    args = [
        sys.executable,
        "-m",
        "flows.migrate",
        "--config",
        str(config),
        "--endpoint-url",
        moto_url,
        "--report",
        str(report),
    ]
    target_s3, _ = _clients(moto_url, "eu-west-1")
    target_bucket = "kill-bucket-eu-20261128-k"

    proc = subprocess.Popen(
        args, cwd=ROOT, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    copied_at_kill = 0
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                copied_at_kill = target_s3.list_objects_v2(Bucket=target_bucket).get("KeyCount", 0)  # type: ignore[attr-defined]
            except Exception:
                copied_at_kill = 0
            if copied_at_kill >= 100:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert 100 <= copied_at_kill < OBJECTS, "the kill must land in the middle of the S3 backfill"
    assert not report.exists()

    second = subprocess.run(args, cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["verdict"]["decision"] == "GO"
    bucket = result["resources"]["s3Buckets"][0]
    # The re-run skipped what the killed run had recorded and copied only the rest.
    assert bucket["backfill"]["seen"] == OBJECTS
    assert bucket["backfill"]["skipped"] > 0
    assert bucket["backfill"]["copied"] + bucket["backfill"]["skipped"] == OBJECTS
    # At most one unflushed manifest batch plus the copies in flight are done twice.
    assert bucket["backfill"]["copied"] <= OBJECTS - copied_at_kill + MANIFEST_FLUSH + S3_COPY_WORKERS
    assert result["validation"]["mismatches"] == {"missing": 0, "extra": 0, "different": 0, "encryption": 0}
    table = result["resources"]["dynamodbTables"][0]
    assert table["validation"]["targetItems"] == ITEMS
    # One key per object in the target: resuming never duplicates keys (versions of a re-copied object aside).
    keys = [
        o["Key"]
        for p in target_s3.get_paginator("list_objects_v2").paginate(Bucket=target_bucket)  # type: ignore[attr-defined]
        for o in p.get("Contents", [])
    ]
    assert len(keys) == len(set(keys)) == OBJECTS
    # And no unchanged object got a second version: copies made after the killed run's last manifest flush
    # are recognised by their checksums and recorded, not copied again.
    versions: dict[str, int] = {}
    for p in target_s3.get_paginator("list_object_versions").paginate(Bucket=target_bucket):  # type: ignore[attr-defined]
        for v in p.get("Versions", []):
            versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    twice = sorted(k for k, n in versions.items() if n > 1)
    assert not twice, f"{len(twice)} unchanged objects were copied twice: {twice[:5]}"
