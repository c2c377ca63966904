"""S3 Batch Replication (tasks/move/s3_batch.py): the CreateJob request against botocore's real S3 Control model
(Stubber), DescribeJob polling and its progress, the JobId checkpoint and the no-second-job rule, the completion
report parser on the documented format, the path choice, the Batch role's policy and the reports bucket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from config.model import MigrationConfig, parse_config
from tasks.aws import Backend, tag_list
from tasks.move import s3_batch
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.keys import BATCH_JOB_SK, batch_pk
from tasks.move.s3_plan import replication_rule_id
from tasks.names import resource_names
from tasks.paths import S3_BATCH_REPLICATION, S3_CLIENT_COPY, s3_path
from tasks.provision import iam
from tasks.provision.s3_reports import ensure_reports_bucket, find_reports_bucket

ACCOUNT = "123456789012"  # moto's
SRC = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/migration-s3-batch-eu-20261128-dev"
JOB = "8f5b2c1e-0d7a-4b7e-9d6f-3a2b1c0d9e8f"

# From the S3 User Guide, "Examples: S3 Batch Operations completion reports": the top-level manifest.json and a
# failed-tasks CSV (no header row; Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage).
REPORT_MANIFEST = {
    "Format": "Report_CSV_20180820",
    "ReportCreationDate": "2019-04-05T17:48:39.725Z",
    "Results": [
        {
            "TaskExecutionStatus": "succeeded",
            "Bucket": "my-job-reports",
            "MD5Checksum": "83b1c4cbe93fc893f54053697e10fd6e",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/6217b0fab0de85c408b4be96aeaca9b195a7daa5.csv",
        },
        {
            "TaskExecutionStatus": "failed",
            "Bucket": "my-job-reports",
            "MD5Checksum": "22ee037f3515975f7719699e5c416eaa",
            "Key": "job-f8fb9d89-a3aa-461d-bddc-ea6a1b131955/results/b2ddad417e94331e9f37b44f1faf8c7ed5873f2e.csv",
        },
    ],
    "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
}
FAILED_CSV = (
    'awsexamplebucket1,image_14975,,failed,200,PermanentFailure,"Lambda returned function error: {""errorMessage"":'
    '""2019-04-05T17:35:21.155Z 2845ca0d-38d9-4c4b-abcf-379dc749c452 Task timed out after 3.00 seconds""}"\n'
    "awsexamplebucket1,photos/a b,c.jpg,3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY,failed,400,InvalidRequest,"
    '"Object cannot be replicated, it is a replica"\n'
    "awsexamplebucket1,image_14975,,failed,200,PermanentFailure,again\n"
)


# ---------------------------------------------------------------- pure


def test_the_report_parser_reads_the_documented_format() -> None:
    files = s3_batch.failed_report_files(REPORT_MANIFEST)
    assert files == [("my-job-reports", str(REPORT_MANIFEST["Results"][1]["Key"]))]  # type: ignore[index]
    rows = s3_batch.parse_report_csv(FAILED_CSV)
    assert [r.key for r in rows] == ["image_14975", "photos/a b", "image_14975"]
    first = rows[0]
    assert (first.bucket, first.version_id, first.status) == ("awsexamplebucket1", "", "failed")
    assert (first.error_code, first.http_status) == ("PermanentFailure", "200")  # the example's order, either way
    assert first.message.startswith('Lambda returned function error: {"errorMessage":"2019-04-05')
    # A key with a comma is one quoted field: here it is not quoted, so the columns after it shift; a quoted one:
    quoted = s3_batch.parse_report_csv('b,"k,with,commas",v1,failed,AccessDenied,403,"denied, really"\n')[0]
    assert (quoted.key, quoted.version_id, quoted.error_code, quoted.http_status) == (
        "k,with,commas",
        "v1",
        "AccessDenied",
        "403",
    )
    assert quoted.message == "denied, really"
    assert s3_batch.failed_keys(rows) == ["image_14975", "photos/a b"]  # each key once
    with pytest.raises(ValueError, match="Report_CSV_20180820"):
        s3_batch.failed_report_files({"Format": "Other_2099"})


def test_the_path_choice_names_why() -> None:
    assert s3_path(10, None).path == S3_CLIENT_COPY
    assert s3_path(10, 0) == s3_path(10, 0, None)
    assert s3_path(10, 0).path == S3_BATCH_REPLICATION
    why = s3_batch.blocked_reason(Exception("x"))
    fallback = s3_path(20_000_000, 10_000_000, why)
    assert fallback.path == S3_CLIENT_COPY
    assert "20,000,000 objects >= threshold 10,000,000, but the backend has no S3 Batch Operations" in fallback.reason


def test_the_token_is_stable_per_batch_bucket_and_rule_and_fits() -> None:
    a = s3_batch.client_request_token("batch-001", "b", "rule")
    assert a == s3_batch.client_request_token("batch-001", "b", "rule") and 1 <= len(a) <= 64
    assert a != s3_batch.client_request_token("batch-001", "b2", "rule")
    assert a != s3_batch.client_request_token("batch-002", "b", "rule")
    assert a != s3_batch.client_request_token("batch-001", "b", "rule2")


def test_the_batch_role_is_scoped_to_the_source_buckets_and_the_reports_prefix(cfg: MigrationConfig) -> None:
    names = resource_names(cfg)
    trust, policy = iam.batch_role_policies(list(names.buckets), names.reports_bucket, SRC, "batch-replication")
    assert iam._trust_principal(trust) == ["batchoperations.s3.amazonaws.com"]
    by_action = {a: st["Resource"] for st in policy["Statement"] for a in st["Action"]}
    src = sorted(f"arn:aws:s3:::{b}" for b in names.buckets)
    assert by_action["s3:InitiateReplication"] == [f"{a}/*" for a in src]
    assert by_action["s3:GetReplicationConfiguration"] == by_action["s3:PutInventoryConfiguration"] == src
    under = [f"arn:aws:s3:::{names.reports_bucket}/batch-replication/*"]
    assert by_action["s3:GetObject"] == by_action["s3:GetObjectVersion"] == by_action["s3:PutObject"] == under
    assert iam.wildcard_actions(policy) == [] and iam.wildcard_resources(policy) == []
    assert not any(names.buckets[b] in json.dumps(policy) for b in names.buckets)  # no target bucket


# ---------------------------------------------------------------- Stubber: S3 Control's real service model


@pytest.fixture
def control(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """S3 Control answered by a Stubber (its requests checked against botocore's model); the rest is moto."""
    client = boto3.client("s3control", region_name=SRC, aws_access_key_id="x", aws_secret_access_key="x")
    real = Backend.client

    def client_for(self: Backend, service: str, region: str, max_attempts: int = 8) -> Any:
        return client if service == "s3control" else real(self, service, region, max_attempts)

    monkeypatch.setattr(Backend, "client", client_for)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def _checkpoints(backend: Backend, cfg: MigrationConfig) -> CheckpointStore:
    table = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, cfg.target_region, table, cfg.tags(), None)
    return CheckpointStore(backend, cfg.target_region, table)


def _described(status: str, total: int, ok: int, failed: int) -> dict[str, Any]:
    return {
        "Job": {
            "JobId": JOB,
            "Status": status,
            "ProgressSummary": {
                "TotalNumberOfTasks": total,
                "NumberOfTasksSucceeded": ok,
                "NumberOfTasksFailed": failed,
                "Timers": {"ElapsedTimeInActiveSeconds": 12},
            },
        }
    }


def test_the_job_is_created_once_recorded_before_it_is_waited_on_and_never_again(
    backend: Backend, cfg: MigrationConfig, control: Stubber
) -> None:
    store = _checkpoints(backend, cfg)
    source = cfg.s3_buckets[0].name
    names = resource_names(cfg)
    token = s3_batch.client_request_token(cfg.migration_batch, source, replication_rule_id(cfg))
    expected = s3_batch.create_job_request(cfg, ACCOUNT, source, ROLE)
    assert expected["ClientRequestToken"] == token and expected["RoleArn"] == ROLE and expected["AccountId"] == ACCOUNT
    assert expected["Tags"] == tag_list(cfg.tags())
    generator = expected["ManifestGenerator"]["S3JobManifestGenerator"]
    assert generator["SourceBucket"] == f"arn:aws:s3:::{source}"
    assert expected["Operation"] == {"S3ReplicateObject": {}} and expected["ConfirmationRequired"] is False
    assert generator["Filter"] == {"EligibleForReplication": True, "ObjectReplicationStatuses": ["NONE", "FAILED"]}
    assert generator["ManifestOutputLocation"]["Bucket"] == f"arn:aws:s3:::{names.reports_bucket}"
    assert generator["ManifestOutputLocation"]["ManifestEncryption"] == {"SSES3": {}}
    assert expected["Report"]["Bucket"] == f"arn:aws:s3:::{names.reports_bucket}"
    assert expected["Report"]["ReportScope"] == "FailedTasksOnly"
    control.add_response("create_job", {"JobId": JOB}, expected_params=expected)

    first = s3_batch.start_job(backend, cfg, source, ROLE, names.checkpoint_table)
    assert first["jobId"] == JOB and first["created"] is True and first["clientRequestToken"] == token
    assert store.get(batch_pk(source), BATCH_JOB_SK)["jobId"] == JOB  # type: ignore[index]

    # A re-run (a retry, a resumed flow, a Dask re-run) reads the JobId back: no second CreateJob is stubbed,
    # so one would fail the test.
    again = s3_batch.start_job(backend, cfg, source, ROLE, names.checkpoint_table)
    assert again["jobId"] == JOB and again["created"] is False


def test_the_job_is_followed_with_growing_waits_and_its_progress_published(backend: Backend, control: Stubber) -> None:
    expected = {"AccountId": ACCOUNT, "JobId": JOB}
    for answer in (
        _described("Preparing", 0, 0, 0),
        _described("Active", 1000, 200, 0),
        _described("Active", 1000, 800, 5),
        _described("Complete", 1000, 990, 10),
    ):
        control.add_response("describe_job", answer, expected_params=expected)
    waits: list[float] = []
    shown: list[float] = []
    done = s3_batch.follow_job(
        backend, SRC, JOB, lambda pct, _text: shown.append(pct), delay=1.0, max_delay=3.0, sleep=waits.append
    )
    assert waits == [1.0, 2.0, 3.0]  # doubling, bounded
    assert shown == [0, 20.0, 80.5, 100.0]
    assert done["status"] == "Complete" and (done["total"], done["succeeded"], done["failed"]) == (1000, 990, 10)


def test_a_job_still_running_at_the_deadline_raises(backend: Backend, control: Stubber) -> None:
    control.add_response(
        "describe_job", _described("Active", 10, 1, 0), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )
    with pytest.raises(TimeoutError, match="still Active"):
        s3_batch.follow_job(backend, SRC, JOB, lambda *_: None, delay=5.0, timeout_s=1.0, sleep=lambda _s: None)


def test_the_probe_names_the_refusal(backend: Backend, control: Stubber) -> None:
    control.add_client_error("list_jobs", service_error_code="404", http_status_code=404)
    assert s3_batch.probe.fn(backend, SRC) == "the backend has no S3 Batch Operations (S3 Control ListJobs: 404)"
    control.add_response("list_jobs", {"Jobs": []}, expected_params={"AccountId": ACCOUNT, "MaxResults": 1})
    assert s3_batch.probe.fn(backend, SRC) == ""


def test_moto_has_no_s3_batch_operations(backend: Backend) -> None:
    """Measured, not assumed: the probe on moto (in-process) reports the 404 (FACTS.md)."""
    assert s3_batch.probe.fn(backend, SRC) == "the backend has no S3 Batch Operations (S3 Control ListJobs: 404)"


def test_the_failed_keys_of_a_finished_job_go_to_the_client_copy(
    backend: Backend, cfg: MigrationConfig, control: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End of a job: its report (manifest.json + the failed CSV) read from the reports bucket, each failed key copied
    by the client under the migration key and recorded in the manifest; the succeeded ones are left to the catch-up."""
    from tasks.move.keys import manifest_pk
    from tasks.provision import kms

    names = resource_names(cfg)
    store = _checkpoints(backend, cfg)
    source, target = cfg.s3_buckets[0].name, names.buckets[cfg.s3_buckets[0].name]
    key = kms.ensure_key.fn(backend, cfg, ACCOUNT)["arn"]
    s3s, s3t = backend.client("s3", SRC), backend.client("s3", cfg.target_region)
    s3s.create_bucket(Bucket=source)
    s3t.create_bucket(Bucket=target, CreateBucketConfiguration={"LocationConstraint": cfg.target_region})
    for k in ("photos/a b", "image_14975", "ok-1"):
        s3s.put_object(Bucket=source, Key=k, Body=k.encode())
    reports = ensure_reports_bucket.fn(backend, cfg)
    prefix = s3_batch.job_prefix(source)
    manifest = dict(REPORT_MANIFEST, Results=[dict(REPORT_MANIFEST["Results"][1], Bucket=names.reports_bucket)])  # type: ignore[index]
    csv_key = str(manifest["Results"][0]["Key"])  # type: ignore[index]
    s3s.put_object(Bucket=names.reports_bucket, Key=f"{prefix}/job-{JOB}/manifest.json", Body=json.dumps(manifest))
    s3s.put_object(Bucket=names.reports_bucket, Key=csv_key, Body=FAILED_CSV.replace("awsexamplebucket1", source))
    store.put(batch_pk(source), BATCH_JOB_SK, {"jobId": JOB, "reportPrefix": prefix})  # started by an earlier run
    control.add_response(
        "describe_job", _described("Complete", 3, 1, 2), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )

    shown: list[float] = []
    monkeypatch.setattr(s3_batch, "prefect_progress", lambda _what: lambda pct, _text: shown.append(pct))
    out = s3_batch.batch_backfill.fn(backend, cfg, source, ROLE, key, delay=0)
    assert shown == [100.0]
    assert out["job"] | {"created": False} == out["job"] and out["job"]["reportFailedKeys"] == 2
    assert out["copy"]["copied"] == 2 and out["copy"]["failed"] == 0
    held = {o["Key"] for o in s3t.list_objects_v2(Bucket=target)["Contents"]}
    assert held == {"photos/a b", "image_14975"}
    assert s3t.head_object(Bucket=target, Key="photos/a b")["SSEKMSKeyId"] == key
    assert dict(store.query(manifest_pk(target))).keys() == {"photos/a b", "image_14975"}
    assert reports["encryption"]["algorithm"] == "AES256" and reports["region"] == SRC


def test_the_reports_bucket_is_private_sse_s3_tagged_and_found_for_teardown(
    backend: Backend, cfg: MigrationConfig
) -> None:
    first = ensure_reports_bucket.fn(backend, cfg)
    assert first["created"] is True and first["region"] == SRC
    assert first["encryption"]["algorithm"] == "AES256"
    assert all(first["publicAccessBlock"].values())
    assert cfg.owns(first["tags"])
    again = ensure_reports_bucket.fn(backend, cfg)
    assert again["created"] is False and again["repaired"] == []
    found = find_reports_bucket(backend, cfg)
    assert found == {"name": resource_names(cfg).reports_bucket, "region": SRC, "owned": True}


def test_teardown_finds_and_removes_the_reports_bucket_and_the_batch_role(
    backend: Backend, cfg: MigrationConfig
) -> None:
    """The reports bucket holds manifests and reports only: teardown deletes it with its contents even when target
    data is kept; the Batch role goes with the other roles."""
    from tasks import teardown as td

    names = resource_names(cfg)
    ensure_reports_bucket.fn(backend, cfg)
    backend.client("s3", SRC).put_object(
        Bucket=names.reports_bucket, Key="batch-replication/b/job-1/manifest.json", Body=b"{}"
    )
    iam.ensure_batch_role.fn(backend, cfg, "batch-replication")
    found = td.discover.fn(backend, cfg)
    assert found["reportsBucket"] == {"name": names.reports_bucket, "region": SRC, "owned": True}
    assert names.batch_role in {r["name"] for r in found["roles"]}
    plan = td.teardown_plan(cfg, found)
    actions = {(a["resource"], a["name"]): a for a in plan}
    bucket_action = actions[("reports-bucket", names.reports_bucket)]
    assert bucket_action["action"] == "delete" and bucket_action["region"] == SRC
    assert actions[("iam-role", names.batch_role)]["action"] == "delete"
    results = td.execute(backend, cfg, plan, delete_target_data=False)
    done = {(r["resource"], r["name"]): r["status"] for r in results}
    assert done[("reports-bucket", names.reports_bucket)] == "removed"
    assert done[("iam-role", names.batch_role)] == "removed"
    assert find_reports_bucket(backend, cfg) is None


def test_a_created_reports_bucket_is_a_source_change() -> None:
    from tasks.report.build import source_region_changes

    made = {"reportsBucket": {"name": "r", "region": SRC, "created": True}}
    assert source_region_changes(made) == [
        "created S3 bucket r in us-east-1 (manifests and reports of S3 Batch Replication)"
    ]


def test_migrate_takes_the_batch_path_where_s3_control_answers(
    prefect_harness: None, backend: Backend, control: Stubber, tmp_path: Path
) -> None:
    """The flow's wiring, with S3 Control answered as the API reference says (moto has none): the probe passes, the
    reports bucket and the Batch role are provisioned, one job is created and followed, the report names the path
    and the job, and the catch-up copies what the job (here: nobody) did not replicate, so the run is GO."""
    from flows.common import RunOptions
    from flows.migrate import migrate
    from tasks.move.s3_batch import create_job_request
    from tasks.report.render import render_markdown

    conf = {
        "sourceRegion": SRC,
        "targetRegion": "eu-west-1",
        "migrationBatch": "batchflow",
        "timestamp": "20261128",
        "environmentSuffix": "t",
        "s3Buckets": [{"name": "batch-src-bucket"}],
        "dynamodbTables": [],
    }
    s3 = backend.client("s3", SRC)
    s3.create_bucket(Bucket="batch-src-bucket")
    for i in range(5):
        s3.put_object(Bucket="batch-src-bucket", Key=f"k/{i}", Body=b"x" * i)
    cfg = parse_config(conf)
    names = resource_names(cfg)
    role = f"arn:aws:iam::{ACCOUNT}:role/{names.batch_role}"
    control.add_response("list_jobs", {"Jobs": []}, expected_params={"AccountId": ACCOUNT, "MaxResults": 1})
    expected = create_job_request(cfg, ACCOUNT, "batch-src-bucket", role)
    control.add_response("create_job", {"JobId": JOB}, expected_params=expected)
    control.add_response(
        "describe_job", _described("Complete", 0, 0, 0), expected_params={"AccountId": ACCOUNT, "JobId": JOB}
    )
    path = tmp_path / "migration.json"
    path.write_text(json.dumps(conf))

    report = migrate(RunOptions(config_path=str(path), use_aws=True), str(tmp_path / "r.json"), "quick", 0)

    assert report["verdict"]["decision"] == "GO", report["verdict"]
    bucket = report["resources"]["s3Buckets"][0]
    assert bucket["backfill"]["path"] == "batch-replication"
    assert bucket["backfill"]["pathReason"] == "S3 Batch Replication: threshold 0: every store"
    assert bucket["backfill"]["job"]["jobId"] == JOB and bucket["backfill"]["job"]["status"] == "Complete"
    assert bucket["catchUp"]["copied"] == 5  # the stubbed job replicated nothing: the catch-up copied it all
    assert report["resources"]["iam"]["batchRole"]["trustPrincipal"] == ["batchoperations.s3.amazonaws.com"]
    assert report["resources"]["sourceRegion"]["reportsBucket"]["encryption"]["algorithm"] == "AES256"
    assert any("manifests and reports of S3 Batch Replication" in c for c in report["sourceChanges"])
    md = render_markdown(report)
    assert f"- {names.buckets['batch-src-bucket']}: backfill by S3 Batch Replication: threshold 0" in md
    assert f"  - job {JOB}: Complete, 0 of 0 replicated, 0 failed" in md
