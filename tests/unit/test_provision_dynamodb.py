"""Target tables: the request built from the source's description (pure), then ensure_table against moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from config.model import MigrationConfig, TableSpec, parse_config
from tasks.aws import Backend, tag_dict
from tasks.errors import CollisionError, PreflightError
from tasks.provision.dynamodb import (
    check_spec_against_source,
    ensure_table,
    target_table_request,
    ttl_attribute,
    ttl_plan,
)
from tasks.provision.dynamodb_capacity import settle_capacity
from tasks.report.build import configuration_differences, next_steps, overall

SOURCE = "us-east-1"
TARGET = "eu-west-1"
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"

# What describe_table says about analytics-events: sort key, a GSI (INCLUDE) and an LSI (KEYS_ONLY).
EVENTS_SCHEMA: dict[str, Any] = {
    "TableName": "analytics-events",
    "KeySchema": [
        {"AttributeName": "eventId", "KeyType": "HASH"},
        {"AttributeName": "timestamp", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "eventId", "AttributeType": "S"},
        {"AttributeName": "timestamp", "AttributeType": "N"},
        {"AttributeName": "userId", "AttributeType": "S"},
        {"AttributeName": "kind", "AttributeType": "S"},
    ],
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byUser",
            "KeySchema": [
                {"AttributeName": "userId", "KeyType": "HASH"},
                {"AttributeName": "timestamp", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["kind"]},
            "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 2},
        }
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": "byKind",
            "KeySchema": [
                {"AttributeName": "eventId", "KeyType": "HASH"},
                {"AttributeName": "kind", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
}

USERS_ON_DEMAND: dict[str, Any] = {
    "TableName": "analytics-users",
    "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "userId", "AttributeType": "S"},
        {"AttributeName": "email", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byEmail",
            "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
}


def as_description(create_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Roughly what describe_table returns for a table created with these kwargs (for the pure tests)."""
    desc = {k: v for k, v in create_kwargs.items() if k != "BillingMode"}
    desc["BillingModeSummary"] = {"BillingMode": create_kwargs.get("BillingMode", "PROVISIONED")}
    if create_kwargs.get("BillingMode") == "PAY_PER_REQUEST":
        desc["ProvisionedThroughput"] = {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    return desc


def on_demand_cfg(cfg: MigrationConfig) -> MigrationConfig:
    """The example config with analytics-users listed without capacities (its source is on-demand)."""
    data = cfg.model_dump()
    data["dynamodbTables"][1] = {"name": "analytics-users", "hashKey": "userId", "scalingFactor": 2}
    return parse_config(data)


def make_source(backend: Backend, kwargs: dict[str, Any], ttl_attr: str | None = None) -> None:
    ddb = backend.client("dynamodb", SOURCE)
    ddb.create_table(**kwargs)
    if ttl_attr:
        ddb.update_time_to_live(
            TableName=kwargs["TableName"], TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attr}
        )


def target(backend: Backend) -> Any:
    return backend.client("dynamodb", TARGET)


# ----------------------------------------------------------------------------------------------- pure


def test_request_copies_schema_and_scales_capacity(cfg: MigrationConfig) -> None:
    spec = cfg.dynamodb_tables[0]  # scalingFactor 1.5
    req = target_table_request(as_description(EVENTS_SCHEMA), {}, spec, cfg, KEY_ARN)
    assert req["TableName"] == "analytics-events-eu-20261128-dev"
    assert req["KeySchema"] == EVENTS_SCHEMA["KeySchema"]
    assert req["AttributeDefinitions"] == EVENTS_SCHEMA["AttributeDefinitions"]
    assert req["BillingMode"] == "PROVISIONED"
    assert req["ProvisionedThroughput"] == {"ReadCapacityUnits": 8, "WriteCapacityUnits": 8}  # ceil(5 x 1.5)
    (gsi,) = req["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "byUser"
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["kind"]}
    assert gsi["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 3}  # ceil(3, 2 x 1.5)
    (lsi,) = req["LocalSecondaryIndexes"]
    assert lsi == {
        "IndexName": "byKind",
        "KeySchema": EVENTS_SCHEMA["LocalSecondaryIndexes"][0]["KeySchema"],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    assert req["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert req["SSESpecification"] == {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": KEY_ARN}
    assert tag_dict(req["Tags"]) == cfg.tags()


def test_on_demand_source_stays_on_demand(cfg: MigrationConfig) -> None:
    cfg2 = on_demand_cfg(cfg)
    req = target_table_request(as_description(USERS_ON_DEMAND), {}, cfg2.dynamodb_tables[1], cfg2, KEY_ARN)
    assert req["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in req
    assert "ProvisionedThroughput" not in req["GlobalSecondaryIndexes"][0]
    assert "LocalSecondaryIndexes" not in req


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "hashKey",
            "id",
            "dynamodbTables[0] (analytics-events): hashKey 'id' contradicts the source table's hash key "
            "'eventId'; remove it or fix it",
        ),
        ("hashKeyType", "N", "hashKeyType 'N' contradicts the source table's hash key type 'S'"),
        ("rangeKey", "ts", "rangeKey 'ts' contradicts the source table's range key 'timestamp'"),
        ("rangeKeyType", "S", "rangeKeyType 'S' contradicts the source table's range key type 'N'"),
        ("readCapacity", 7, "readCapacity 7 contradicts the source table's read capacity 5"),
        ("writeCapacity", 9, "writeCapacity 9 contradicts the source table's write capacity 5"),
    ],
)
def test_contradictions_are_one_line_and_name_the_field(
    cfg: MigrationConfig, field: str, value: Any, expected: str
) -> None:
    spec = TableSpec.model_validate(cfg.dynamodb_tables[0].model_dump() | {field: value})
    message = check_spec_against_source(spec, as_description(EVENTS_SCHEMA), 0)
    assert message is not None and expected in message and "\n" not in message
    assert message.startswith("dynamodbTables[0] (analytics-events): ")
    with pytest.raises(PreflightError, match=field):
        target_table_request(as_description(EVENTS_SCHEMA), {}, spec, cfg, KEY_ARN)


def test_spec_agreeing_with_source_or_silent_is_fine(cfg: MigrationConfig) -> None:
    assert check_spec_against_source(cfg.dynamodb_tables[0], as_description(EVENTS_SCHEMA), 0) is None
    assert check_spec_against_source(TableSpec(name="analytics-events"), as_description(EVENTS_SCHEMA), 0) is None
    # A range key on a hash-only source, and capacity on an on-demand source, are contradictions too.
    spec = TableSpec(name="analytics-users", rangeKey="ts")
    assert "has no range key" in (check_spec_against_source(spec, as_description(USERS_ON_DEMAND), 1) or "")
    users = cfg.dynamodb_tables[1]  # readCapacity 5 in the example
    assert "PAY_PER_REQUEST" in (check_spec_against_source(users, as_description(USERS_ON_DEMAND), 1) or "")


def test_ttl_attribute_follows_the_source() -> None:
    on = {"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}}
    assert ttl_attribute(on) == "expiresAt"
    # No TTL on the source: none on the target (it would delete copied items with a past `ttl`).
    off = {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED", "AttributeName": "ttl"}}
    assert ttl_attribute(off) is None
    assert ttl_attribute({}) is None
    # Only the config's explicit ttlAttribute asks for anything else.
    assert ttl_attribute({}, "expiresAt") == "expiresAt"
    assert ttl_attribute(on, "ttl") == "ttl"


def test_ttl_plan_makes_one_change_per_run() -> None:
    on_ttl = {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert ttl_plan(on_ttl, "ttl") == (None, None)
    assert ttl_plan({"TimeToLiveStatus": "ENABLING", "AttributeName": "ttl"}, "ttl") == (None, None)
    assert ttl_plan({"TimeToLiveStatus": "DISABLED"}, None) == (None, None)
    assert ttl_plan({"TimeToLiveStatus": "DISABLING", "AttributeName": "ttl"}, None) == (None, None)
    assert ttl_plan(on_ttl, None) == ({"Enabled": False, "AttributeName": "ttl"}, None)
    assert ttl_plan({"TimeToLiveStatus": "DISABLED"}, "exp") == ({"Enabled": True, "AttributeName": "exp"}, None)
    # Another attribute: only the first half now (the second call within the hour always fails on AWS).
    change, drift = ttl_plan(on_ttl, "exp")
    assert change == {"Enabled": False, "AttributeName": "ttl"}
    assert drift and "another run" in drift and "hour" in drift
    change, drift = ttl_plan({"TimeToLiveStatus": "DISABLING", "AttributeName": "ttl"}, "exp")
    assert change is None and drift and "DISABLING" in drift


# ----------------------------------------------------------------------------------------------- moto


def test_ensure_table_builds_target_from_source_and_reads_back(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA, ttl_attr="expiresAt")
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    name = "analytics-events-eu-20261128-dev"
    assert out["created"] is True and out["repaired"] == [] and out["notSupportedByBackend"] == {}
    assert (out["source"], out["name"], out["region"]) == ("analytics-events", name, TARGET)
    assert out["arn"] == f"arn:aws:dynamodb:{TARGET}:123456789012:table/{name}"
    assert out["keySchema"] == [{"name": "eventId", "type": "HASH"}, {"name": "timestamp", "type": "RANGE"}]
    assert out["gsis"] == ["byUser"] and out["lsis"] == ["byKind"]
    # On-demand while the backfill writes it; settle_capacity gives it the source's capacity x 1.5 afterwards.
    assert out["billingMode"] == "PAY_PER_REQUEST"
    assert (out["readCapacity"], out["writeCapacity"]) == (None, None)
    assert out["capacityFrom"] == {
        "billingMode": "PROVISIONED",
        "readCapacity": 5,
        "writeCapacity": 5,
        "scalingFactor": 1.5,
    }
    assert out["streamViewType"] == "NEW_AND_OLD_IMAGES" and out["streamArn"]
    assert out["ttl"] == {"attribute": "expiresAt", "status": "ENABLED"}
    assert out["pitr"] == "ENABLED"
    assert out["sse"]["type"] == "KMS" and out["sse"]["kmsKeyArn"] == KEY_ARN
    assert out["tags"] == cfg.tags()

    # Straight from moto.
    desc = target(backend).describe_table(TableName=name)["Table"]
    assert desc["TableStatus"] == "ACTIVE"
    assert desc["KeySchema"] == EVENTS_SCHEMA["KeySchema"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert desc["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    gsi = desc["GlobalSecondaryIndexes"][0]
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["kind"]}
    assert desc["LocalSecondaryIndexes"][0]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    ttl = target(backend).describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    backups = target(backend).describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    # The source was only read.
    src = backend.client("dynamodb", SOURCE).describe_table(TableName="analytics-events")["Table"]
    assert "StreamSpecification" not in src or not src["StreamSpecification"].get("StreamEnabled")


def test_the_target_is_on_demand_for_its_backfill_then_settles_to_the_scaled_capacity_once(
    backend: Backend, cfg: MigrationConfig
) -> None:
    make_source(backend, EVENTS_SCHEMA)
    spec = cfg.dynamodb_tables[0]
    ensure_table.fn(backend, cfg, spec, KEY_ARN)
    again = ensure_table.fn(backend, cfg, spec, KEY_ARN)  # a re-run before the backfill ends: still on-demand
    assert again["billingMode"] == "PAY_PER_REQUEST" and again["repaired"] == []

    settled = settle_capacity.fn(backend, cfg, spec, KEY_ARN)
    assert settled["switched"] is True and settled["settled"] is True
    assert settled["billingMode"] == "PROVISIONED"
    assert (settled["readCapacity"], settled["writeCapacity"]) == (8, 8)
    assert settled["gsiCapacity"] == {"byUser": {"readCapacity": 5, "writeCapacity": 3}}
    desc = target(backend).describe_table(TableName=settled["table"])["Table"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 8
    assert desc["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == 3

    # Settled stays settled: no second switch, and provisioning keeps it provisioned.
    assert settle_capacity.fn(backend, cfg, spec, KEY_ARN)["switched"] is False
    after = ensure_table.fn(backend, cfg, spec, KEY_ARN)
    assert after["billingMode"] == "PROVISIONED" and after["repaired"] == []


def test_on_demand_source_without_ttl(backend: Backend, cfg: MigrationConfig) -> None:
    cfg2 = on_demand_cfg(cfg)
    make_source(backend, USERS_ON_DEMAND)
    out = ensure_table.fn(backend, cfg2, cfg2.dynamodb_tables[1], KEY_ARN)
    assert out["billingMode"] == "PAY_PER_REQUEST"
    assert out["readCapacity"] is None and out["writeCapacity"] is None
    assert out["capacityFrom"]["billingMode"] == "PAY_PER_REQUEST"
    assert out["gsis"] == ["byEmail"] and out["lsis"] == []
    assert out["ttl"]["status"] == "DISABLED"  # mirrors the source, which has no TTL
    desc = target(backend).describe_table(TableName=out["name"])["Table"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_ensure_table_twice_creates_nothing_new(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)
    first = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    second = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert second["created"] is False and second["repaired"] == []
    assert second["streamArn"] == first["streamArn"]
    assert target(backend).list_tables()["TableNames"] == [first["name"]]


def test_ensure_table_repairs_drift(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA, ttl_attr="expiresAt")
    name = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)["name"]
    settle_capacity.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)  # its backfill is done: steady capacity
    t = target(backend)
    t.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    t.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    t.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": False, "AttributeName": "expiresAt"})
    t.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    t.update_table(
        TableName=name,
        GlobalSecondaryIndexUpdates=[
            {
                "Update": {
                    "IndexName": "byUser",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                }
            }
        ],
    )
    t.untag_resource(ResourceArn=t.describe_table(TableName=name)["Table"]["TableArn"], TagKeys=["SourceRegion"])

    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert out["created"] is False
    assert sorted(out["repaired"]) == sorted(["pitr", "ttl", "capacity", "capacity:byUser", "tags"])
    assert out["pitr"] == "ENABLED"
    assert out["ttl"] == {"attribute": "expiresAt", "status": "ENABLED"}
    assert (out["readCapacity"], out["writeCapacity"]) == (8, 8)
    assert out["gsiCapacity"]["byUser"] == {"readCapacity": 5, "writeCapacity": 3}
    assert out["tags"] == cfg.tags()
    # The stream: moto 5.2 refuses to re-enable a stream once switched off ("Cannot enable stream"), which
    # AWS allows. Whatever the backend does, the result says what the read-back shows.
    if out["streamViewType"] == "NEW_AND_OLD_IMAGES":
        assert "stream" in out["repaired"]
    else:
        assert out["streamArn"] is None and "stream" not in out["repaired"]
        assert "Cannot enable stream" in out["notSupportedByBackend"]["stream"]
    assert ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)["repaired"] == []


def test_stream_of_another_view_type_is_replaced(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)
    name = cfg.target_name("analytics-events")
    req = target_table_request(
        backend.client("dynamodb", SOURCE).describe_table(TableName="analytics-events")["Table"],
        {},
        cfg.dynamodb_tables[0],
        cfg,
        KEY_ARN,
    )
    req["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    target(backend).create_table(**req)  # as if an older version of us had created it
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert out["created"] is False and out["name"] == name
    if out["streamViewType"] == "NEW_AND_OLD_IMAGES":
        assert "stream" in out["repaired"]
    else:
        assert "stream" in out["notSupportedByBackend"] and "stream" not in out["repaired"]


def test_sse_key_change_is_measured_not_assumed(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)
    ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    other_key = KEY_ARN.replace("5555", "6666")
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], other_key)
    # moto 5.2 accepts UpdateTable(SSESpecification) but keeps the old key: reported, not claimed.
    if out["sse"]["kmsKeyArn"] == other_key:
        assert "sse" in out["repaired"]
    else:
        assert "sse" in out["notSupportedByBackend"] and "sse" not in out["repaired"]


def test_untagged_existing_target_table_is_a_collision(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)
    name = cfg.target_name("analytics-events")
    target(backend).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(CollisionError) as exc:
        ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert name in str(exc.value) and "\n" not in str(exc.value)
    desc = target(backend).describe_table(TableName=name)["Table"]
    assert "StreamSpecification" not in desc  # the foreign table was not touched


def test_missing_source_or_contradiction_creates_nothing(backend: Backend, cfg: MigrationConfig) -> None:
    with pytest.raises(PreflightError, match=r"dynamodbTables\[0\] \(analytics-events\): no such table"):
        ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    make_source(backend, EVENTS_SCHEMA)
    bad = cfg.dynamodb_tables[0].model_copy(update={"hash_key": "id"})
    with pytest.raises(PreflightError, match="hashKey 'id' contradicts"):
        ensure_table.fn(backend, cfg, bad, KEY_ARN)
    assert target(backend).list_tables()["TableNames"] == []


# ----------------------------------------------------------------------------------------------- TTL


def test_source_without_ttl_gives_target_without_ttl(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)  # no TTL on the source
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    ttl = target(backend).describe_time_to_live(TableName=out["name"])["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"
    assert out["ttl"]["status"] == "DISABLED" and out["ttlFrom"] == "source" and out["ttlDrift"] is None
    # A target that an older version gave TTL on `ttl` is put back to the source's setting.
    target(backend).update_time_to_live(
        TableName=out["name"], TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )
    again = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert again["repaired"] == ["ttl"] and again["ttl"]["status"] == "DISABLED"


def test_config_ttl_attribute_is_explicit_and_reported(backend: Backend, cfg: MigrationConfig) -> None:
    make_source(backend, EVENTS_SCHEMA)
    spec = cfg.dynamodb_tables[0].model_copy(update={"ttl_attribute": "expiresAt"})
    out = ensure_table.fn(backend, cfg, spec, KEY_ARN)
    assert out["ttl"] == {"attribute": "expiresAt", "status": "ENABLED"} and out["ttlFrom"] == "config ttlAttribute"
    report = {"resources": {"dynamodbTables": [out]}}
    (row,) = [d for d in configuration_differences(cfg, report) if d["setting"] == "ttl analytics-events"]
    assert row["source"] == "DISABLED"
    assert row["target"] == "ENABLED on expiresAt (asked by the config's ttlAttribute)"


AN_HOUR_RULE = "Time to live has been modified multiple times within a fixed interval"


class OnceAnHour:
    """A DynamoDB client that enforces AWS's rule on UpdateTimeToLive (moto does not): a second call for
    the same table within the hour answers the ValidationException AWS answers."""

    def __init__(self, client: Any, last_change: dict[str, float], clock: Callable[[], float]) -> None:
        self._client, self._last, self._clock = client, last_change, clock
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_time_to_live(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs["TimeToLiveSpecification"])
        table, now = kwargs["TableName"], self._clock()
        if table in self._last and now - self._last[table] < 3600:
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": AN_HOUR_RULE},
                 "ResponseMetadata": {"HTTPStatusCode": 400}},
                "UpdateTimeToLive",
            )  # fmt: skip
        self._last[table] = now
        return self._client.update_time_to_live(**kwargs)


@pytest.fixture
def once_an_hour(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Target-region DynamoDB clients wrapped in OnceAnHour, sharing one fake clock and change log."""
    state: dict[str, Any] = {"now": 0.0, "last": {}, "clients": []}
    real = Backend.client

    def client(self: Backend, service: str, region: str, max_attempts: int = 8) -> Any:
        c = real(self, service, region, max_attempts)
        if service == "dynamodb" and region == TARGET:
            c = OnceAnHour(c, state["last"], lambda: state["now"])
            state["clients"].append(c)
        return c

    monkeypatch.setattr(Backend, "client", client)
    return state


def test_ttl_attribute_change_takes_two_runs_an_hour_apart(
    backend: Backend, cfg: MigrationConfig, once_an_hour: dict[str, Any]
) -> None:
    make_source(backend, EVENTS_SCHEMA, ttl_attr="expiresAt")
    name = cfg.target_name("analytics-events")
    # The target as an older version left it: TTL on `ttl`, changed just now.
    target(backend).create_table(**target_table_request(
        backend.client("dynamodb", SOURCE).describe_table(TableName="analytics-events")["Table"],
        {}, cfg.dynamodb_tables[0], cfg, KEY_ARN,
    ))  # fmt: skip
    target(backend).update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )

    once_an_hour["now"] = 3601.0  # the old change is more than an hour old
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)  # must not raise
    assert out["ttl"]["status"] == "DISABLED"  # the first half: the wrong attribute is off
    assert (
        out["ttlDrift"] and out["ttlDrift"]["targetMayDelete"] is False and "another run" in out["ttlDrift"]["message"]
    )
    assert "ttl" not in out["repaired"] and "ttl" not in out["notSupportedByBackend"]
    report = {"resources": {"dynamodbTables": [{**out, "status": "in sync"}], "s3Buckets": []}}
    assert overall(report)["ok"] is True  # TTL off keeps every item: no reason for NO-GO
    assert any("finish the TTL of table analytics-events" in s for s in next_steps(report))

    # A run within the same hour makes no call that AWS would refuse, and still does not fail.
    calls_before = sum(len(c.calls) for c in once_an_hour["clients"])
    once_an_hour["now"] = 3700.0
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert out["ttl"]["status"] == "DISABLED" and out["ttlDrift"] and "refused" in out["ttlDrift"]["message"]
    assert sum(len(c.calls) for c in once_an_hour["clients"]) == calls_before + 1

    # A later run (more than an hour on) turns the source's attribute on.
    once_an_hour["now"] = 3601.0 + 3601.0
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert out["ttl"] == {"attribute": "expiresAt", "status": "ENABLED"}
    assert out["ttlDrift"] is None and out["repaired"] == ["ttl"]


def test_ttl_refused_on_a_target_that_may_delete_is_reported_not_raised(
    backend: Backend, cfg: MigrationConfig, once_an_hour: dict[str, Any]
) -> None:
    make_source(backend, EVENTS_SCHEMA)  # no TTL on the source
    first = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    target(backend).update_time_to_live(
        TableName=first["name"], TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )  # someone turned TTL on minutes ago
    out = ensure_table.fn(backend, cfg, cfg.dynamodb_tables[0], KEY_ARN)
    assert out["ttl"] == {"attribute": "ttl", "status": "ENABLED"}
    assert out["ttlDrift"] and out["ttlDrift"]["targetMayDelete"] is True
    assert AN_HOUR_RULE in out["ttlDrift"]["message"]
    status = overall({"resources": {"dynamodbTables": [{**out, "status": "in sync"}], "s3Buckets": []}})
    assert not status["ok"] and "may delete items the source keeps" in status["problems"][0]
