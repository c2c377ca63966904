"""The one BatchWriteItem helper: only UnprocessedItems re-sent, after growing full-jitter waits, bounded; and
the checkpoint store and the demo seeding write through it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from config.model import MigrationConfig
from tasks import emulator
from tasks.aws import Backend
from tasks.move import dynamodb_write
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.move.dynamodb_write import UnprocessedItemsError, write_all, write_batch

TABLE = "t"


def _put(i: int) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}}


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    """A real DynamoDB client whose answers are stubbed: requests are checked against the service model."""
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(ddb) as stub:
        yield ddb, stub
        stub.assert_no_pending_responses()


def test_only_unprocessed_items_are_resent_after_growing_jittered_waits(stubbed: tuple[Any, Stubber]) -> None:
    ddb, stub = stubbed
    requests = [_put(i) for i in range(5)]
    # 5 sent, 3 unprocessed; those 3 re-sent, 1 unprocessed; that 1 re-sent, done.
    for sent, left in ((requests, requests[2:]), (requests[2:], requests[4:]), (requests[4:], [])):
        answer = {"UnprocessedItems": {TABLE: left} if left else {}}
        stub.add_response("batch_write_item", answer, {"RequestItems": {TABLE: sent}})
    sleeps: list[float] = []
    random.seed(7)
    stats = write_batch(ddb, TABLE, requests, sleep=sleeps.append)
    assert (stats.written, stats.retries, stats.throttles) == (5, 4, 0)
    assert len(sleeps) == 2
    for attempt, slept in enumerate(sleeps):  # full jitter: uniform in [0, base * 2**attempt]
        assert 0 <= slept <= 0.05 * 2**attempt


def test_the_waits_are_jittered_and_their_bound_grows() -> None:
    ddb = _AlwaysUnprocessed()
    sleeps: list[float] = []
    random.seed(3)
    with pytest.raises(UnprocessedItemsError):
        write_batch(ddb, TABLE, [_put(0)], sleep=sleeps.append, max_unprocessed=8)
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed schedule
    assert all(0 <= s <= min(5.0, 0.05 * 2**a) for a, s in enumerate(sleeps))
    assert max(sleeps[4:]) > 0.05  # later waits may exceed the first attempt's bound


def test_gives_up_after_its_bound_with_a_clear_error() -> None:
    ddb = _AlwaysUnprocessed()
    sleeps: list[float] = []
    with pytest.raises(UnprocessedItemsError, match=r"2 items to t were still unprocessed after 4 retries"):
        write_batch(ddb, TABLE, [_put(0), _put(1)], sleep=sleeps.append, max_unprocessed=4)
    assert ddb.calls == 5 and len(sleeps) == 4


def test_throttling_errors_back_off_then_give_up(stubbed: tuple[Any, Stubber]) -> None:
    ddb, stub = stubbed
    for _ in range(3):
        stub.add_client_error("batch_write_item", "ProvisionedThroughputExceededException", http_status_code=400)
    sleeps: list[float] = []
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        write_batch(ddb, TABLE, [_put(0)], sleep=sleeps.append, max_throttles=2)
    assert len(sleeps) == 2
    stub.add_client_error("batch_write_item", "ValidationException", http_status_code=400)
    with pytest.raises(ClientError, match="ValidationException"):  # anything else is not retried here
        write_batch(ddb, TABLE, [_put(0)], sleep=sleeps.append)
    assert len(sleeps) == 2


def test_write_all_sends_batches_of_25(stubbed: tuple[Any, Stubber]) -> None:
    ddb, stub = stubbed
    requests = [_put(i) for i in range(60)]
    for batch in (requests[:25], requests[25:50], requests[50:]):
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {TABLE: batch}})
    assert write_all(ddb, TABLE, iter(requests)).written == 60


class _AlwaysUnprocessed:
    """A table that never accepts a write (every request comes back unprocessed)."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"UnprocessedItems": RequestItems}


# ---------------------------------------------------------------- the writers that use it


class _Bounce:
    """botocore hooks on a moto client: BatchWriteItem answers every request unprocessed `times` times (0: for
    ever, but a caller still re-sending after 40 answers is unbounded and fails the test)."""

    def __init__(self, client: Any, times: int = 0) -> None:
        self.client, self.times, self.bounced, self.lock = client, times, 0, threading.Lock()

    def remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["request_items"] = params["RequestItems"]

    def bounce(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        with self.lock:
            if self.bounced >= 40:
                raise AssertionError("unprocessed items re-sent without a bound")
            if self.times == 0 or self.bounced < self.times:
                self.bounced += 1
                parsed["UnprocessedItems"] = context["request_items"]

    def __enter__(self) -> _Bounce:
        self.client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", self.remember)
        self.client.meta.events.register("after-call.dynamodb.BatchWriteItem", self.bounce)
        return self

    def __exit__(self, *_: Any) -> None:
        self.client.meta.events.unregister("before-parameter-build.dynamodb.BatchWriteItem", self.remember)
        self.client.meta.events.unregister("after-call.dynamodb.BatchWriteItem", self.bounce)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The backoff attempts the helper asked for (each wait made 0 s so the tests stay fast)."""
    attempts: list[int] = []

    def record(attempt: int) -> float:
        attempts.append(attempt)
        return 0.0

    monkeypatch.setattr(dynamodb_write, "backoff_delay", record)
    return attempts


def test_checkpoint_store_batches_back_off_and_are_bounded(backend: Backend, backoffs: list[int]) -> None:
    ensure_checkpoint_table.fn(backend, "eu-west-1", "ckpt", {}, None)
    store = CheckpointStore(backend, "eu-west-1", "ckpt")
    ddb = backend.client("dynamodb", "eu-west-1")
    with _Bounce(ddb, times=2):
        assert store.put_many("p", ((f"s{i}", {"n": i}) for i in range(30))) == 30
    assert backoffs == [0, 1]  # the first batch bounced twice: two waits, the second one longer
    assert [sk for sk, _ in store.query("p")] == sorted(f"s{i}" for i in range(30))
    backoffs.clear()
    with _Bounce(ddb), pytest.raises(UnprocessedItemsError):
        store.delete_pk("p")
    assert backoffs == list(range(dynamodb_write.MAX_UNPROCESSED_ATTEMPTS))
    # (moto did apply the first batch: the hook only made it look unprocessed) the helper stopped at its bound
    assert store.delete_pk("p") == 5


def test_emulator_seeding_backs_off_on_unprocessed_items(
    backend: Backend, cfg: MigrationConfig, backoffs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "LARGE_OBJECT_BYTES", 1024)
    ddb = backend.client("dynamodb", cfg.source_region)
    with _Bounce(ddb, times=1) as bounce:
        seeded = emulator.seed_demo(backend, cfg, objects_per_bucket=1, items_per_table=30)
    assert bounce.bounced == 1 and backoffs == [0]
    for table in seeded["tables"]:
        assert ddb.scan(TableName=table["name"], Select="COUNT")["Count"] == table["items"] == 30


def _key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}}


def test_get_batch_asks_again_only_for_unprocessed_keys_with_backoff(stubbed: tuple[Any, Stubber]) -> None:
    """Validation's consistent re-reads: UnprocessedKeys re-asked after full-jitter waits, every item returned."""
    ddb, stub = stubbed
    keys = [_key(i) for i in range(4)]
    first = {"Keys": keys, "ConsistentRead": True}
    again = {"Keys": keys[1:], "ConsistentRead": True}
    stub.add_response(
        "batch_get_item",
        {"Responses": {TABLE: keys[:1]}, "UnprocessedKeys": {TABLE: again}},
        {"RequestItems": {TABLE: first}},
    )
    stub.add_response("batch_get_item", {"Responses": {TABLE: keys[1:]}}, {"RequestItems": {TABLE: again}})
    sleeps: list[float] = []
    assert dynamodb_write.get_batch(ddb, TABLE, keys, sleep=sleeps.append) == keys
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.05


def test_get_batch_gives_up_after_its_bound(stubbed: tuple[Any, Stubber]) -> None:
    ddb, stub = stubbed
    left = {"Keys": [_key(0)], "ConsistentRead": True}
    for _ in range(3):
        stub.add_response("batch_get_item", {"Responses": {}, "UnprocessedKeys": {TABLE: left}}, None)
    with pytest.raises(UnprocessedItemsError, match="1 keys of t were still unprocessed after 2 retries"):
        dynamodb_write.get_batch(ddb, TABLE, [_key(0)], sleep=lambda _s: None, max_unprocessed=2)
