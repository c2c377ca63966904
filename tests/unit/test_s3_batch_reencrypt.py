"""The re-encryption job of a Batch-replicated bucket (tasks/move/s3_batch_reencrypt.py): its CreateJob request
against botocore's real S3 Control model (Stubber), the JobId recorded before the wait and never a second job, its
failed keys re-encrypted by the client copy (moto), the Batch role's added rights scoped, and the flow's wiring."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from config.model import MigrationConfig, parse_config
from tasks.aws import Backend, tag_list
from tasks.move import s3_batch, s3_batch_reencrypt
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.keys import BATCH_JOB_SK, BATCH_REENCRYPT_SK, batch_pk
from tasks.names import resource_names
from tasks.provision import iam

ACCOUNT = "123456789012"  # moto's
SRC = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/migration-s3-batch-eu-20261128-dev"
JOB = "1d2c3b4a-0d7a-4b7e-9d6f-3a2b1c0d9e8f"
REPL_JOB = "8f5b2c1e-0d7a-4b7e-9d6f-3a2b1c0d9e8f"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


@pytest.fixture
def control(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, list[str]]]:
    """S3 Control answered by a Stubber (requests checked against botocore's model), the regions it was asked for."""
    client = boto3.client("s3control", region_name=SRC, aws_access_key_id="x", aws_secret_access_key="x")
    real, regions = Backend.client, []

    def client_for(self: Backend, service: str, region: str, max_attempts: int = 8) -> Any:
        if service != "s3control":
            return real(self, service, region, max_attempts)
        regions.append(region)
        return client

    monkeypatch.setattr(Backend, "client", client_for)
    with Stubber(client) as stub:
        yield stub, regions
        stub.assert_no_pending_responses()


def _store(backend: Backend, cfg: MigrationConfig) -> CheckpointStore:
    table = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, cfg.target_region, table, cfg.tags(), None)
    return CheckpointStore(backend, cfg.target_region, table)


def _described(job: str, status: str, total: int, ok: int, failed: int) -> dict[str, Any]:
    summary = {"TotalNumberOfTasks": total, "NumberOfTasksSucceeded": ok, "NumberOfTasksFailed": failed}
    return {"Job": {"JobId": job, "Status": status, "ProgressSummary": summary}}


def _failed_report(
    backend: Backend,
    cfg: MigrationConfig,
    stub: Stubber,
    store: CheckpointStore,
    rows: list[str],
    counts: tuple[int, int, int],
) -> None:
    """The re-encryption job recorded and finished (DescribeJob stubbed with `counts` = total, succeeded, failed),
    its completion report in the reports bucket: a manifest.json naming one CSV of failed `rows`."""
    from tasks.provision.s3_reports import ensure_reports_bucket

    names, source = resource_names(cfg), cfg.s3_buckets[0].name
    s3s = backend.client("s3", SRC)
    ensure_reports_bucket.fn(backend, cfg)
    prefix = s3_batch_reencrypt.reencrypt_prefix(source)
    csv_key = f"{prefix}/job-{JOB}/results/f.csv"
    manifest = {
        "Format": "Report_CSV_20180820",
        "Results": [{"TaskExecutionStatus": "failed", "Bucket": names.reports_bucket, "Key": csv_key}],
    }
    s3s.put_object(Bucket=names.reports_bucket, Key=f"{prefix}/job-{JOB}/manifest.json", Body=json.dumps(manifest))
    s3s.put_object(Bucket=names.reports_bucket, Key=csv_key, Body="".join(f"{r}\n" for r in rows))
    store.put(batch_pk(source), BATCH_REENCRYPT_SK, {"jobId": JOB, "reportPrefix": prefix})
    stub.add_response(
        "describe_job", _described(JOB, "Complete", *counts), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )


def test_the_model_has_the_filter_and_operation_fields_the_request_uses() -> None:
    model = botocore.session.get_session().get_service_model("s3control")
    filt = model.shape_for("JobManifestGeneratorFilter").members
    assert set(s3_batch_reencrypt.FILTER) <= set(filt)
    assert "REPLICA" in filt["ObjectReplicationStatuses"].member.enum  # type: ignore[attr-defined]
    assert "SSES3" in filt["MatchAnyObjectEncryption"].member.members  # type: ignore[attr-defined]
    operation = model.shape_for("JobOperation").members["S3UpdateObjectEncryption"]
    sse_kms = operation.members["ObjectEncryption"].members["SSEKMS"]  # type: ignore[attr-defined]
    assert set(sse_kms.members) == {"KMSKeyArn", "BucketKeyEnabled"}


def test_the_request_reencrypts_sse_s3_replicas_in_place_under_the_key(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    source = cfg.s3_buckets[0].name
    target = f"arn:aws:s3:::{names.buckets[source]}"
    req = s3_batch_reencrypt.reencrypt_job_request(cfg, ACCOUNT, source, ROLE, KEY)
    assert req["Operation"] == {
        "S3UpdateObjectEncryption": {"ObjectEncryption": {"SSEKMS": {"KMSKeyArn": KEY, "BucketKeyEnabled": True}}}
    }
    generator = req["ManifestGenerator"]["S3JobManifestGenerator"]
    assert generator["SourceBucket"] == target and generator["EnableManifestOutput"] is False
    # every SSE-S3 replica, whatever its size or storage class: no copy is made, so no 5 GB or STANDARD limit
    assert generator["Filter"] == {
        "ObjectReplicationStatuses": ["REPLICA"],
        "MatchAnyObjectEncryption": [{"SSES3": {}}],
    }
    assert req["Report"] == {
        "Bucket": f"arn:aws:s3:::{names.reports_bucket}",
        "Format": "Report_CSV_20180820",
        "Enabled": True,
        "Prefix": f"batch-replication/{source}/reencrypt",
        "ReportScope": "FailedTasksOnly",
    }
    token = s3_batch.client_request_token(cfg.migration_batch, source, "reencrypt")
    assert req["ClientRequestToken"] == token and req["RoleArn"] == ROLE and req["Tags"] == tag_list(cfg.tags())
    assert token != s3_batch.create_job_request(cfg, ACCOUNT, source, ROLE)["ClientRequestToken"]
    assert s3_batch_reencrypt.replicated_any({"succeeded": 3}) and not s3_batch_reencrypt.replicated_any({})


def test_no_operation_over_the_generated_manifest_writes_an_object(cfg: MigrationConfig) -> None:
    """The old danger: the manifest S3 generates from the versioned target lists every SSE-S3 replica VERSION, and
    a copy of a noncurrent one onto its key (S3PutObjectCopy) would make old content current. The job's only
    operation re-encrypts the listed version in place; no copy, and nothing that names a target to write."""
    source = cfg.s3_buckets[0].name
    req = s3_batch_reencrypt.reencrypt_job_request(cfg, ACCOUNT, source, ROLE, KEY)
    assert "S3JobManifestGenerator" in req["ManifestGenerator"]  # a generated manifest: every matching version
    assert list(req["Operation"]) == ["S3UpdateObjectEncryption"]
    text = json.dumps(req)
    assert "S3PutObjectCopy" not in text and "TargetResource" not in text and "MetadataDirective" not in text


def test_the_job_is_created_in_the_target_region_recorded_before_the_wait_and_never_again(
    backend: Backend, cfg: MigrationConfig, control: tuple[Stubber, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub, regions = control
    store = _store(backend, cfg)
    source = cfg.s3_buckets[0].name
    store.put(batch_pk(source), BATCH_JOB_SK, {"jobId": REPL_JOB})  # the replication job of the same bucket
    monkeypatch.setattr(s3_batch, "prefect_progress", lambda _what: lambda _pct, _text: None)
    expected = s3_batch_reencrypt.reencrypt_job_request(cfg, ACCOUNT, source, ROLE, KEY)
    stub.add_response("create_job", {"JobId": JOB}, expected_params=expected)  # validated against the model
    stub.add_client_error("describe_job", service_error_code="InternalError", http_status_code=500)

    with pytest.raises(Exception, match="InternalError"):  # the wait fails: the job must already be recorded
        s3_batch_reencrypt.reencrypt_replicas.fn(backend, cfg, source, ROLE, KEY, delay=0)
    assert regions == [cfg.target_region] * 2
    recorded = store.get(batch_pk(source), BATCH_REENCRYPT_SK)
    assert recorded is not None and recorded["jobId"] == JOB
    assert recorded["clientRequestToken"] == expected["ClientRequestToken"]
    assert (store.get(batch_pk(source), BATCH_JOB_SK) or {})["jobId"] == REPL_JOB  # untouched

    # The retry reads the JobId back: no second CreateJob is stubbed, so one would fail the test.
    stub.add_response(
        "describe_job", _described(JOB, "Complete", 0, 0, 0), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )
    out = s3_batch_reencrypt.reencrypt_replicas.fn(backend, cfg, source, ROLE, KEY, delay=0)
    assert out["job"]["jobId"] == JOB and out["job"]["created"] is False and out["copy"]["seen"] == 0


def test_the_failed_keys_of_the_job_are_reencrypted_by_the_client_copy(
    backend: Backend, cfg: MigrationConfig, control: tuple[Stubber, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two SSE-S3 replicas; the job's report says one failed: that one is re-copied under the migration key."""
    from tasks.provision import kms

    stub, _regions = control
    names, store, key = resource_names(cfg), _store(backend, cfg), kms.ensure_key.fn(backend, cfg, ACCOUNT)["arn"]
    source = cfg.s3_buckets[0].name
    target = names.buckets[source]
    sides = {SRC: source, cfg.target_region: target}
    for region, bucket in sides.items():
        s3 = backend.client("s3", region)
        where = {} if region == SRC else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **where)
        for k in ("a/failed", "b/done"):  # both SSE-S3: the target's are replicas of SSE-S3 objects
            s3.put_object(Bucket=bucket, Key=k, Body=k.encode(), ServerSideEncryption="AES256")
    s3t = backend.client("s3", cfg.target_region)
    _failed_report(backend, cfg, stub, store, [f"{target},a/failed,,failed,500,InternalError,retry"], (2, 1, 1))
    monkeypatch.setattr(s3_batch, "prefect_progress", lambda _what: lambda _pct, _text: None)

    out = s3_batch_reencrypt.reencrypt_replicas.fn(backend, cfg, source, ROLE, key, delay=0)

    assert out["job"]["reportFailedKeys"] == 1 and out["job"]["status"] == "Complete"
    assert out["copy"]["seen"] == 1 and out["copy"]["failed"] == 0
    assert s3t.head_object(Bucket=target, Key="a/failed")["SSEKMSKeyId"] == key
    assert s3t.head_object(Bucket=target, Key="b/done")["ServerSideEncryption"] == "AES256"  # the job's, not ours


def test_a_failed_noncurrent_version_never_brings_old_content_back(
    backend: Backend, cfg: MigrationConfig, control: tuple[Stubber, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report names a failed task on a NONCURRENT replica version (its VersionId): the client path takes the
    key, not the version, so the key's current object (the source's content) is what it checks and re-encrypts;
    the old version stays noncurrent and untouched, and no object anywhere gets the old content."""
    from tasks.provision import kms

    stub, _regions = control
    names, store, key = resource_names(cfg), _store(backend, cfg), kms.ensure_key.fn(backend, cfg, ACCOUNT)["arn"]
    source = cfg.s3_buckets[0].name
    target = names.buckets[source]
    s3s, s3t = backend.client("s3", SRC), backend.client("s3", cfg.target_region)
    s3s.create_bucket(Bucket=source)
    s3s.put_object(Bucket=source, Key="k", Body=b"new", ServerSideEncryption="AES256")
    s3t.create_bucket(Bucket=target, CreateBucketConfiguration={"LocationConstraint": cfg.target_region})
    s3t.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})
    old = s3t.put_object(Bucket=target, Key="k", Body=b"old", ServerSideEncryption="AES256")["VersionId"]
    s3t.put_object(Bucket=target, Key="k", Body=b"new", ServerSideEncryption="AES256")
    _failed_report(backend, cfg, stub, store, [f"{target},k,{old},failed,500,InternalError,retry"], (2, 1, 1))
    monkeypatch.setattr(s3_batch, "prefect_progress", lambda _what: lambda _pct, _text: None)

    out = s3_batch_reencrypt.reencrypt_replicas.fn(backend, cfg, source, ROLE, key, delay=0)

    assert out["job"]["reportFailedKeys"] == 1 and out["copy"]["seen"] == 1 and out["copy"]["failed"] == 0
    assert s3t.get_object(Bucket=target, Key="k")["Body"].read() == b"new"  # the current object: the source's
    assert s3t.head_object(Bucket=target, Key="k")["SSEKMSKeyId"] == key
    assert s3t.get_object(Bucket=target, Key="k", VersionId=old)["Body"].read() == b"old"  # kept, as it was
    versions = s3t.list_object_versions(Bucket=target, Prefix="k")["Versions"]
    latest = [v for v in versions if v["IsLatest"]]
    assert len(latest) == 1 and latest[0]["VersionId"] != old
    later = [v["VersionId"] for v in versions if v["VersionId"] != old]
    assert all(s3t.get_object(Bucket=target, Key="k", VersionId=v)["Body"].read() == b"new" for v in later)
    assert s3s.get_object(Bucket=source, Key="k")["Body"].read() == b"new"  # the source never touched


def test_the_batch_role_gains_only_update_object_encryption_and_the_key(backend: Backend, cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    role = iam.ensure_batch_role.fn(backend, cfg, "batch-replication", KEY)
    client = backend.client("iam", cfg.target_region)
    got = client.list_role_policies(RoleName=role["name"])["PolicyNames"]
    policy = client.get_role_policy(RoleName=role["name"], PolicyName=got[0])["PolicyDocument"]
    by_sid = {st["Sid"]: st for st in policy["Statement"]}
    dst = sorted(f"arn:aws:s3:::{t}" for t in names.buckets.values())
    assert by_sid["ReencryptTargetObjects"] == {
        "Sid": "ReencryptTargetObjects",
        "Effect": "Allow",
        "Action": ["s3:UpdateObjectEncryption"],
        "Resource": [f"{a}/*" for a in dst],
    }
    assert by_sid["GenerateManifestOfTargets"] == {
        "Sid": "GenerateManifestOfTargets",
        "Effect": "Allow",
        "Action": ["s3:PutInventoryConfiguration"],
        "Resource": dst,
    }
    assert by_sid["UseMigrationKey"] == {
        "Sid": "UseMigrationKey",
        "Effect": "Allow",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        "Resource": [KEY],
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{cfg.target_region}.amazonaws.com"}},
    }
    # The copy's rights are gone: the role can neither read nor write any target object's data.
    target_objects = {f"{a}/*" for a in dst}
    for st in policy["Statement"]:
        if target_objects & set(st["Resource"]):
            assert not {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"} & set(st["Action"]), st["Sid"]
    under = [f"arn:aws:s3:::{names.reports_bucket}/batch-replication/*"]
    assert by_sid["ReadManifest"]["Resource"] == by_sid["WriteManifestAndReport"]["Resource"] == under
    assert iam.wildcard_actions(policy) == [] and iam.wildcard_resources(policy) == []
    with pytest.raises(ValueError, match="migration key"):
        iam.reencrypt_statements(list(names.buckets.values()), cfg.target_region, "")


def test_migrate_reencrypts_after_a_job_that_replicated(
    prefect_harness: None, backend: Backend, control: tuple[Stubber, list[str]], tmp_path: Path
) -> None:
    """The flow's wiring: the replication job replicated (stubbed: 2 tasks succeeded), so the re-encryption job
    is created in the target region and followed, and the report's backfill carries it as reencryptJob."""
    from flows.common import RunOptions
    from flows.migrate import migrate
    from tasks.report.render import render_markdown

    stub, regions = control
    conf: dict[str, Any] = {"sourceRegion": SRC, "targetRegion": "eu-west-1", "migrationBatch": "reencflow"}
    conf |= {"timestamp": "20261128", "environmentSuffix": "t", "s3Buckets": [{"name": "reenc-src-bucket"}]}
    conf["dynamodbTables"] = []
    cfg = parse_config(conf)
    names, s3 = resource_names(cfg), backend.client("s3", SRC)
    s3.create_bucket(Bucket="reenc-src-bucket")
    for k in ("k/0", "k/1"):
        s3.put_object(Bucket="reenc-src-bucket", Key=k, Body=k.encode())
    stub.add_response("list_jobs", {"Jobs": []}, expected_params={"AccountId": ACCOUNT, "MaxResults": 1})
    stub.add_response("create_job", {"JobId": REPL_JOB}, expected_params=None)
    # No report is read: the stubbed job reports no failure and there is no manifest.json (NoSuchKey is tolerated).
    stub.add_response("describe_job", _described(REPL_JOB, "Complete", 2, 2, 0), expected_params=None)
    stub.add_response("create_job", {"JobId": JOB}, expected_params=None)
    stub.add_response(
        "describe_job", _described(JOB, "Complete", 0, 0, 0), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )
    created: list[dict[str, Any]] = []  # every CreateJob request the flow makes, as sent
    stub.client.meta.events.register(
        "provide-client-params.s3-control.CreateJob", lambda params, **_: created.append(dict(params))
    )
    path = tmp_path / "migration.json"
    path.write_text(json.dumps(conf))

    report = migrate(RunOptions(config_path=str(path), use_aws=True), str(tmp_path / "r.json"), "quick", 0)

    bucket = report["resources"]["s3Buckets"][0]
    assert bucket["backfill"]["job"]["jobId"] == REPL_JOB
    assert bucket["backfill"]["reencryptJob"]["jobId"] == JOB
    assert bucket["backfill"]["reencryptJob"]["status"] == "Complete"
    how = "UpdateObjectEncryption in place: no new version, ETag and checksums kept"
    assert f"  - re-encryption job {JOB} ({how}): Complete, 0 of 0 re-encrypted, 0 failed" in render_markdown(report)
    assert regions[-2:] == ["eu-west-1", "eu-west-1"]  # CreateJob and DescribeJob of the target bucket's job
    # The job over the versioned target's generated manifest re-encrypts in place: no job of the run copies.
    assert [list(r["Operation"]) for r in created] == [["S3ReplicateObject"], ["S3UpdateObjectEncryption"]]
    assert created[1]["Operation"]["S3UpdateObjectEncryption"]["ObjectEncryption"]["SSEKMS"]["BucketKeyEnabled"]
    assert "S3PutObjectCopy" not in json.dumps(created)
    store = CheckpointStore(backend, cfg.target_region, names.checkpoint_table)
    recorded = store.get(batch_pk("reenc-src-bucket"), BATCH_REENCRYPT_SK)
    assert recorded is not None and recorded["jobId"] == JOB


def test_the_plan_says_what_the_reencryption_job_would_cost_at_most() -> None:
    """The estimate does not count the job (it cannot know which source objects are SSE-S3) but says its price:
    one more job ($0.25) and every version at $1.00 per million, from the price table."""
    from config.prices import load_prices
    from tasks import estimate

    e = estimate.s3_batch_replication(load_prices(), 1_000_000, 1024**3, versions=1_500_000)
    said = [a for a in e["assumptions"] if "UpdateObjectEncryption" in a]
    assert len(said) == 1 and "at most $1.75 plus KMS requests" in said[0]
    assert e["requests"]["Batch Operations jobs"] == 1  # counted: the replication job only
