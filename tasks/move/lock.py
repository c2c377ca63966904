"""A lease lock in the checkpoint table, so two sync runs of one migration never overlap.

Prefect's deployment concurrency limit covers runs it schedules; this covers everything else (a CLI
run beside a scheduled one, two workers). A lease expires, so a killed holder cannot block forever.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.aws import Backend
from tasks.errors import UserError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.keys import LOCK_PK


class LockHeld(UserError):
    """Another run holds the lock; this run should stop without doing anything."""


def acquire(backend: Backend, region: str, table: str, name: str, lease_s: int, holder: str) -> bool:
    """Take the lease if it is free or expired; True when we hold it now."""
    now = int(time.time())
    return CheckpointStore(backend, region, table).put_where(
        LOCK_PK,
        name,
        {"holder": holder, "expiresAt": now + lease_s},
        "attribute_not_exists(pk) OR expiresAt < :now OR holder = :me",
        {":now": now, ":me": holder},
    )


def release(backend: Backend, region: str, table: str, name: str, holder: str) -> None:
    """Give the lease back, only if it is still ours."""
    CheckpointStore(backend, region, table).delete_where(LOCK_PK, name, "holder = :me", {":me": holder})


@contextmanager
def held(backend: Backend, region: str, table: str, name: str, lease_s: int = 3600) -> Iterator[str]:
    """Run the body under the lease or raise LockHeld at once (a skipped sync is better than a queued one)."""
    holder = uuid.uuid4().hex
    if not acquire(backend, region, table, name, lease_s, holder):
        raise LockHeld(f"another run holds the {name!r} lock of this migration; it will catch up for both")
    try:
        yield holder
    finally:
        release(backend, region, table, name, holder)
