"""The waits for a table (and its GSIs) to be ACTIVE and for a stream to be ENABLED: botocore waiters, bounded,
a timeout raises. Stubbed answers are checked against the real service models; the move is run on moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.move.dynamodb import ensure_source_stream
from tasks.names import resource_names
from tasks.provision import dynamodb as provision_ddb

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000"


@pytest.fixture(autouse=True)
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provision_ddb, "_WAIT", {"Delay": 0, "MaxAttempts": 3})
    monkeypatch.setattr(provision_ddb, "_STREAM_WAIT", {"Delay": 0, "MaxAttempts": 3})


def _stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


@pytest.fixture
def ddb() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("dynamodb")


@pytest.fixture
def streams() -> Iterator[tuple[Any, Stubber]]:
    yield from _stubbed("dynamodbstreams")


def _table(status: str, *gsis: str | None) -> dict[str, Any]:
    indexes = [{"IndexName": f"gsi-{i}", **({"IndexStatus": s} if s else {})} for i, s in enumerate(gsis)]
    return {
        "Table": {"TableName": "orders", "TableStatus": status, **({"GlobalSecondaryIndexes": indexes} if gsis else {})}
    }


def test_waits_for_the_table_and_every_gsi(ddb: tuple[Any, Stubber]) -> None:
    client, stub = ddb
    stub.add_client_error("describe_table", "ResourceNotFoundException")  # just created: not visible yet
    stub.add_response("describe_table", _table("CREATING"))
    stub.add_response("describe_table", _table("ACTIVE", "ACTIVE", "CREATING"))
    stub.add_response("describe_table", _table("ACTIVE", "ACTIVE", None))  # no IndexStatus: counts as ACTIVE
    stub.add_response("describe_table", _table("ACTIVE", "ACTIVE", None))  # the description returned
    provision_ddb._WAIT["MaxAttempts"] = 4
    assert provision_ddb.wait_active(client, "orders")["TableStatus"] == "ACTIVE"


def test_a_table_that_never_becomes_active_raises(ddb: tuple[Any, Stubber]) -> None:
    client, stub = ddb
    for _ in range(3):
        stub.add_response("describe_table", _table("ACTIVE", "UPDATING"))
    with pytest.raises(
        TimeoutError, match=r"DynamoDB table orders .*not ready after 3 checks.*table ACTIVE, gsi-0 UPDATING"
    ):
        provision_ddb.wait_active(client, "orders")


def test_another_error_is_raised_as_itself(ddb: tuple[Any, Stubber]) -> None:
    client, stub = ddb
    stub.add_client_error("describe_table", "AccessDeniedException", http_status_code=400)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        provision_ddb.wait_active(client, "orders")


def _stream(status: str) -> dict[str, Any]:
    return {"StreamDescription": {"StreamArn": ARN, "StreamStatus": status, "Shards": []}}


def test_stream_wait_returns_once_enabled_and_raises_when_it_never_is(streams: tuple[Any, Stubber]) -> None:
    client, stub = streams
    stub.add_response("describe_stream", _stream("ENABLING"), {"StreamArn": ARN, "Limit": 1})
    stub.add_response("describe_stream", _stream("ENABLED"), {"StreamArn": ARN, "Limit": 1})
    stub.add_response("describe_stream", _stream("ENABLED"), {"StreamArn": ARN, "Limit": 1})
    assert provision_ddb.wait_stream_enabled(client, ARN)["StreamStatus"] == "ENABLED"
    for _ in range(3):
        stub.add_response("describe_stream", _stream("ENABLING"))
    with pytest.raises(TimeoutError, match=r"not ready after 3 checks.*stream ENABLING"):
        provision_ddb.wait_stream_enabled(client, ARN)


def test_the_move_stops_when_the_source_table_never_becomes_active(backend: Backend, cfg: MigrationConfig) -> None:
    """The move's own wait used to return the last description silently at its deadline and enable the
    stream anyway; now the shared wait raises and the source is left as it was."""
    src = backend.client("dynamodb", cfg.source_region)
    src.create_table(
        TableName="orders",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ckpt = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, cfg.target_region, ckpt, cfg.tags(), None)

    def busy(parsed: dict[str, Any], **_: Any) -> None:
        if "Table" in parsed:
            parsed["Table"]["TableStatus"] = "UPDATING"

    src.meta.events.register("after-call.dynamodb.DescribeTable", busy)
    try:
        with pytest.raises(TimeoutError, match="DynamoDB table orders"):
            ensure_source_stream.fn(backend, cfg, "orders", ckpt)
    finally:
        src.meta.events.unregister("after-call.dynamodb.DescribeTable", busy)
    assert "StreamSpecification" not in src.describe_table(TableName="orders")["Table"]
