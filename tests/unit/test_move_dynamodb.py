"""DynamoDB move: stream setup, parallel-scan backfill (exact types, resume, retries) and stream catch-up.

Everything is read back from moto (in-process) with the low-level client, as raw AttributeValues.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.errors import PreflightError
from tasks.move import dynamodb_plan as plan
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.dynamodb import backfill_segment, ensure_source_stream, plan_segments
from tasks.move.dynamodb_scan import SCAN_RETRY_BUDGET_S, ScanFailed, call_scan, scan_client
from tasks.move.dynamodb_stream import catch_up
from tasks.names import resource_names
from tasks.provision import kms
from tasks.report.build import summarize_segments
from tasks.report.render import backend_gaps
from tasks.validate.dynamodb import validate_table
from tests.ddb_helpers import move_table

SRC, DST = "us-east-1", "eu-west-1"
SOURCE = "orders"
TARGET = "orders-eu-test"


# ---------------------------------------------------------------- pure helpers


def test_plan_total_segments_bounds() -> None:
    assert plan.plan_total_segments(0, 0) == 1
    assert plan.plan_total_segments(10_000, 0) == 1
    assert plan.plan_total_segments(10_001, 0, busy=32) == 2
    # Issue 10: sized by AWS's one segment per 2 GB (was 100 MB) or 2M items, no longer capped at 32.
    assert plan.plan_total_segments(5, 250 * 1024 * 1024) == 1
    assert plan.plan_total_segments(10**9, 0) == 500


def test_encode_decode_key_round_trips_binary_and_nested() -> None:
    key = {"pk": {"B": b"\x00\xffbin"}, "sk": {"N": "12345678901234567890123456789012345678"}}
    assert plan.decode_item(plan.encode_item(key)) == key
    nested = {"m": {"M": {"b": {"BS": [b"a", b"\x01"]}, "l": {"L": [{"B": b"z"}, {"S": ""}]}}}}
    assert plan.decode_item(plan.encode_item(nested)) == nested
    # canonical: attribute order does not change the encoding
    assert plan.encode_item({"a": {"S": "1"}, "b": {"S": "2"}}) == plan.encode_item({"b": {"S": "2"}, "a": {"S": "1"}})


def _rec(event: str, pk: str, seq: int, val: str | None = None) -> dict[str, Any]:
    keys = {"pk": {"S": pk}}
    body: dict[str, Any] = {"Keys": keys, "SequenceNumber": str(seq)}
    if val is not None:
        body["NewImage"] = {**keys, "v": {"S": val}}
    return {"eventName": event, "dynamodb": body}


def test_collapse_records_keeps_last_change_per_key_in_order() -> None:
    ops = plan.collapse_records(
        [
            _rec("INSERT", "a", 1, "a1"),
            _rec("INSERT", "b", 2, "b1"),
            _rec("MODIFY", "a", 3, "a2"),
            _rec("REMOVE", "b", 4),
            _rec("INSERT", "c", 5, "c1"),
            _rec("REMOVE", "c", 6),
            _rec("INSERT", "c", 7, "c2"),
        ]
    )
    assert ops == [
        ("put", {"pk": {"S": "a"}, "v": {"S": "a2"}}),
        ("delete", {"pk": {"S": "b"}}),
        ("put", {"pk": {"S": "c"}, "v": {"S": "c2"}}),
    ]
    reqs = plan.write_requests(ops)
    assert reqs[1] == {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}


def test_order_shards_puts_parents_first_and_tolerates_trimmed_parents() -> None:
    shards = [
        {"ShardId": "c1", "ParentShardId": "p"},
        {"ShardId": "orphan", "ParentShardId": "trimmed-away"},
        {"ShardId": "p"},
        {"ShardId": "c2", "ParentShardId": "p"},
        {"ShardId": "g", "ParentShardId": "c1"},
    ]
    order = [s["ShardId"] for s in plan.order_shards(shards)]
    assert sorted(order) == sorted(s["ShardId"] for s in shards)
    for child, parent in (("c1", "p"), ("c2", "p"), ("g", "c1")):
        assert order.index(parent) < order.index(child)


def test_backoff_and_retention_warning() -> None:
    rng = random.Random(1)
    assert all(0 <= plan.backoff_delay(a, rng=rng) <= min(5.0, 0.05 * 2**a) for a in range(20))
    assert plan.retention_warning(None, "t") is None
    assert plan.retention_warning(3600, "t") is None
    warning = plan.retention_warning(21 * 3600, "t")
    assert warning and "21.0 h" in warning


# ---------------------------------------------------------------- moto fixtures


def _create_table(ddb: Any, name: str, stream: str | None = None) -> None:
    kwargs: dict[str, Any] = {}
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "gsi", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gsi",
                "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        **kwargs,
    )


@pytest.fixture
def env(backend: Backend, cfg: MigrationConfig) -> Iterator[dict[str, Any]]:
    """Source table in us-east-1, same-schema target in eu-west-1, and the checkpoint table."""
    src, dst = backend.client("dynamodb", SRC), backend.client("dynamodb", DST)
    _create_table(src, SOURCE)
    _create_table(dst, TARGET, stream="NEW_AND_OLD_IMAGES")
    cp = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, DST, cp, cfg.tags(), None)
    yield {"src": src, "dst": dst, "cp": cp}


def _item(i: int, pad: int = 0) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": f"user#{i % 37}"},
        "sk": {"N": str(i)},
        "gsi": {"S": f"g{i % 5}"},
        "n": {"N": str(i * 7)},
    }
    if pad:
        item["pad"] = {"S": "x" * pad}
    return item


def _put_items(ddb: Any, items: list[dict[str, Any]]) -> None:
    for part in plan.chunks(items):
        ddb.batch_write_item(RequestItems={SOURCE: [{"PutRequest": {"Item": it}} for it in part]})


def _norm(av: Any) -> Any:
    """Sets are unordered in DynamoDB: compare them sorted; everything else stays exact."""
    if isinstance(av, dict):
        out = {}
        for k, v in av.items():
            if k in ("SS", "NS", "BS"):
                out[k] = sorted(v)
            else:
                out[k] = _norm(v)
        return out
    if isinstance(av, list):
        return [_norm(x) for x in av]
    return av


def _dump(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for it in page["Items"]:
            items[plan.encode_item({"pk": it["pk"], "sk": it["sk"]})] = _norm(it)
    return items


def _copied_exactly(env: dict[str, Any]) -> None:
    src, dst = _dump(env["src"], SOURCE), _dump(env["dst"], TARGET)
    assert src.keys() == dst.keys()
    assert src == dst


# ---------------------------------------------------------------- stream


def test_ensure_source_stream_enables_records_and_is_idempotent(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    first = ensure_source_stream.fn(backend, cfg, SOURCE)
    desc = env["src"].describe_table(TableName=SOURCE)["Table"]
    assert desc["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert first["streamArn"] == desc["LatestStreamArn"]
    assert first["enabledByUs"] is True and first["changedNow"] is True
    assert first["streamStatus"] == "ENABLED" and first["enabledAt"]
    assert first["sourceChanged"] and SOURCE in first["sourceChanged"][0]
    record = CheckpointStore(backend, DST, env["cp"]).get("ddb#orders", "stream")
    assert record and record["enabledByUs"] is True and record["streamArn"] == first["streamArn"]

    again = ensure_source_stream.fn(backend, cfg, SOURCE)
    assert again["changedNow"] is False and again["enabledByUs"] is True
    assert again["streamArn"] == first["streamArn"] and again["enabledAt"] == first["enabledAt"]


def test_ensure_source_stream_existing_streams(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _create_table(env["src"], "theirs", stream="NEW_AND_OLD_IMAGES")
    theirs = ensure_source_stream.fn(backend, cfg, "theirs")
    assert theirs["enabledByUs"] is False and theirs["sourceChanged"] == [] and theirs["enabledAt"] is None

    _create_table(env["src"], "keysonly", stream="KEYS_ONLY")
    with pytest.raises(PreflightError, match="KEYS_ONLY") as err:
        ensure_source_stream.fn(backend, cfg, "keysonly")
    assert "\n" not in str(err.value)

    with pytest.raises(PreflightError, match="does not exist"):
        ensure_source_stream.fn(backend, cfg, "missing-table")


def test_plan_segments_is_persisted_for_resume(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _put_items(env["src"], [_item(i) for i in range(30)])
    assert plan_segments.fn(backend, cfg, SOURCE) == 1
    store = CheckpointStore(backend, DST, env["cp"])
    store.put("ddb#orders", "plan", {"totalSegments": 7})  # as if planned earlier on a bigger table
    assert plan_segments.fn(backend, cfg, SOURCE) == 7


# ---------------------------------------------------------------- backfill


def test_every_type_round_trips_exactly(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    odd = {
        "pk": {"S": "types"},
        "sk": {"N": "-12345678901234567890123456789012345678"},
        "gsi": {"S": "g"},
        "big": {"N": "99999999999999999999999999999999999999"},
        "tiny": {"N": "1E-130"},  # smallest magnitude DynamoDB stores
        "frac": {"N": "1.2345678901234567890123456789012345678"},
        "bin": {"B": bytes(range(256))},
        "ss": {"SS": ["b", "a", "ü"]},
        "ns": {"NS": ["1", "2.5", "12345678901234567890123456789012345678"]},
        "bs": {"BS": [b"\x00", b"\xff\xfe"]},
        "map": {"M": {"inner": {"M": {"l": {"L": [{"N": "1"}, {"S": ""}, {"NULL": True}, {"BOOL": False}]}}}}},
        "list": {"L": [{"M": {}}, {"L": []}, {"B": b"x"}, {"SS": ["z"]}]},
        "yes": {"BOOL": True},
        "nil": {"NULL": True},
        "empty": {"S": ""},
        "emptyb": {"B": b""},
    }
    big_item = {"pk": {"S": "big"}, "sk": {"N": "1"}, "blob": {"S": "y" * (390 * 1024)}}
    env["src"].put_item(TableName=SOURCE, Item=odd)
    env["src"].put_item(TableName=SOURCE, Item=big_item)
    _put_items(env["src"], [_item(i) for i in range(20)])

    result = move_table(backend, cfg, SOURCE, TARGET, env["cp"])
    assert result["backfill"]["written"] == 22 and result["backfill"]["bytes"] > 390 * 1024
    _copied_exactly(env)
    got = env["dst"].get_item(TableName=TARGET, Key={"pk": odd["pk"], "sk": odd["sk"]}, ConsistentRead=True)
    assert got["Item"]["big"] == odd["big"] and got["Item"]["frac"] == odd["frac"]
    assert got["Item"]["bin"] == odd["bin"] and got["Item"]["empty"] == {"S": ""}


def test_parallel_segments_copy_every_item_once(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _put_items(env["src"], [_item(i) for i in range(300)])
    results = [backfill_segment.fn(backend, cfg, SOURCE, TARGET, s, 4, env["cp"], writers=3) for s in range(4)]
    assert sum(r["scanned"] for r in results) == 300
    assert sum(r["written"] for r in results) == 300
    assert sum(1 for r in results if r["scanned"] > 0) >= 2  # the hash spread items over segments
    assert all(r["done"] and r["resumedFrom"] is None for r in results)
    _copied_exactly(env)
    # done segments are skipped on a re-run
    again = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 4, env["cp"])
    assert again["skipped"] is True and again["scanned"] == 0 and again["totalWritten"] == results[0]["written"]


def test_resume_after_kill_redoes_only_the_rest(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _put_items(env["src"], [_item(i) for i in range(400)])
    calls = {"n": 0}
    lock = threading.Lock()

    def die_on_fifth(**_: Any) -> None:
        with lock:
            calls["n"] += 1
            if calls["n"] == 5:  # pages of 50 = 2 batch writes each: pages 1 and 2 are done
                raise ConnectionError("killed")

    events = env["dst"].meta.events
    events.register("before-call.dynamodb.BatchWriteItem", die_on_fifth)
    try:
        with pytest.raises(ConnectionError):
            backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 1, env["cp"], page_size=50)
    finally:
        events.unregister("before-call.dynamodb.BatchWriteItem", die_on_fifth)
    cp = CheckpointStore(backend, DST, env["cp"]).get("ddb#orders", plan.segment_sk(0, 1))
    assert cp and cp["done"] is False and cp["written"] == 100 and cp["pages"] == 2

    rerun = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 1, env["cp"], page_size=50)
    assert rerun["resumedFrom"] == cp["lastKey"]
    assert rerun["scanned"] == 300 and rerun["written"] == 300 and rerun["pages"] == 6
    assert rerun["totalWritten"] == 400 and rerun["done"] is True
    _copied_exactly(env)


def test_unprocessed_items_are_resent(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _put_items(env["src"], [_item(i) for i in range(60)])
    state = {"left": 3, "returned": 0}
    lock = threading.Lock()

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["request_items"] = params["RequestItems"]

    def bounce(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        with lock:
            if state["left"] > 0:
                state["left"] -= 1
                items = context["request_items"]
                parsed["UnprocessedItems"] = items  # all of them, as a throttled table would
                state["returned"] += sum(len(v) for v in items.values())

    events = env["dst"].meta.events
    events.register("before-parameter-build.dynamodb.BatchWriteItem", remember)
    events.register("after-call.dynamodb.BatchWriteItem", bounce)
    try:
        result = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 1, env["cp"])
    finally:
        events.unregister("before-parameter-build.dynamodb.BatchWriteItem", remember)
        events.unregister("after-call.dynamodb.BatchWriteItem", bounce)
    assert state["left"] == 0
    assert result["retries"] == state["returned"] > 0
    assert result["written"] == 60
    _copied_exactly(env)


def test_throttling_errors_are_retried(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    _put_items(env["src"], [_item(i) for i in range(30)])
    state = {"left": 2}
    lock = threading.Lock()
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded.",
        }
    ).encode()

    def throttle(request: Any, **_: Any) -> AWSResponse | None:
        with lock:
            if state["left"] <= 0:
                return None
            state["left"] -= 1
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["x-amzn-RequestId"] = "throttled"
        return AWSResponse(request.url, 400, headers, MockRawResponse(body))

    events = env["dst"].meta.events
    events.register_first("before-send.dynamodb.BatchWriteItem", throttle)
    try:
        result = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 1, env["cp"])
    finally:
        events.unregister("before-send.dynamodb.BatchWriteItem", throttle)
    assert state["left"] == 0  # the throttles really happened and were retried
    assert result["written"] == 30
    _copied_exactly(env)


# ---------------------------------------------------------------- catch-up


def test_writes_during_and_after_backfill_reach_target(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    src = env["src"]
    _put_items(src, [_item(i) for i in range(120)])
    stream = ensure_source_stream.fn(backend, cfg, SOURCE)
    total = 3
    backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, total, env["cp"])
    # writes while the backfill runs: new, update, delete (some in segments not scanned yet)
    src.put_item(TableName=SOURCE, Item={**_item(1000), "note": {"S": "during"}})
    src.update_item(
        TableName=SOURCE,
        Key={"pk": {"S": "user#3"}, "sk": {"N": "3"}},
        UpdateExpression="SET n = :n, added = :a",
        ExpressionAttributeValues={":n": {"N": "12345678901234567890123456789012345678"}, ":a": {"SS": ["x"]}},
    )
    src.delete_item(TableName=SOURCE, Key={"pk": {"S": "user#4"}, "sk": {"N": "4"}})
    for s in range(1, total):
        backfill_segment.fn(backend, cfg, SOURCE, TARGET, s, total, env["cp"])
    # and after it
    src.delete_item(TableName=SOURCE, Key={"pk": {"S": "user#5"}, "sk": {"N": "5"}})
    src.put_item(TableName=SOURCE, Item={**_item(3), "note": {"S": "after"}})  # replaces the updated item
    src.put_item(TableName=SOURCE, Item=_item(1001))
    gone = _item(1001)
    src.delete_item(TableName=SOURCE, Key={"pk": gone["pk"], "sk": gone["sk"]})  # gone again

    first = catch_up(backend, cfg, SOURCE, TARGET, env["cp"])
    assert first["streamArn"] == stream["streamArn"]
    assert first["records"] == 7
    assert first["puts"] == 2 and first["deletes"] == 3  # collapsed: user#3 twice, 1001 put+delete
    assert first["lag_seconds"] == 0 and first["caughtUp"] is True and first["retention_warning"] is None
    assert first["oldest_record_age_s"] is not None and first["oldest_record_age_s"] >= 0
    assert first["shards"] and first["shards"][0]["sequence"]
    _copied_exactly(env)
    assert env["dst"].get_item(TableName=TARGET, Key={"pk": {"S": "user#3"}, "sk": {"N": "3"}})["Item"]["note"] == {
        "S": "after"
    }

    second = catch_up(backend, cfg, SOURCE, TARGET, env["cp"])
    assert (second["records"], second["puts"], second["deletes"]) == (0, 0, 0)
    assert second["lag_seconds"] == 0
    assert second["shards"][0]["sequence"] == first["shards"][0]["sequence"]


def test_catch_up_reports_lag_when_records_remain(backend: Backend, cfg: MigrationConfig, env: dict[str, Any]) -> None:
    ensure_source_stream.fn(backend, cfg, SOURCE)
    _put_items(env["src"], [_item(i) for i in range(10)])
    time.sleep(0.05)
    partial = catch_up(backend, cfg, SOURCE, TARGET, env["cp"], max_records=4)
    assert partial["records"] == 4 and partial["puts"] == 4
    assert partial["lag_seconds"] > 0 and partial["caughtUp"] is False
    assert partial["shards"][0]["state"] == "stopped"

    timed_out = catch_up(backend, cfg, SOURCE, TARGET, env["cp"], max_seconds=0)
    assert timed_out["records"] == 0 and timed_out["lag_seconds"] > 0

    rest = catch_up(backend, cfg, SOURCE, TARGET, env["cp"])
    assert rest["records"] == 6 and rest["lag_seconds"] == 0 and rest["caughtUp"] is True
    _copied_exactly(env)


def test_catch_up_replays_idempotently_from_an_old_checkpoint(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    ensure_source_stream.fn(backend, cfg, SOURCE)
    _put_items(env["src"], [_item(i) for i in range(5)])
    env["src"].delete_item(TableName=SOURCE, Key={"pk": {"S": "user#2"}, "sk": {"N": "2"}})
    first = catch_up(backend, cfg, SOURCE, TARGET, env["cp"])
    assert first["records"] == 6
    # lose the shard checkpoint: everything is replayed, and the target ends in the same state
    store = CheckpointStore(backend, DST, env["cp"])
    for sk, _ in list(store.query("ddb#orders", "shard#")):
        store.delete("ddb#orders", sk)
    replay = catch_up(backend, cfg, SOURCE, TARGET, env["cp"])
    assert replay["records"] == 6
    _copied_exactly(env)


def test_catch_up_without_stream_is_a_one_line_error(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    with pytest.raises(PreflightError, match="ensure_source_stream"):
        catch_up(backend, cfg, SOURCE, TARGET, env["cp"])


def test_item_size_follows_dynamodb_rules_roughly() -> None:
    assert plan.item_size({"ab": {"S": "xyz"}}) == 5
    assert plan.item_size({"b": {"B": b"1234"}, "t": {"BOOL": True}}) == 7
    assert 390 * 1024 < plan.item_size({"k": {"M": {"v": {"L": [{"S": "y" * 390 * 1024}]}}}}) < 391 * 1024


# ---------------------------------------------------------------- scans: read budget, retries, segment fallback


def test_table_read_rate_follows_capacity_and_config() -> None:
    provisioned = {"ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 5}}
    assert plan.table_read_rate(provisioned, 0.5, 1000)[0] == 5.0
    assert plan.table_read_rate(provisioned, 0.2, 1000)[0] == 2.0
    on_demand = {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}, "ProvisionedThroughput": {}}
    assert plan.table_read_rate(on_demand, 0.5, 1000)[0] == 1000
    capped = {**on_demand, "OnDemandThroughput": {"MaxReadRequestUnits": 400}}
    assert plan.table_read_rate(capped, 0.5, 1000)[0] == 200.0
    assert plan.table_read_rate({"ProvisionedThroughput": {"ReadCapacityUnits": 1}}, 0.5, 1000)[0] == 1.0  # floor


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_read_pacer_holds_the_rate_over_time() -> None:
    clock = FakeClock()
    pacer = plan.ReadPacer(10.0, burst_seconds=1.0, clock=clock, sleep=clock.sleep)
    assert pacer.spend(5) == 0.0  # within the burst
    assert pacer.spend(10) == pytest.approx(0.5)  # 5 left, 10 spent: 5 units of debt at 10/s
    for _ in range(100):  # 100 pages of 4 units, each taking 0.1 s to fetch
        clock.now += 0.1
        pacer.spend(4)
    # 415 units in the elapsed time: never more than the rate allows plus one burst.
    assert pacer.consumed == 415
    assert pacer.consumed <= 10.0 * clock.now + 10.0 + 1e-6
    assert clock.now == pytest.approx((415 - 10) / 10.0)  # and no slower than that
    # A budget split over 4 segments: each pacer holds a quarter, together the table's rate.
    clocks = [FakeClock() for _ in range(4)]
    pacers = [plan.ReadPacer(10.0 / 4, clock=c, sleep=c.sleep) for c in clocks]
    for p in pacers:
        for _ in range(50):
            p.spend(1)
    assert max(c.now for c in clocks) == pytest.approx((50 - 2.5) / 2.5)
    assert sum(p.consumed for p in pacers) / max(c.now for c in clocks) <= 10.0 * 1.06


def test_consumed_units_prefers_what_the_scan_returned() -> None:
    assert plan.consumed_units({"ConsumedCapacity": {"CapacityUnits": 12.5}}, 10**6, consistent=True) == 12.5
    assert plan.consumed_units({}, 10 * 4096, consistent=True) == 10.0
    assert plan.consumed_units({}, 10 * 4096, consistent=False) == 5.0  # eventually consistent: half
    assert plan.consumed_units({}, 1, consistent=True) == 1.0  # rounded up to 4 KB


def test_scan_request_sends_segments_only_when_planned() -> None:
    one = plan.scan_request("t", 0, 1, consistent=False)
    assert one == {"TableName": "t", "ConsistentRead": False, "ReturnConsumedCapacity": "TOTAL"}
    four = plan.scan_request("t", 2, 4, consistent=True, start_key={"pk": {"S": "a"}}, limit=10)
    assert (four["Segment"], four["TotalSegments"], four["ConsistentRead"]) == (2, 4, True)
    assert four["ExclusiveStartKey"] == {"pk": {"S": "a"}} and four["Limit"] == 10


def test_backfill_scans_eventually_consistent_and_asks_for_consumed_capacity(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any]
) -> None:
    _put_items(env["src"], [_item(i) for i in range(40)])
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))

    clients = [scan_client(backend, SRC), backend.client("dynamodb", SRC)]
    for c in clients:
        c.meta.events.register("provide-client-params.dynamodb.Scan", record)
    try:
        result = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 1, 2, env["cp"])
        one = backfill_segment.fn(backend, cfg, SOURCE, TARGET, 0, 1, env["cp"])
    finally:
        for c in clients:
            c.meta.events.unregister("provide-client-params.dynamodb.Scan", record)
    assert seen and all(p["ConsistentRead"] is False and p["ReturnConsumedCapacity"] == "TOTAL" for p in seen)
    assert any(p.get("TotalSegments") == 2 for p in seen)
    assert not any("Segment" in p for p in seen if p.get("TotalSegments") is None)  # one segment: no parameters
    # The budget: the on-demand default rate split over the 2 planned segments, and what the pages consumed.
    assert result["readRate"] == 500.0 and result["consumedReadUnits"] > 0
    assert one["readRate"] == 1000.0 and one["written"] == 40


def _server_error(message: str = "boom") -> ClientError:
    return ClientError(
        {"Error": {"Code": "500", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "Scan"
    )


def test_a_scan_that_always_fails_is_retried_for_a_bounded_total() -> None:
    clock = FakeClock()

    class Broken:
        calls = 0

        def scan(self, **_: Any) -> dict[str, Any]:
            Broken.calls += 1
            clock.now += 1.0  # each call (botocore's few attempts included) takes a second
            raise _server_error()

    request = plan.scan_request("broken", 0, 2, consistent=False)
    key = ("us-east-1", "broken", "0/2")
    with pytest.raises(ScanFailed, match=r"Scan of broken segment 0/2 failed the same way for \d+ s") as err:
        call_scan(Broken(), request, key, clock=clock, sleep=clock.sleep)
    assert "\n" not in str(err.value)
    first_calls, first_time = Broken.calls, clock.now
    assert SCAN_RETRY_BUDGET_S["server"] <= first_time <= SCAN_RETRY_BUDGET_S["server"] + 10
    # Prefect retries the task: the budget is already spent, so the retry gives up after one call.
    with pytest.raises(ScanFailed):
        call_scan(Broken(), request, key, clock=clock, sleep=clock.sleep)
    assert Broken.calls == first_calls + 1 and clock.now - first_time == pytest.approx(1.0)  # one call, no wait
    # Errors that retrying cannot fix are raised at once.
    bad = ClientError({"Error": {"Code": "ValidationException", "Message": "x"}}, "Scan")

    class Invalid:
        def scan(self, **_: Any) -> dict[str, Any]:
            raise bad

    with pytest.raises(ClientError):
        call_scan(Invalid(), request, ("us-east-1", "invalid", "0/2"), clock=clock, sleep=clock.sleep)


@pytest.fixture
def server_like_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process moto answers an exception in its own code as the moto server does: HTTP 500, an HTML page."""
    original = BotocoreStubber.process_request

    def process(self: BotocoreStubber, request: Any) -> Any:
        try:
            return original(self, request)
        except Exception:
            page = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
            return 500, {"Content-Type": "text/html; charset=utf-8"}, page

    monkeypatch.setattr(BotocoreStubber, "process_request", process)


def _binary_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "B"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_binary_hash_key_table_falls_back_to_one_segment_in_seconds(
    backend: Backend,
    cfg: MigrationConfig,
    env: dict[str, Any],
    server_like_errors: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src_name, dst_name = "blobs", "blobs-eu-test"
    _binary_table(env["src"], src_name)
    _binary_table(env["dst"], dst_name)
    items = [{"k": {"B": i.to_bytes(2, "big") + b"\x00\xff"}, "n": {"N": str(i)}} for i in range(300)]
    for part in plan.chunks(items):
        env["src"].batch_write_item(RequestItems={src_name: [{"PutRequest": {"Item": it}} for it in part]})
    with pytest.raises(ClientError, match=r"\(500\)"):  # what moto 5.2.5 answers to a segmented scan here
        backend.client("dynamodb", SRC, max_attempts=1).scan(TableName=src_name, Segment=0, TotalSegments=2)
    monkeypatch.setattr(plan, "ITEMS_PER_SEGMENT", 100)  # so the plan asks for 3 segments
    kms.ensure_key.fn(backend, cfg, backend.account_id(DST))  # validation's staging rows are under the migration key

    started = time.monotonic()
    total = plan_segments.fn(backend, cfg, src_name, env["cp"])
    assert total == 1
    recorded = CheckpointStore(backend, DST, env["cp"]).get(plan.table_pk(src_name), "plan")
    assert recorded and recorded["plannedTotal"] == 3 and "Segment/TotalSegments" in recorded["segmentedScan"]
    filled = backfill_segment.fn(backend, cfg, src_name, dst_name, 0, total, env["cp"])
    assert filled["written"] == 300
    checked = validate_table.fn(backend, cfg, src_name, dst_name, segments=4)
    took = time.monotonic() - started
    assert (checked["sourceItems"], checked["targetItems"]) == (300, 300)
    assert (checked["missing"], checked["extra"], checked["different"]) == (0, 0, 0)
    assert checked["segments"] == 1 and "HTTP 500" in checked["notSupportedByBackend"]["segmentedScan"]

    summary = summarize_segments([filled])
    report: dict[str, Any] = {
        "resources": {"dynamodbTables": [{"source": src_name, "name": dst_name, "backfill": summary}]},
        "validation": {"tables": [{"source": src_name, **{k: v for k, v in checked.items() if k != "mismatches"}}]},
    }
    gaps = backend_gaps(report)
    assert any(g.startswith(f"{dst_name}: segmentedScan (Scan with Segment/TotalSegments") for g in gaps)
    assert any(g.startswith(f"{dst_name} (validation): segmentedScan") for g in gaps)
    assert took < 20, f"took {took:.1f} s"
