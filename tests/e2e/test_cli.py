"""End to end: the real CLI (`python -m flows.migrate`) in a subprocess against a moto server.

The subprocess talks to the session's single Prefect test server (PREFECT_API_URL), so each run costs
seconds, not the 15 s of a temporary server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def run_cli(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.migrate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def all_names(url: str) -> dict[str, Any]:
    """Everything that exists on the server, to prove a command created nothing."""
    kw = {"endpoint_url": url, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    out: dict[str, Any] = {
        "buckets": sorted(
            b["Name"] for b in boto3.client("s3", region_name="us-east-1", **kw).list_buckets()["Buckets"]
        )
    }
    for region in ("us-east-1", "eu-west-1"):
        out[f"tables-{region}"] = sorted(boto3.client("dynamodb", region_name=region, **kw).list_tables()["TableNames"])
        out[f"keys-{region}"] = len(boto3.client("kms", region_name=region, **kw).list_keys()["Keys"])
    out["roles"] = sorted(
        r["RoleName"] for r in boto3.client("iam", region_name="us-east-1", **kw).list_roles()["Roles"]
    )
    return out


def test_plan_changes_nothing_then_migrate_is_idempotent(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path: Path
) -> None:
    before = all_names(moto_url)
    plan = run_cli(["--config", str(seeded_config), "--endpoint-url", moto_url, "--plan"], cli_env)
    assert plan.returncode == 0, plan.stderr
    assert "e2e-bucket-eu-20261128-e2e: create" in plan.stdout
    assert "enable stream NEW_AND_OLD_IMAGES" in plan.stdout
    # the plan prices and times each store on its path, and the whole migration
    assert plan.stdout.count("    estimate: $") == 2, plan.stdout
    assert "    path: client-copy (client copy: batch threshold 40 objects < 10,000,000)" in plan.stdout
    assert "    path: scan (parallel scan: import threshold " in plan.stdout
    assert "  estimated total: $" in plan.stdout
    # CloudWatch's count (moto publishes it over HTTP too) above the setting: the bucket is not listed
    by_cw = run_cli(
        ["--config", str(seeded_config), "--endpoint-url", moto_url, "--plan", "--plan-list-max-objects", "0"], cli_env
    )
    assert by_cw.returncode == 0, by_cw.stderr
    assert "e2e-bucket-eu-20261128-e2e: ~40 objects, ~" in by_cw.stdout, by_cw.stdout
    assert "(not listed: CloudWatch counts 40 objects; plan_list_max_objects is 0; objects: CloudWatch " in by_cw.stdout
    assert all_names(moto_url) == before

    report_path = tmp_path / "report.json"
    first = run_cli(["--config", str(seeded_config), "--endpoint-url", moto_url, "--report", str(report_path)], cli_env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["backend"].startswith("endpoint")
    assert report["status"]["ok"] is True
    bucket = report["resources"]["s3Buckets"][0]
    assert bucket["name"] == "e2e-bucket-eu-20261128-e2e"
    assert bucket["created"] is True
    assert bucket["versioning"] == "Enabled"
    assert bucket["backfill"]["copied"] + bucket["catchUp"]["copied"] == 40
    table = report["resources"]["dynamodbTables"][0]
    assert table["backfill"]["written"] == 150
    estimate = {row["store"]: row for row in report["estimate"]["stores"]}
    assert estimate["e2e-bucket"]["estimated"]["objects"] == 40 == estimate["e2e-bucket"]["measured"]["objects"]
    assert estimate["e2e-table"]["estimated"]["items"] == 150 == estimate["e2e-table"]["measured"]["items"]
    after_first = all_names(moto_url)

    second = run_cli(
        ["--config", str(seeded_config), "--endpoint-url", moto_url, "--report", str(report_path)], cli_env
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = json.loads(report_path.read_text())
    assert all_names(moto_url) == after_first  # nothing new: no second key, bucket, table or role
    assert again["resources"]["s3Buckets"][0]["created"] is False
    assert again["resources"]["s3Buckets"][0]["backfill"]["copied"] == 0
    assert again["resources"]["kms"]["created"] is False

    # The plan now says what is there: the checkpoint table is ours, our rule is on the source bucket.
    replan = run_cli(["--config", str(seeded_config), "--endpoint-url", moto_url, "--plan"], cli_env)
    assert replan.returncode == 0, replan.stderr
    assert "migration-checkpoints-eu-20261128-e2e: exists (ours" in replan.stdout
    assert "put replication rule" not in replan.stdout
    assert "e2e-bucket: update replication rule to e2e-bucket-eu-20261128-e2e (DeleteMarkerReplication" in (
        replan.stdout
    )  # moto answers "Disabled" for the "Enabled" we put: a run puts it again (and reports notSupportedByBackend)


def test_a_forced_batch_path_on_a_backend_without_batch_operations_is_client_copy_and_go(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path: Path
) -> None:
    """`--s3-batch-min-objects 0` sends every bucket to S3 Batch Replication; moto has no S3 Batch Operations, so the
    capability probe says so, the bucket is copied by the client, the report says which path and why, and it is GO.
    Nothing of the Batch path (its reports bucket, its role) is created."""
    report_path = tmp_path / "report.json"
    args = ["--config", str(seeded_config), "--endpoint-url", moto_url, "--report", str(report_path)]
    proc = run_cli([*args, "--s3-batch-min-objects", "0"], cli_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["verdict"]["decision"] == "GO"
    backfill = report["resources"]["s3Buckets"][0]["backfill"]
    assert backfill["path"] == "client-copy"
    no_batch = "the backend has no S3 Batch Operations (S3 Control ListJobs: "
    assert backfill["pathReason"].startswith(f"client copy: threshold 0: every store, but {no_batch}")
    assert backfill["notSupportedByBackend"]["s3BatchOperations"].startswith(no_batch)
    assert "job" not in backfill
    names = all_names(moto_url)
    assert not [b for b in names["buckets"] if "batch-reports" in b]
    assert not [r for r in names["roles"] if "s3-batch" in r]


def test_missing_source_is_one_line_and_creates_nothing(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path: Path
) -> None:
    data = json.loads(seeded_config.read_text())
    data["s3Buckets"][0]["name"] = "no-such-bucket-anywhere"
    data["environmentSuffix"] = "bad"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    before = all_names(moto_url)
    proc = run_cli(["--config", str(bad), "--endpoint-url", moto_url], cli_env)
    assert proc.returncode == 2
    assert "s3Buckets[0] (no-such-bucket-anywhere): source bucket does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all_names(moto_url) == before


def test_invalid_config_value_is_one_line(cli_env: dict[str, str], seeded_config: Path, tmp_path: Path) -> None:
    data = json.loads(seeded_config.read_text())
    data["dynamodbTables"][0]["scalingFactor"] = -1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    proc = run_cli(["--config", str(bad), "--endpoint-url", "http://127.0.0.1:9"], cli_env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "dynamodbTables[0].scalingFactor (e2e-table): must be a positive number" in lines[0]


def test_three_bad_values_are_three_lines_and_create_nothing(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path: Path
) -> None:
    data = json.loads(seeded_config.read_text())
    data["targetRegion"] = "eu-nowhere-9"
    data["timestamp"] = "2026_12_01"
    data["dynamodbTables"][0]["scalingFactor"] = -1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    before = all_names(moto_url)
    proc = run_cli(["--config", str(bad), "--endpoint-url", moto_url], cli_env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert all(line.startswith(f"error: {bad}: ") for line in lines)
    fields = ("targetRegion", "timestamp", "dynamodbTables[0].scalingFactor (e2e-table)")
    for line, field in zip(lines, fields, strict=True):
        assert f": {field}: " in line
    assert "Traceback" not in proc.stderr + proc.stdout
    assert all_names(moto_url) == before
