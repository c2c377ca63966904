"""End to end through the real CLIs on the moto server: objects not under the migration key (issue 8 item 3)
and deletes on the source (item 4) are found, fixed by the catch-up, and the verdict follows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from config.model import load_config
from tasks.names import resource_names
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

SOURCE = "e2e-bucket"
TARGET = "e2e-bucket-eu-20261128-e2e"


def cli(module: str, config: Path, url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--config", str(config), "--endpoint-url", url, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def s3(url: str, region: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=region,
    )


def rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def migrated(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The seeded source migrated once (GO); returns a directory for the tests' reports."""
    out = tmp_path_factory.mktemp("safety")
    proc = cli("flows.migrate", seeded_config, moto_url, cli_env, "--report", str(out / "migrate.json"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_replica_not_under_the_key_is_no_go_until_the_sync_reencrypts_it(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, migrated: Path
) -> None:
    src, dst = s3(moto_url, "us-east-1"), s3(moto_url, "eu-west-1")
    body = b"written late, delivered by replication " * 8
    key = "late/replica.txt"
    src.put_object(Bucket=SOURCE, Key=key, Body=body, ContentType="text/plain", Metadata={"origin": "app"})
    # What S3 replication delivers for an SSE-S3 source object: the same bytes, still SSE-S3.
    dst.put_object(
        Bucket=TARGET,
        Key=key,
        Body=body,
        ServerSideEncryption="AES256",
        ContentType="text/plain",
        Metadata={"origin": "app"},
    )

    report = migrated / "validate-1.json"
    first = cli("flows.validate", seeded_config, moto_url, cli_env, "--level", "full", "--report", str(report))
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["passed"] is False and result["mismatches"]["encryption"] == 1
    wrong = [r for r in rows(result["mismatchFile"]) if r["kind"] == "encryption"]
    assert [(r["store"], r["key"]) for r in wrong] == [(SOURCE, key)]
    assert "AES256" in wrong[0]["detail"]

    sync_report = migrated / "sync-1.json"
    sync = cli("flows.sync", seeded_config, moto_url, cli_env, "--report", str(sync_report))
    assert sync.returncode == 0, sync.stdout[-3000:] + sync.stderr[-3000:]
    caught = json.loads(sync_report.read_text())["caughtUp"][SOURCE]["catchUp"]
    assert caught["copied"] == 0 and caught["adopted"] == 1  # same checksum: recorded, not copied again
    reenc = caught["reencryption"]
    assert reenc["copyOntoItself"] == 1 and reenc["UpdateObjectEncryption"] == 0
    assert "new object version" in reenc["updateObjectEncryptionUnsupported"]  # measured on moto, reported
    head = dst.head_object(Bucket=TARGET, Key=key)
    kms = boto3.client(
        "kms",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="eu-west-1",
    )
    key_arn = kms.describe_key(KeyId=resource_names(load_config(seeded_config)).kms_alias)["KeyMetadata"]["Arn"]
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"origin": "app"}

    report = migrated / "validate-2.json"
    second = cli("flows.validate", seeded_config, moto_url, cli_env, "--level", "full", "--report", str(report))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads(report.read_text())["passed"] is True


def test_source_deletes_reach_the_target_as_delete_markers_and_the_verdict_is_go(
    moto_url: str, cli_env: dict[str, str], seeded_config: Path, migrated: Path
) -> None:
    src, dst = s3(moto_url, "us-east-1"), s3(moto_url, "eu-west-1")
    gone = ["data/003 é+%.txt", "data/017 é+%.txt"]
    for key in gone:
        src.delete_object(Bucket=SOURCE, Key=key)
    dst.put_object(Bucket=TARGET, Key="not-ours/left-alone.txt", Body=b"written in the target by someone else")

    sync_report = migrated / "sync-2.json"
    sync = cli("flows.sync", seeded_config, moto_url, cli_env, "--report", str(sync_report))
    assert sync.returncode == 0, sync.stdout[-3000:] + sync.stderr[-3000:]
    result = json.loads(sync_report.read_text())
    caught = result["caughtUp"][SOURCE]["catchUp"]
    assert caught["deleted"] == 2 and sorted(caught["deletedKeys"]) == sorted(gone)
    assert caught["target_only_foreign"] == 1 and caught["foreignKeys"] == ["not-ours/left-alone.txt"]
    assert result["ok"] is True and result["validation"]["mismatches"]["extra"] == 0
    assert "not written by this migration, untouched: not-ours/left-alone.txt" in sync.stdout + sync.stderr  # logged

    for key in gone:
        versions = dst.list_object_versions(Bucket=TARGET, Prefix=key)
        assert [m["IsLatest"] for m in versions.get("DeleteMarkers", []) if m["Key"] == key] == [True]
        assert [v["Key"] for v in versions.get("Versions", [])] == [key]  # the copy itself is kept
    kept = dst.list_object_versions(Bucket=TARGET, Prefix="not-ours/")
    assert len(kept["Versions"]) == 1 and not kept.get("DeleteMarkers")
    body = dst.get_object(Bucket=TARGET, Key="not-ours/left-alone.txt")["Body"].read()
    assert body == b"written in the target by someone else"

    report = migrated / "validate-3.json"
    full = cli("flows.validate", seeded_config, moto_url, cli_env, "--level", "full", "--report", str(report))
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    validation = json.loads(report.read_text())
    assert validation["passed"] is True
    listed = [(r["key"], r["kind"]) for r in rows(validation["mismatchFile"])]
    assert listed == [("not-ours/left-alone.txt", "extra_foreign")]
