"""The plan says what is really there (checkpoint table, our replication rule, a table's size where DescribeTable
reports none) and prices each store on its path, on in-process moto; read-only."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from config.model import MigrationConfig
from tasks import plan_estimate
from tasks.aws import Backend, bucket_arn
from tasks.move import dynamodb_import_plan
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.move.dynamodb_plan import item_size
from tasks.move.s3_plan import replication_rule, replication_rule_id
from tasks.move.s3_replication import ensure_replication
from tasks.names import resource_names
from tasks.preflight import check, format_plan, plan
from tasks.provision import iam, kms, s3
from tests.unit.test_preflight import everything, make_sources

ACCOUNT = "123456789012"


def _checkpoint_step(p: dict[str, Any]) -> str:
    return next(s["action"] for s in p["steps"] if s["resource"] == "dynamodb table (checkpoints)")


def _rule_steps(p: dict[str, Any]) -> list[str]:
    return [s["action"] for s in p["steps"] if "replication rule" in s["action"]]


def test_plan_prices_every_store_names_its_path_and_changes_nothing(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    before = everything(backend)
    p = plan(backend, cfg, check.fn(backend, cfg), s3_batch_min_objects=3, dynamodb_import_min_bytes=None)
    assert [b["cost"]["path"] for b in p["buckets"]] == ["batch-replication", "batch-replication"]
    assert [t["cost"]["path"] for t in p["tables"]] == ["scan", "scan"]
    assert p["buckets"][0]["cost"]["why"] == "S3 Batch Replication: 3 objects >= threshold 3"
    assert p["tables"][0]["cost"]["why"] == "parallel scan: import threshold off"
    text = format_plan(p)
    assert text.count("    estimate: $") == 4  # every bucket and table: a cost and a duration
    assert text.count("    path: ") == 4
    assert "  estimated total: $" in text and "prices: us-east-1 list prices of " in text
    assert "    the other path, client-copy: $" in text
    assert p["cost"]["prices"]["prices"]["s3PutCopyList"]["source"] == "https://aws.amazon.com/s3/pricing/"
    assert everything(backend) == before


def test_checkpoint_table_that_exists_is_not_create(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    assert _checkpoint_step(plan(backend, cfg)) == "create"
    name = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, cfg.target_region, name, cfg.tags(), None)
    assert _checkpoint_step(plan(backend, cfg)).startswith("exists (ours")


def test_our_replication_rule_in_place_is_not_put_again(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    assert _rule_steps(plan(backend, cfg)) == [
        f"put replication rule to {cfg.target_name(b.name)}" for b in cfg.s3_buckets
    ]
    key = kms.ensure_key.fn(backend, cfg, ACCOUNT)
    role = iam.ensure_replication_role.fn(backend, cfg, key["arn"])
    for spec in cfg.s3_buckets:
        s3.ensure_bucket.fn(backend, cfg, spec, key["arn"])
    first = cfg.s3_buckets[0].name
    target = cfg.target_name(first)
    ensure_replication.fn(backend, cfg, first, target, role["arn"], key["arn"])
    # moto answers DeleteMarkerReplication "Disabled" for the "Enabled" we put (ensure_replication re-puts and
    # reports it under notSupportedByBackend on every run): the plan says that run's update, and the second
    # bucket has no rule yet.
    assert _rule_steps(plan(backend, cfg)) == [
        f"update replication rule to {target} (DeleteMarkerReplication.Status)",
        f"put replication rule to {cfg.target_name(cfg.s3_buckets[1].name)}",
    ]
    # Read back as AWS keeps it (the rule exactly as put, under our role): in place, nothing to put.
    src = backend.client("s3", cfg.source_region)
    ours = replication_rule(replication_rule_id(cfg), 1, bucket_arn(target, cfg.target_region), key["arn"])
    as_put = {"ReplicationConfiguration": {"Role": role["arn"], "Rules": [ours]}}
    with Stubber(src) as stub:
        stub.add_response("get_bucket_replication", as_put, {"Bucket": first})
        assert plan_estimate.replication_action(backend, cfg, first, target) == (
            f"replication rule to {target} in place (ours)"
        )
    # A backend that returns no DeleteMarkerReplication at all: no difference seen, and the plan says why it re-puts.
    lacking = {k: v for k, v in ours.items() if k != "DeleteMarkerReplication"}
    with Stubber(src) as stub:
        stub.add_response(
            "get_bucket_replication", {"ReplicationConfiguration": {"Role": role["arn"], "Rules": [lacking]}}
        )
        assert plan_estimate.replication_action(backend, cfg, first, target) == (
            f"replication rule to {target} in place (ours; the backend returns no DeleteMarkerReplication.Status: "
            "a run puts the rule again)"
        )
    # Our rule changed behind our back (Status) or another role: the plan says what a run would repair.
    for rule, role_arn, says in (
        ({**ours, "Status": "Disabled"}, role["arn"], "(Status)"),
        (ours, "arn:aws:iam::123456789012:role/someone-else", "(role)"),
    ):
        with Stubber(src) as stub:
            stub.add_response(
                "get_bucket_replication", {"ReplicationConfiguration": {"Role": role_arn, "Rules": [rule]}}
            )
            assert plan_estimate.replication_action(backend, cfg, first, target) == (
                f"update replication rule to {target} {says}"
            )


def test_a_table_size_describe_table_does_not_report_is_sampled(backend: Backend, cfg: MigrationConfig) -> None:
    make_sources(backend, cfg)
    ddb = backend.client("dynamodb", cfg.source_region)
    name = cfg.dynamodb_tables[1].name  # hash key userId
    items = [{"userId": {"S": f"u{i:03d}"}, "blob": {"S": "x" * (i % 7 * 100)}} for i in range(140)]
    for it in items:
        ddb.put_item(TableName=name, Item=it)
    desc = ddb.describe_table(TableName=name)["Table"]
    size = plan_estimate.table_size(ddb, name, {**desc, "TableSizeBytes": 0, "ItemCount": 0})
    assert size.items == 140  # the sample's page was full: the rest counted by a COUNT scan
    sample = ddb.scan(TableName=name, Limit=100)["Items"]
    assert size.bytes == round(sum(item_size(i) for i in sample) / 100 * 140)
    assert size.source.startswith("estimated from a sample of 100 items (")
    assert size.source.endswith("x 140 items counted (ItemCount not reported)")
    # The plan prints the estimate, not "~0 B", for every table whose size DescribeTable does not report
    text = format_plan(plan(backend, cfg))
    assert "~0 B" not in text.replace("~0 B (DescribeTable: 0; a Scan found no item)", "")
    assert f"dynamodb {name} -> {cfg.target_name(name)}: ~140 items, ~" in text
    assert "estimated from a sample of 100 items" in text


def test_a_reported_size_is_taken_and_item_count_scales_the_sample() -> None:
    import boto3

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    assert plan_estimate.table_size(ddb, "t", {"ItemCount": 10, "TableSizeBytes": 5000}).source == (
        "DescribeTable (approximate)"
    )
    with Stubber(ddb) as stub:
        page = [
            {"pk": {"S": "abcd"}, "v": {"N": "1"}}
        ] * 4  # names 2 + 1, "abcd" 4, the number 1 byte (len // 2 + 1): 8 bytes each
        stub.add_response("scan", {"Items": page, "Count": 4}, {"TableName": "t", "Limit": 100})
        size = plan_estimate.table_size(ddb, "t", {"ItemCount": 1_000_000, "TableSizeBytes": 0})
    assert (size.items, size.bytes) == (1_000_000, 8_000_000)
    assert size.source == "estimated from a sample of 4 items (8 B each) x ItemCount 1,000,000"


def test_import_cannot_serve_lsis_or_more_than_the_regions_quota() -> None:
    """The plan asks the run's own check, with its estimated size: both decide alike, in decimal TB."""
    blocked = plan_estimate.import_blocked
    assert blocked is dynamodb_import_plan.import_blocked
    assert blocked({"LocalSecondaryIndexes": [{}]}, "eu-west-1", 1) == (
        "it has local secondary indexes, which ImportTable cannot create"
    )
    assert blocked({}, "eu-west-1", 15 * 10**12) is None and blocked({}, "eu-west-1", 14 * 10**12 + 1) is None
    assert "(15 TB) in eu-west-1" in (blocked({}, "eu-west-1", 15 * 10**12 + 1) or "")
    assert blocked({}, "eu-west-1", 14 * 1024**4) is not None  # 14 TiB is 15.4 TB: over, read the smaller way
    assert "(1 TB) in ap-south-1" in (blocked({}, "ap-south-1", 2 * 1024**4) or "")
    # The plan's size wins over DescribeTable's (which reports 0 until its ~6-hourly update, and on moto).
    assert blocked({"TableSizeBytes": 0}, "ap-south-1", 2 * 10**12) is not None
