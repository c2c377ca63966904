"""End to end: teardown never deletes a target bucket that still holds data (real CLI, moto server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

TARGET_BUCKET = "e2e-bucket-eu-20261128-e2e"


def _cli(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_teardown_keeps_a_bucket_whose_first_key_is_a_delete_marker(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path: Path
) -> None:
    common = ["--config", str(seeded_config), "--endpoint-url", moto_url]
    migrated = _cli(
        "flows.migrate", [*common, "--validation-level", "quick", "--report", str(tmp_path / "r.json")], cli_env
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]

    s3 = boto3.client(
        "s3",
        region_name="eu-west-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=TARGET_BUCKET)["Contents"])
    s3.delete_object(Bucket=TARGET_BUCKET, Key=keys[0])  # as replication or lifecycle would after cutover
    assert not s3.list_object_versions(Bucket=TARGET_BUCKET, MaxKeys=1).get("Versions")

    down = _cli("flows.teardown", [*common, "--report", str(tmp_path / "r.json")], cli_env)
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
    assert "pass --delete-target-data" in down.stdout
    versions = s3.list_object_versions(Bucket=TARGET_BUCKET)
    assert len(versions["Versions"]) == len(keys)  # every copied object is still there, the deleted one too
    assert [m["Key"] for m in versions["DeleteMarkers"]] == [keys[0]]
