"""Preflight refuses bad input with one line per problem and creates nothing; plan counts the work."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from config.model import MigrationConfig, parse_config
from tasks.aws import Backend
from tasks.preflight import check, format_plan, plan


def make_sources(backend: Backend, cfg: MigrationConfig, objects: int = 3) -> None:
    s3 = backend.client("s3", cfg.source_region)
    for b in cfg.s3_buckets:
        s3.create_bucket(Bucket=b.name)
        for i in range(objects):
            s3.put_object(Bucket=b.name, Key=f"k{i}", Body=b"x" * 10)
    ddb = backend.client("dynamodb", cfg.source_region)
    for t in cfg.dynamodb_tables:
        attrs = [{"AttributeName": t.hash_key, "AttributeType": t.hash_key_type}]
        keys = [{"AttributeName": t.hash_key, "KeyType": "HASH"}]
        if t.range_key:
            attrs.append({"AttributeName": t.range_key, "AttributeType": t.range_key_type})
            keys.append({"AttributeName": t.range_key, "KeyType": "RANGE"})
        ddb.create_table(
            TableName=t.name,
            AttributeDefinitions=attrs,
            KeySchema=keys,
            ProvisionedThroughput={"ReadCapacityUnits": t.read_capacity, "WriteCapacityUnits": t.write_capacity},
        )


def everything(backend: Backend) -> dict[str, Any]:
    return {
        "buckets": sorted(b["Name"] for b in backend.client("s3", "us-east-1").list_buckets()["Buckets"]),
        "tables": backend.client("dynamodb", "eu-west-1").list_tables()["TableNames"],
        "keys": len(backend.client("kms", "eu-west-1").list_keys()["Keys"]),
        "topics": backend.client("sns", "eu-west-1").list_topics()["Topics"],
        "roles": backend.client("iam", "us-east-1").list_roles()["Roles"],
    }


def test_clean_sources_pass_and_plan_counts_without_creating(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    before = everything(backend)
    pf = check.fn(backend, cfg)
    assert pf.errors == []
    assert pf.account_id == "123456789012"
    assert {t["state"] for t in pf.targets} == {"absent"}
    p = plan(backend, cfg, pf)
    assert p["totals"]["objects"] == 6 and p["totals"]["bytes"] == 60
    assert {"resource": "s3 bucket", "name": "analytics-raw-data-eu-20261128-dev", "action": "create"} in p["steps"]
    assert {"resource": "source s3 bucket", "name": "analytics-raw-data", "action": "enable versioning"} in p["steps"]
    text = format_plan(p)
    assert "Nothing has been changed." in text
    assert everything(backend) == before


def test_missing_sources_each_get_a_line(backend: Backend, cfg: MigrationConfig) -> None:
    pf = check.fn(backend, cfg)
    assert pf.errors == [
        "s3Buckets[0] (analytics-raw-data): source bucket does not exist; check the name or sourceRegion",
        "s3Buckets[1] (analytics-processed): source bucket does not exist; check the name or sourceRegion",
    ] + [
        f"dynamodbTables[{i}] ({name}): source table does not exist in us-east-1; check the name or sourceRegion"
        for i, name in enumerate(("analytics-events", "analytics-users"))
    ]


def test_bucket_in_another_region(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    s3 = backend.client("s3", "us-west-2")
    backend.client("s3", "us-east-1").delete_objects(
        Bucket="analytics-processed", Delete={"Objects": [{"Key": f"k{i}"} for i in range(3)]}
    )
    backend.client("s3", "us-east-1").delete_bucket(Bucket="analytics-processed")
    s3.create_bucket(Bucket="analytics-processed", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    pf = check.fn(backend, cfg)
    assert pf.errors == [
        "s3Buckets[1] (analytics-processed): source bucket is in us-west-2, not sourceRegion "
        "us-east-1; fix sourceRegion"
    ]


def test_target_name_collision_with_foreign_resource(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    backend.client("s3", "eu-west-1").create_bucket(
        Bucket=cfg.target_name("analytics-raw-data"), CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    pf = check.fn(backend, cfg)
    assert len(pf.errors) == 1
    assert (
        "target bucket 'analytics-raw-data-eu-20261128-dev' already exists and was not created by this migration"
        in pf.errors[0]
    )
    # Once it carries our tags it is ours: a re-run may use it.
    backend.client("s3", "eu-west-1").put_bucket_tagging(
        Bucket=cfg.target_name("analytics-raw-data"),
        Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in cfg.tags().items()]},
    )
    pf = check.fn(backend, cfg)
    assert pf.errors == []
    assert {"type": "s3 bucket", "name": "analytics-raw-data-eu-20261128-dev", "state": "ours"} in pf.targets


def test_a_foreign_bucket_with_the_staging_name_stops_preflight(backend: Backend, cfg: MigrationConfig) -> None:
    """Every run with tables stages validation rows in the staging bucket: a bucket of that name that is not ours
    stops the run before anything is created, not at validation after the copy."""
    from tasks.names import staging_bucket

    make_sources(backend, cfg)
    staging = staging_bucket(cfg)
    backend.client("s3", "eu-west-1").create_bucket(
        Bucket=staging, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    pf = check.fn(backend, cfg)
    assert pf.errors == [
        f"s3 bucket (staging) {staging!r} already exists in eu-west-1 and was not created by this migration; "
        "change timestamp or environmentSuffix, or remove it"
    ]
    backend.client("s3", "eu-west-1").put_bucket_tagging(
        Bucket=staging, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in cfg.tags().items()]}
    )
    pf = check.fn(backend, cfg)
    assert pf.errors == [] and {"type": "s3 bucket (staging)", "name": staging, "state": "ours"} in pf.targets


def test_config_contradicting_the_source_table(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    wrong = cfg.model_copy(deep=True)
    wrong.dynamodb_tables[0].hash_key = "id"
    pf = check.fn(backend, wrong)
    assert len(pf.errors) == 1
    assert pf.errors[0].startswith("dynamodbTables[0] (analytics-events): hashKey 'id'")


def test_no_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cfg: MigrationConfig) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    pf = check.fn(Backend(kind="endpoint", endpoint_url="http://127.0.0.1:9"), cfg)
    assert pf.errors == [
        "no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass --profile"
    ]


def test_unreachable_endpoint_is_one_line(cfg: MigrationConfig) -> None:
    pf = check.fn(Backend(kind="emulator", endpoint_url="http://127.0.0.1:9"), cfg)
    assert len(pf.errors) == 1
    assert pf.errors[0].startswith("cannot reach http://127.0.0.1:9")


def test_old_eu_bucket_answering_eu_is_in_eu_west_1(backend: Backend, cfg: MigrationConfig) -> None:
    """GetBucketLocation answers 'EU' for old eu-west-1 buckets (S3 API reference; 'EU' is a value of the
    model's BucketLocationConstraint). moto cannot create one: the source client is stubbed (Stubber checks
    the answers against the real service model); the target side is moto's."""
    data = cfg.model_dump() | {"sourceRegion": "eu-west-1", "targetRegion": "eu-central-1", "dynamodbTables": []}
    eu = parse_config(data | {"s3Buckets": data["s3Buckets"][:1]})
    with Stubber(backend.client("s3", "eu-west-1")) as source:
        source.add_response("get_bucket_location", {"LocationConstraint": "EU"}, {"Bucket": "analytics-raw-data"})
        source.add_response("get_bucket_versioning", {"Status": "Enabled"}, {"Bucket": "analytics-raw-data"})
        pf = check.fn(backend, eu)
        assert pf.errors == []
        source.assert_no_pending_responses()
    assert pf.buckets == [{"name": "analytics-raw-data", "region": "eu-west-1", "versioning": "Enabled"}]


# ------------------------------------------------------------------ existing readers of the source stream


def _with_stream(backend: Backend, cfg: MigrationConfig) -> str:
    """Sources as usual, analytics-events with a NEW_AND_OLD_IMAGES stream; returns the stream ARN."""
    make_sources(backend, cfg)
    ddb = backend.client("dynamodb", cfg.source_region)
    ddb.update_table(
        TableName="analytics-events",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(ddb.describe_table(TableName="analytics-events")["Table"]["LatestStreamArn"])


def _reader_function(backend: Backend, region: str) -> str:
    role = backend.client("iam", region).create_role(RoleName="partner-reader", AssumeRolePolicyDocument="{}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("h.py", "def h(event, context):\n    return None\n")
    backend.client("lambda", region).create_function(
        FunctionName="partner-reader",
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="h.h",
        Code={"ZipFile": buf.getvalue()},
    )
    return str(role["Role"]["Arn"])


def test_stream_readers_are_a_warning_not_an_error(backend: Backend, cfg: MigrationConfig) -> None:
    stream = _with_stream(backend, cfg)
    pf = check.fn(backend, cfg)
    assert pf.errors == [] and pf.warnings == []
    assert pf.tables[0]["streamConsumers"]["lambdaEventSourceMappings"] == []

    role = _reader_function(backend, cfg.source_region)
    mapping = backend.client("lambda", cfg.source_region).create_event_source_mapping(
        EventSourceArn=stream, FunctionName="partner-reader", StartingPosition="LATEST"
    )
    pf = check.fn(backend, cfg)
    assert pf.errors == []
    assert len(pf.warnings) == 1
    assert pf.warnings[0].startswith(
        f"dynamodbTables[0] (analytics-events): the source stream already has 1 reader(s) (Lambda event source "
        f"mapping {mapping['UUID']} ("
    )
    assert "makes 2: at the limit" in pf.warnings[0]

    backend.client("pipes", cfg.source_region).create_pipe(
        Name="partner-pipe",
        RoleArn=role,
        Source=stream,
        SourceParameters={"DynamoDBStreamParameters": {"StartingPosition": "LATEST"}},
        Target="arn:aws:sqs:us-east-1:123456789012:partner",
    )
    pf = check.fn(backend, cfg)
    assert pf.errors == [] and len(pf.warnings) == 1
    assert "2 reader(s)" in pf.warnings[0] and "pipe partner-pipe" in pf.warnings[0]
    assert "makes 3: over the limit" in pf.warnings[0]
    assert [p["name"] for p in pf.tables[0]["streamConsumers"]["pipes"]] == ["partner-pipe"]


def test_a_backend_without_pipes_is_reported_and_skipped(backend: Backend, cfg: MigrationConfig) -> None:
    _with_stream(backend, cfg)
    with Stubber(backend.client("pipes", cfg.source_region)) as pipes:
        pipes.add_client_error("list_pipes", "NotImplemented", "not here", 501)
        pf = check.fn(backend, cfg)
    assert pf.errors == [] and pf.warnings == []
    assert pf.tables[0]["streamConsumers"]["notSupportedByBackend"] == ["pipes: NotImplemented"]


def test_flows_pass_the_stream_warning_on(
    prefect_harness: None, backend: Backend, cfg: MigrationConfig, tmp_path: Path
) -> None:
    """flows.parts.begin logs preflight's warnings and hands them to the report (migrate: preflightWarnings)."""
    from prefect import flow

    from flows.common import RunOptions
    from flows.parts import begin

    stream = _with_stream(backend, cfg)
    _reader_function(backend, cfg.source_region)
    backend.client("lambda", cfg.source_region).create_event_source_mapping(
        EventSourceArn=stream, FunctionName="partner-reader", StartingPosition="LATEST"
    )
    path = tmp_path / "migration.json"
    path.write_text(cfg.model_dump_json())

    @flow
    def start() -> list[str]:
        warnings: list[str] = []
        begin(RunOptions(config_path=str(path), use_aws=True), warnings=warnings)
        return warnings

    warnings = start()
    assert len(warnings) == 1 and "the source stream already has 1 reader(s)" in warnings[0]


def test_a_bare_500_from_a_stream_reader_lister_is_unchecked_not_unsupported() -> None:
    """On AWS a 500 is a transient InternalFailure: the readers were not checked (a warning), not "not supported"."""
    from botocore.exceptions import ClientError

    from tasks import preflight

    out: dict[str, Any] = {"notSupportedByBackend": [], "unchecked": []}
    err = ClientError({"Error": {"Code": "500", "Message": ""}}, "ListPipes")
    preflight._unchecked(out, "pipes", err)
    assert out == {"notSupportedByBackend": [], "unchecked": ["pipes: 500"]}
    preflight._unchecked(out, "pipes", ClientError({"Error": {"Code": "NotImplemented"}}, "ListPipes"))
    assert out["notSupportedByBackend"] == ["pipes: NotImplemented"]


def test_plan_prices_what_full_validation_will_stream(backend: Backend, cfg: MigrationConfig) -> None:
    """Objects with a checksum S3 keeps through the copy are proven from stored checksums; the plan names the
    ones without (streamed from the source region, one side only) and their bytes."""
    import boto3
    from botocore.config import Config

    make_sources(backend, cfg)  # boto3's puts: each carries its CRC32
    bare = boto3.client("s3", region_name="us-east-1", config=Config(request_checksum_calculation="when_required"))
    bare.put_object(Bucket="analytics-raw-data", Key="old/no-checksum", Body=b"x" * 1000)
    p = plan(backend, cfg, check.fn(backend, cfg))
    raw = next(b for b in p["buckets"] if b["name"] == "analytics-raw-data")
    assert (raw["validationStreamObjects"], raw["validationStreamBytes"]) == (1, 1000)
    assert "full validation streams 1 source objects without a checksum" in format_plan(p)
