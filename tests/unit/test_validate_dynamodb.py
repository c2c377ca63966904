"""DynamoDB validation against moto in-process: exactly the seeded differences, nothing more."""

from __future__ import annotations

import time
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.dynamodb_scan import scan_client
from tasks.names import staging_bucket
from tasks.provision import kms
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
