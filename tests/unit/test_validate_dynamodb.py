"""DynamoDB validation against moto in-process: exactly the seeded differences, nothing more."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.move.dynamodb_scan import scan_client
from tasks.names import resource_names, staging_bucket
from tasks.provision import kms
from tasks.provision.s3 import ensure_staging_bucket
from tasks.validate import dynamodb_partition as part
from tasks.validate.digest import key_string, parse_key_string
from tasks.validate.dynamodb import describe_difference, is_expired, validate_table

SRC = "analytics-events"
NOW = time.time()


def create(backend: Backend, region: str, name: str, ttl: bool) -> None:
    ddb = backend.client("dynamodb", region)
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "eventId", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "eventId", "KeyType": "HASH"},
            {"AttributeName": "timestamp", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})


def event(i: int, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "eventId": {"S": f"e-{i:03d}"},
        "timestamp": {"N": str(1_700_000_000 + i)},
        "qty": {"N": str(i)},
        "tags": {"SS": ["a", "b", f"t{i}"]},
        "scores": {"NS": ["1.5", "2", str(i)]},
        "blob": {"B": bytes([i % 256]) * 3},
        "active": {"BOOL": i % 2 == 0},
        "none": {"NULL": True},
        "history": {"L": [{"S": "created"}, {"N": "1"}]},
        "profile": {"M": {"address": {"M": {"city": {"S": "Paris"}, "zip": {"S": "75001"}}}, "age": {"N": "30"}}},
        "expiresAt": {"N": str(int(NOW) + 86_400)},
    }
    item.update(extra)
    return item


@pytest.fixture
def tables(backend: Backend, cfg: MigrationConfig) -> tuple[str, str]:
    kms.ensure_key.fn(backend, cfg, backend.account_id(cfg.target_region))  # the staging rows' key
    target = cfg.target_name(SRC)
    create(backend, cfg.source_region, SRC, ttl=True)
    create(backend, cfg.target_region, target, ttl=True)
    src = backend.client("dynamodb", cfg.source_region)
    dst = backend.client("dynamodb", cfg.target_region)

    def put(client: Any, table: str, item: dict[str, Any]) -> None:
        client.put_item(TableName=table, Item=item)

    for i in range(40):
        put(src, SRC, event(i))
        same = event(i)
        if i == 5:  # same number spelled differently and sets in another order: NOT a difference
            same["qty"] = {"N": "5.000"}
            same["tags"] = {"SS": ["t5", "b", "a"]}
        put(dst, target, same)
    # Seeded differences.
    put(src, SRC, event(100))  # missing in target
    put(dst, target, event(101))  # extra in target
    put(src, SRC, event(102, qty={"N": "1"}))  # type change N 1 -> S "1"
    put(dst, target, event(102, qty={"S": "1"}))
    put(src, SRC, event(103))  # nested change
    moved = event(103)
    moved["profile"]["M"]["address"]["M"]["city"] = {"S": "Lyon"}
    put(dst, target, moved)
    # Expired (TTL in the past) only in source: DynamoDB has not deleted it yet; NOT a mismatch.
    put(src, SRC, event(104, expiresAt={"N": str(int(NOW) - 3600)}))
    # Expired on both sides with different contents: skipped on both sides, NOT a mismatch.
    put(src, SRC, event(105, expiresAt={"N": str(int(NOW) - 60)}, qty={"N": "1"}))
    put(dst, target, event(105, expiresAt={"N": str(int(NOW) - 60)}, qty={"N": "2"}))
    # A TTL attribute that is not a number never expires.
    put(src, SRC, event(106, expiresAt={"S": "yesterday"}))
    put(dst, target, event(106, expiresAt={"S": "yesterday"}))
    return SRC, target


def key(i: int) -> str:
    return key_string(
        {"eventId": {"S": f"e-{i:03d}"}, "timestamp": {"N": str(1_700_000_000 + i)}}, ["eventId", "timestamp"]
    )


def summary(result: dict[str, Any]) -> dict[tuple[str, str], str]:
    m = result["mismatches"]
    return {(k, kind): d for k, kind, d in zip(m["key"], m["kind"], m["detail"], strict=True)}


def test_finds_exactly_the_seeded_differences(backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]) -> None:
    result = validate_table.fn(backend, cfg, *tables, segments=3)
    found = summary(result)
    assert set(found) == {
        (key(100), "missing_in_target"),
        (key(101), "extra_in_target"),
        (key(102), "different"),
        (key(103), "different"),
    }
    assert found[(key(102), "different")] == "attributes: qty (type N -> S)"
    assert found[(key(103), "different")] == "attributes: profile.address.city"
    assert (result["missing"], result["extra"], result["different"]) == (1, 1, 2)
    assert result["expiredSkipped"] == 2 and result["expiredSkippedTarget"] == 1
    assert result["sourceItems"] == 40 + 4 and result["targetItems"] == 40 + 4
    assert result["ttlAttribute"] == "expiresAt"
    assert result["keyAttributes"] == ["eventId", "timestamp"]
    assert parse_key_string(key(100)) == {"eventId": {"S": "e-100"}, "timestamp": {"N": "1700000100"}}


def test_partitioned_spill_gives_the_same_result(
    backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]
) -> None:
    one = validate_table.fn(backend, cfg, *tables, partitions=1)
    four = validate_table.fn(backend, cfg, *tables, partitions=4, segments=2)
    assert four["partitions"] == 4
    assert summary(four) == summary(one)
    counts = ("sourceItems", "targetItems", "expiredSkipped", "missing", "extra", "different")
    assert {k: four[k] for k in counts} == {k: one[k] for k in counts}
    spilled = backend.client("s3", cfg.target_region).list_object_versions(Bucket=staging_bucket(cfg))
    assert spilled.get("Versions", []) == [] and spilled.get("DeleteMarkers", []) == []  # removed afterwards


def test_identical_tables_are_clean(backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]) -> None:
    same_region = cfg.model_copy(update={"target_region": cfg.source_region})  # compare the source with itself
    kms.ensure_key.fn(backend, same_region, backend.account_id(cfg.source_region))
    result = validate_table.fn(backend, same_region, tables[0], tables[0])
    assert result["mismatches"].empty
    assert (result["missing"], result["extra"], result["different"]) == (0, 0, 0)


def test_expiry_rules() -> None:
    assert is_expired({"t": {"N": "100"}}, "t", 100.0)
    assert is_expired({"t": {"N": "99.5"}}, "t", 100.0)
    assert not is_expired({"t": {"N": "101"}}, "t", 100.0)
    assert not is_expired({"t": {"S": "1"}}, "t", 100.0)
    assert not is_expired({}, "t", 100.0)
    assert not is_expired({"t": {"N": "1"}}, None, 100.0)


def test_describe_difference() -> None:
    a = {"id": {"S": "1"}, "x": {"N": "1"}, "gone": {"S": "g"}}
    b = {"id": {"S": "1"}, "x": {"N": "2"}, "new": {"S": "n"}}
    assert describe_difference(a, b) == "attributes: gone (only in source); new (only in target); x"
    assert "changed during validation" in describe_difference(a, None)


def test_validation_reads_are_consistent_paced_and_counted(
    backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]
) -> None:
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    clients = [scan_client(backend, r) for r in (cfg.source_region, cfg.target_region)]
    clients += [backend.client("dynamodb", r) for r in (cfg.source_region, cfg.target_region)]
    for c in clients:
        c.meta.events.register("provide-client-params.dynamodb.Scan", record)
    try:
        four = validate_table.fn(backend, cfg, *tables, segments=4)
        one = validate_table.fn(backend, cfg, *tables, segments=1)
    finally:
        for c in clients:
            c.meta.events.unregister("provide-client-params.dynamodb.Scan", record)
    assert summary(four) == summary(one)
    assert seen and all(p["ConsistentRead"] is True and p["ReturnConsumedCapacity"] == "TOTAL" for p in seen)
    assert sum(1 for p in seen if p.get("TotalSegments") == 4) == 8  # 4 segments x 2 tables (one page each)
    assert sum(1 for p in seen if "Segment" not in p) == 2  # one segment: no segment parameters
    # On-demand tables: the default rate, split over the workers; what the pages consumed is counted.
    assert four["reads"]["source"]["readRate"] == 1000.0 and "/ 4 segment(s)" in four["reads"]["source"]["readRateFrom"]
    assert four["reads"]["source"]["consumedReadUnits"] > 0 and four["reads"]["target"]["consumedReadUnits"] > 0
    assert four["notSupportedByBackend"] == {} and four["segments"] == 4


# ---------------------------------------------------------------- the partitioned tasks (the flow's path)


def test_groups_and_hash_buckets_give_the_same_result_as_one_of_each(
    backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]
) -> None:
    one = validate_table.fn(backend, cfg, *tables, partitions=1, groups=1, segments=1)
    many = validate_table.fn(backend, cfg, *tables, partitions=3, groups=2, segments=4)
    assert (one["partitions"], one["groups"], one["taskRuns"]) == (1, 1, 3)  # 2 scans + 1 compare
    assert (many["partitions"], many["groups"], many["taskRuns"]) == (3, 2, 7)  # 2 x 2 scans + 3 compares
    assert summary(many) == summary(one) and len(summary(one)) == 4
    counts = ("sourceItems", "targetItems", "expiredSkipped", "expiredSkippedTarget", "missing", "extra", "different")
    assert {k: many[k] for k in counts} == {k: one[k] for k in counts}
    # Two groups of two segments each, one scanner per segment: the budget split over the 4 that run at once.
    assert "/ 4 segment(s)" in many["reads"]["source"]["readRateFrom"]


def test_rows_go_through_the_staging_prefix_under_the_migration_key_and_are_gone_after_the_compare(
    backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]
) -> None:
    key_arn = kms.migration_key_arn(backend, cfg)
    ensure_checkpoint_table.fn(backend, cfg.target_region, resource_names(cfg).checkpoint_table, cfg.tags(), key_arn)
    ensure_staging_bucket.fn(backend, cfg, key_arn)
    s3, staging = backend.client("s3", cfg.target_region), staging_bucket(cfg)
    puts: list[dict[str, Any]] = []
    s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: puts.append(dict(params)))
    plan = part.plan_table.fn(backend, cfg, *tables, segments=4, groups=2, buckets=3)
    scans = [part.scan_side.fn(backend, cfg, plan, s, g, "run1", key_arn) for s in part.SIDES for g in plan["groups"]]
    # Every PutObject asks for the key itself (not only the bucket default, which a backend may not apply).
    assert puts and all(p["ServerSideEncryption"] == "aws:kms" and p["SSEKMSKeyId"] == key_arn for p in puts)
    assert sum(s["kept"] for s in scans) == 44 + 44 and sum(sum(s["rows"]) for s in scans) == 88

    listed = s3.list_objects_v2(Bucket=staging, Prefix="validation/")["Contents"]
    assert listed and all(
        re.fullmatch(
            rf"validation/run1/{SRC}/(source|target)/b=0000[0-2]/g=0000[01]-[0-9a-f]{{8}}-\d{{5}}\.parquet", o["Key"]
        )
        for o in listed
    )
    for obj in listed:
        head = s3.head_object(Bucket=staging, Key=obj["Key"])
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn

    expect = part.expected_rows(scans)
    counts = [part.compare_bucket.fn(backend, cfg, plan, b, "run1", expect) for b in range(3)]
    assert sum(c["missing"] for c in counts) == 1 and sum(c["different"] for c in counts) == 2
    left = s3.list_object_versions(Bucket=staging, Prefix="validation/")
    assert left.get("Versions", []) == [] and left.get("DeleteMarkers", []) == []  # every version, not a marker

    # A compare re-run after its objects are gone (a retry, a Dask worker's death) returns what it found.
    assert [part.compare_bucket.fn(backend, cfg, plan, b, "run1", expect) for b in range(3)] == counts
    frame = part.collect_table.fn(backend, cfg, plan, "run1")
    assert {(k, kind) for k, kind in zip(frame["key"], frame["kind"], strict=True)} == {
        (key(100), "missing_in_target"),
        (key(101), "extra_in_target"),
        (key(102), "different"),
        (key(103), "different"),
    }
    assert dict(zip(frame["key"], frame["detail"], strict=True))[key(102)] == "attributes: qty (type N -> S)"


def test_a_retried_scan_counts_once(backend: Backend, cfg: MigrationConfig, tables: tuple[str, str]) -> None:
    key_arn = kms.migration_key_arn(backend, cfg)
    ensure_checkpoint_table.fn(backend, cfg.target_region, resource_names(cfg).checkpoint_table, cfg.tags(), key_arn)
    ensure_staging_bucket.fn(backend, cfg, key_arn)
    plan = part.plan_table.fn(backend, cfg, *tables)
    first = part.scan_side.fn(backend, cfg, plan, "source", plan["groups"][0], "run2", key_arn)  # its task "failed"
    scans = [part.scan_side.fn(backend, cfg, plan, s, plan["groups"][0], "run2", key_arn) for s in part.SIDES]
    assert first["name"] != scans[0]["name"]  # the retry wrote its own objects beside the first attempt's
    counts = part.compare_bucket.fn(backend, cfg, plan, 0, "run2", part.expected_rows(scans))
    assert (counts["sourceRows"], counts["missing"], counts["extra"], counts["different"]) == (44, 1, 1, 2)
    part.collect_table.fn(backend, cfg, plan, "run2")
    left = backend.client("s3", cfg.target_region).list_object_versions(
        Bucket=staging_bucket(cfg), Prefix="validation/"
    )
    assert left.get("Versions", []) == []  # the first attempt's objects too


def test_sizes_are_bounded() -> None:
    assert part.plan_sizes(44, 0) == {"totalSegments": 1, "groups": 1, "buckets": 1, "workers": 1}
    tb10 = part.plan_sizes(10_000_000_000, 10 * 1024**4)
    assert (tb10["groups"], tb10["buckets"]) == (part.MAX_GROUPS, part.MAX_BUCKETS) and tb10["totalSegments"] > 5_000
    assert tb10["groups"] * tb10["workers"] <= part.SCANNERS
    moto_like = part.plan_sizes(3_000_000, 0)  # TableSizeBytes 0 (moto): the item count sizes it
    assert (moto_like["groups"], moto_like["buckets"]) == (3, 6) and moto_like["groups"] * moto_like["workers"] <= 16


def test_a_scan_task_holds_a_bounded_number_of_rows(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_arn = kms.ensure_key.fn(backend, cfg, backend.account_id(cfg.target_region))["arn"]
    ensure_staging_bucket.fn(backend, cfg, key_arn)
    monkeypatch.setattr(part, "MIN_OBJECT_ROWS", 1)
    monkeypatch.setattr(part, "TASK_BUFFER_ROWS", 30)  # 3 buckets: each written once it holds 10 rows
    s3 = backend.client("s3", cfg.target_region)
    plan = {"source": SRC, "buckets": 3}
    writer = part._BucketWriter(s3, cfg, plan, "source", 0, "run3", key_arn)
    for start in range(0, 200, 5):
        writer.add([f"k{i}" for i in range(start, start + 5)], list(range(start, start + 5)))
        assert sum(writer._held) <= 3 * (10 + 5)
    writer.close()
    objects = s3.list_objects_v2(Bucket=staging_bucket(cfg), Prefix="validation/run3/")["Contents"]
    assert sum(writer.rows) == 200 and writer.objects == len(objects) >= 200 // 15
