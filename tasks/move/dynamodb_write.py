"""The one BatchWriteItem path (the backfill, the stream catch-up, the checkpoint store, the demo seeding) and
the one BatchGetItem path (validation's consistent re-reads).

AWS (BatchWriteItem): "If DynamoDB returns any unprocessed items, you should retry the batch operation on those
items. However, we strongly recommend that you use an exponential backoff algorithm." boto3's BatchWriter
re-sends UnprocessedItems at once, without backoff, so this module does it: only the unprocessed requests are
re-sent, after a full-jitter wait (dynamodb_plan.backoff_delay), for a bounded number of attempts. BatchGetItem's
UnprocessedKeys get the same rule ("we strongly recommend that you use an exponential backoff algorithm").
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.aws import error_code
from tasks.move.dynamodb_plan import BATCH_SIZE, THROTTLE_CODES, backoff_delay

MAX_UNPROCESSED_ATTEMPTS = 15  # ~ a minute of full-jitter backoff capped at 5 s
MAX_THROTTLE_ATTEMPTS = 10  # on top of botocore's own attempts per call
THROTTLE_ATTEMPT_OFFSET = 3  # a throttle error outlasted botocore's retries: start the backoff higher


GET_BATCH_SIZE = 100  # BatchGetItem's limit of keys per request


class UnprocessedItemsError(RuntimeError):
    """Some requests (or keys) were still unprocessed after the bounded re-sends (nothing is dropped silently)."""


@dataclass
class WriteStats:
    written: int = 0
    retries: int = 0  # unprocessed requests re-sent
    throttles: int = 0  # throttling errors that outlasted botocore's retries

    def add(self, other: WriteStats) -> None:
        """Fold another batch's counts into this one."""
        self.written += other.written
        self.retries += other.retries
        self.throttles += other.throttles


def write_batch(
    ddb: Any,
    table: str,
    requests: Sequence[dict[str, Any]],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_unprocessed: int = MAX_UNPROCESSED_ATTEMPTS,
    max_throttles: int = MAX_THROTTLE_ATTEMPTS,
) -> WriteStats:
    """One BatchWriteItem of <= 25 Put/Delete requests, re-sending only UnprocessedItems with growing jittered
    waits until all are written; throttling errors are first retried by botocore (standard mode), then here."""
    stats = WriteStats()
    pending = list(requests)
    unprocessed_attempt = throttle_attempt = 0
    while pending:
        try:
            resp = ddb.batch_write_item(RequestItems={table: pending})
        except Exception as err:
            if error_code(err) in THROTTLE_CODES and throttle_attempt < max_throttles:
                stats.throttles += 1
                sleep(backoff_delay(throttle_attempt + THROTTLE_ATTEMPT_OFFSET))
                throttle_attempt += 1
                continue
            raise
        left = (resp.get("UnprocessedItems") or {}).get(table) or []
        stats.written += len(pending) - len(left)
        if left:
            if unprocessed_attempt >= max_unprocessed:
                raise UnprocessedItemsError(
                    f"{len(left)} items to {table} were still unprocessed after {unprocessed_attempt} retries"
                )
            stats.retries += len(left)
            sleep(backoff_delay(unprocessed_attempt))
            unprocessed_attempt += 1
        pending = left
    return stats


def write_all(
    ddb: Any, table: str, requests: Iterable[dict[str, Any]], *, sleep: Callable[[float], None] = time.sleep
) -> WriteStats:
    """Every request, in batches of 25 written one after the other (small writers: checkpoints, seeding)."""
    stats = WriteStats()
    it = iter(requests)
    while batch := list(itertools.islice(it, BATCH_SIZE)):
        stats.add(write_batch(ddb, table, batch, sleep=sleep))
    return stats


def get_batch(
    ddb: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_unprocessed: int = MAX_UNPROCESSED_ATTEMPTS,
) -> list[dict[str, Any]]:
    """The items for <= 100 keys, strongly consistent, re-asking only UnprocessedKeys after growing jittered waits."""
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {table: {"Keys": list(keys), "ConsistentRead": True}}
    attempt = 0
    while request:
        resp = ddb.batch_get_item(RequestItems=request)
        found.extend((resp.get("Responses") or {}).get(table, []))
        request = resp.get("UnprocessedKeys") or {}
        if request:
            if attempt >= max_unprocessed:
                left = len(request.get(table, {}).get("Keys", []))
                raise UnprocessedItemsError(f"{left} keys of {table} were still unprocessed after {attempt} retries")
            sleep(backoff_delay(attempt))
            attempt += 1
    return found
