"""The sync lease lock, written through CheckpointStore: the same conditional writes and the same stored item."""

from __future__ import annotations

import time

import pytest

from tasks.aws import Backend
from tasks.move import lock
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table

REGION, TABLE = "eu-west-1", "ckpt"


@pytest.fixture
def store(backend: Backend) -> CheckpointStore:
    ensure_checkpoint_table.fn(backend, REGION, TABLE, {}, None)
    return CheckpointStore(backend, REGION, TABLE)


def test_lease_is_exclusive_reentrant_and_expires(backend: Backend, store: CheckpointStore) -> None:
    assert lock.acquire(backend, REGION, TABLE, "sync", 600, "a")
    assert not lock.acquire(backend, REGION, TABLE, "sync", 600, "b")  # held by a
    assert lock.acquire(backend, REGION, TABLE, "sync", 600, "a")  # the holder renews it
    assert lock.acquire(backend, REGION, TABLE, "other", 600, "b")  # another lock name is another lease
    assert lock.acquire(backend, REGION, TABLE, "expired", -5, "a")  # a lease that ran out ...
    assert lock.acquire(backend, REGION, TABLE, "expired", 600, "b")  # ... is free for anyone


def test_release_removes_only_our_own_lease(backend: Backend, store: CheckpointStore) -> None:
    assert lock.acquire(backend, REGION, TABLE, "sync", 600, "a")
    lock.release(backend, REGION, TABLE, "sync", "b")  # not b's: kept, no error
    assert (store.get(lock.LOCK_PK, "sync") or {})["holder"] == "a"
    lock.release(backend, REGION, TABLE, "sync", "a")
    assert store.get(lock.LOCK_PK, "sync") is None
    lock.release(backend, REGION, TABLE, "sync", "a")  # already gone: fine
    assert lock.acquire(backend, REGION, TABLE, "sync", 600, "b")


def test_held_raises_lock_held_and_releases_after_the_body(backend: Backend, store: CheckpointStore) -> None:
    with lock.held(backend, REGION, TABLE, "sync") as holder:
        assert (store.get(lock.LOCK_PK, "sync") or {})["holder"] == holder
        with (
            pytest.raises(lock.LockHeld, match="another run holds the 'sync' lock"),
            lock.held(backend, REGION, TABLE, "sync"),
        ):
            pass
    assert store.get(lock.LOCK_PK, "sync") is None


def test_the_stored_lease_item_keeps_its_attribute_types(backend: Backend, store: CheckpointStore) -> None:
    before = int(time.time())
    assert lock.acquire(backend, REGION, TABLE, "sync", 600, "a")
    raw = backend.client("dynamodb", REGION).get_item(
        TableName=TABLE, Key={"pk": {"S": "lock"}, "sk": {"S": "sync"}}, ConsistentRead=True
    )["Item"]
    assert set(raw) == {"pk", "sk", "holder", "expiresAt", "updatedAt"}
    assert raw["holder"] == {"S": "a"}
    assert before + 600 <= int(raw["expiresAt"]["N"]) <= int(time.time()) + 600
    assert before <= int(raw["updatedAt"]["N"]) <= int(time.time())
