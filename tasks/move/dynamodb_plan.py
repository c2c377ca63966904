"""Pure helpers for the DynamoDB move: segment planning, key encoding, stream ordering and collapsing.

No AWS calls here, so the rules that decide *what* gets written (and in which order) are unit-tested
without an emulator. Items stay raw AttributeValue dicts throughout: converting to Python and back
would lose 38-digit numbers, set types and the B/S distinction.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tasks.consistency import full_jitter_delay
from tasks.move.keys import STREAM_SK, segment_sk, shard_sk, table_pk  # noqa: F401 (re-exported)

BATCH_SIZE = 25  # BatchWriteItem's hard limit
# AWS's guidance for a parallel scan (Developer Guide, "Parallel scan", choosing TotalSegments): begin with one
# segment per 2 GB of data (a 30 GB table: 15 segments).
BYTES_PER_SEGMENT = 2 * 1024**3
# The same amount of work counted in writes: 2 GB of 1 KB items, each at least one write unit on the target.
ITEMS_PER_SEGMENT = 2_000_000
# Below this a segment is not worth its own scan: a small table gets a segment per 10k items, up to `busy`.
MIN_ITEMS_PER_SEGMENT = 10_000
MAX_SEGMENTS = 1_000_000  # Scan: "TotalSegments ... less than or equal to 1000000"
RETENTION_WARNING_S = 20 * 3600  # stream records live 24 h; warn with 4 h to spare
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
        "TooManyRequestsException",
    }
)
IMAGE_VIEW_TYPES = frozenset({"NEW_AND_OLD_IMAGES", "NEW_IMAGE"})  # both carry NewImage, all we replay


def plan_total_segments(item_count: int, size_bytes: int, busy: int = 1) -> int:
    """One segment per 2 GB or 2M items (whichever asks for more), at least `busy` (the scanners that run at
    once) when the table has 10k items for each, between 1 and DynamoDB's 1,000,000."""
    items, size = max(0, item_count), max(0, size_bytes)
    by_bytes = math.ceil(size / BYTES_PER_SEGMENT)
    by_items = math.ceil(items / ITEMS_PER_SEGMENT)
    floor = min(max(1, busy), math.ceil(items / MIN_ITEMS_PER_SEGMENT))
    return max(1, min(MAX_SEGMENTS, max(by_items, by_bytes, floor)))


def segment_groups(total_segments: int, max_tasks: int) -> list[dict[str, int]]:
    """Contiguous runs of segments, one per task run: at most `max_tasks` of them, sizes differing by at most one.

    Each group is `{"first", "stop", "of"}` (segments first..stop-1, `of` groups in all): small and picklable, a
    task argument whatever the number of segments. `of` bounds how many segments ever scan at once (a group scans
    its segments one after the other), which is what the read budget is divided by.
    """
    n = max(1, min(total_segments, max_tasks))
    size, extra = divmod(total_segments, n)
    groups: list[dict[str, int]] = []
    first = 0
    for i in range(n):
        stop = first + size + (1 if i < extra else 0)
        groups.append({"first": first, "stop": stop, "of": n})
        first = stop
    return groups


def chunks(items: Sequence[Any], size: int = BATCH_SIZE) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _av_map(av: Mapping[str, Any], enc: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t, v in av.items():
        if t == "B":
            out[t] = base64.b64encode(v).decode("ascii") if enc else base64.b64decode(v)
        elif t == "BS":
            out[t] = [base64.b64encode(x).decode("ascii") if enc else base64.b64decode(x) for x in v]
        elif t == "M":
            out[t] = {k: _av_map(x, enc) for k, x in v.items()}
        elif t == "L":
            out[t] = [_av_map(x, enc) for x in v]
        else:
            out[t] = v
    return out


def encode_item(item: Mapping[str, Any]) -> str:
    """A raw item/key as canonical JSON (binary as base64): storable in a checkpoint and comparable."""
    return json.dumps({k: _av_map(v, True) for k, v in item.items()}, sort_keys=True, separators=(",", ":"))


def decode_item(text: str) -> dict[str, Any]:
    """The inverse of encode_item: raw AttributeValues, binary back to bytes."""
    return {k: _av_map(v, False) for k, v in json.loads(text).items()}


def _value_size(av: Mapping[str, Any]) -> int:
    for t, v in av.items():
        if t == "S":
            return len(v.encode("utf-8"))
        if t == "N":
            return len(v) // 2 + 1
        if t == "B":
            return len(v)
        if t in ("SS", "NS", "BS"):
            return sum(_value_size({t[0]: x}) for x in v)
        if t == "M":
            return 3 + sum(len(k.encode("utf-8")) + _value_size(x) + 1 for k, x in v.items())
        if t == "L":
            return 3 + sum(_value_size(x) + 1 for x in v)
        return 1  # BOOL, NULL
    return 0


def item_size(item: Mapping[str, Any]) -> int:
    """Approximate stored size of a raw item by DynamoDB's rules (names + values), for byte counts."""
    return sum(len(k.encode("utf-8")) + _value_size(v) for k, v in item.items())


def collapse_records(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Keep only the last stream record per key, as ("put", NewImage) or ("delete", Keys).

    Applying just the last change per key gives the same final state as applying them all in order,
    and makes every key unique in the batch (BatchWriteItem rejects duplicate keys).
    """
    last: dict[str, tuple[str, dict[str, Any]]] = {}
    for rec in records:
        body = rec["dynamodb"]
        ident = encode_item(body["Keys"])
        last.pop(ident, None)  # re-insert so dict order follows each key's last change
        if rec["eventName"] == "REMOVE":
            last[ident] = ("delete", dict(body["Keys"]))
        else:
            image = body.get("NewImage")
            if image is None:
                raise ValueError(f"stream record {body.get('SequenceNumber')} has no NewImage")
            last[ident] = ("put", dict(image))
    return list(last.values())


def write_requests(ops: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """BatchWriteItem request entries for collapsed operations."""
    return [{"PutRequest": {"Item": body}} if op == "put" else {"DeleteRequest": {"Key": body}} for op, body in ops]


def order_shards(shards: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Shards with every parent before its children (a parent no longer listed counts as a root);
    siblings keep describe_stream's order, which is by creation."""
    by_id = {s["ShardId"]: dict(s) for s in shards}
    children: dict[str | None, list[str]] = {}
    for s in shards:
        parent = s.get("ParentShardId")
        children.setdefault(parent if parent in by_id else None, []).append(s["ShardId"])
    out: list[dict[str, Any]] = []
    stack = list(reversed(children.get(None, [])))
    seen: set[str] = set()
    while stack:
        sid = stack.pop()
        if sid in seen:
            continue
        seen.add(sid)
        out.append(by_id[sid])
        stack.extend(reversed(children.get(sid, [])))
    # A parent cycle cannot happen on AWS; keep any leftovers rather than drop data.
    out.extend(v for k, v in by_id.items() if k not in seen)
    return out


def backoff_delay(attempt: int, base: float = 0.05, cap: float = 5.0, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, DynamoDB's short base and cap (the one formula: tasks.consistency)."""
    return full_jitter_delay(attempt, (rng or random).random(), base, cap)


def age_seconds(when: datetime | float | int, now: datetime | None = None) -> float:
    """Seconds from a stream record's ApproximateCreationDateTime to now (never negative)."""
    now = now or datetime.now(UTC)
    if isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (now - when).total_seconds())


def retention_warning(oldest_unapplied_age_s: float | None, table: str) -> str | None:
    """A warning when unapplied records approach the 24 h stream retention (they would be lost)."""
    if oldest_unapplied_age_s is None or oldest_unapplied_age_s <= RETENTION_WARNING_S:
        return None
    hours = oldest_unapplied_age_s / 3600
    return (
        f"stream of {table}: the oldest unapplied record is {hours:.1f} h old and records expire after 24 h; "
        "run catch-up now or re-run the backfill"
    )


# ---------------------------------------------------------------- scans: request, read budget, retry budget

READ_UNIT_BYTES = 4096  # a read capacity unit reads 4 KB strongly consistent, or 8 KB eventually consistent


def scan_request(
    table: str,
    segment: int,
    total_segments: int,
    *,
    consistent: bool,
    start_key: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Scan kwargs: segment parameters only when more than one segment is planned (a backend that cannot
    scan a table in segments still serves a one-segment scan), and the consumed capacity asked for, so
    the reader can pace itself."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": consistent,
        "ReturnConsumedCapacity": "TOTAL",
    }
    if total_segments > 1:
        kwargs["Segment"] = segment
        kwargs["TotalSegments"] = total_segments
    if start_key:
        kwargs["ExclusiveStartKey"] = dict(start_key)
    if limit:
        kwargs["Limit"] = limit
    return kwargs


def table_read_rate(desc: Mapping[str, Any], share: float, on_demand_rate: float) -> tuple[float, str]:
    """(read capacity units per second every scan of this table may use together, how it was decided).

    Provisioned: `share` of the table's read capacity. On-demand: `share` of its MaxReadRequestUnits when it
    has one, else `on_demand_rate`.
    """
    mode = str(desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"))
    if mode == "PROVISIONED":
        units = float((desc.get("ProvisionedThroughput") or {}).get("ReadCapacityUnits") or 0)
        if units > 0:
            return max(1.0, share * units), f"{share:g} x {units:g} provisioned RCU"
    cap = float((desc.get("OnDemandThroughput") or {}).get("MaxReadRequestUnits") or 0)
    if cap > 0:
        return max(1.0, share * cap), f"{share:g} x {cap:g} MaxReadRequestUnits"
    return on_demand_rate, f"on-demand rate {on_demand_rate:g} RCU/s"


WRITE_UNIT_BYTES = 1024  # a write capacity unit writes one item of up to 1 KB (larger items: one per KB)


def target_write_rate(desc: Mapping[str, Any]) -> tuple[float | None, str]:
    """(write capacity units per second the target's backfill writers may use together, how it was decided).

    Provisioned: its write capacity (the target is ours: scaled from the source's). On-demand: its
    MaxWriteRequestUnits when it has one, else None: nothing to pace to; what bounds it then is DynamoDB's
    per-table on-demand throughput quota and the partitions' 1,000 WCU each (throttles are retried with backoff).
    """
    mode = str(desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"))
    if mode == "PROVISIONED":
        units = float((desc.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits") or 0)
        if units > 0:
            return units, f"{units:g} provisioned WCU"
    cap = float((desc.get("OnDemandThroughput") or {}).get("MaxWriteRequestUnits") or 0)
    if cap > 0:
        return cap, f"{cap:g} MaxWriteRequestUnits"
    return None, "on-demand: bounded by the table's throughput quota, not paced"


def write_units(items: Iterable[Mapping[str, Any]]) -> float:
    """What writing these items costs: one unit per started KB of each item (DynamoDB's write rule)."""
    return float(sum(max(1, math.ceil(item_size(it) / WRITE_UNIT_BYTES)) for it in items))


def estimate_read_units(size_bytes: int, consistent: bool) -> float:
    """What a Scan page costs when the backend does not say: its size in 4 KB units, half for eventual reads."""
    units = math.ceil(max(0, size_bytes) / READ_UNIT_BYTES)
    return float(units if consistent else units / 2)


class ReadPacer:
    """A token bucket in read capacity units per second, paid after each page with what it consumed.

    One pacer per scan worker, each with its static share of the table's budget (the budget divided by the
    scanners that can run at once: the segment groups, each scanning one segment at a time), so the total holds
    however many processes the workers run in. The target's write units are paced the same way. A page may overdraw the
    bucket (its cost is known only afterwards); the next page waits until the debt is paid back.
    """

    def __init__(
        self,
        rate: float,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"read rate must be positive (got {rate})")
        self.rate = rate
        self.capacity = rate * burst_seconds
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._tokens = self.capacity
        self._last = self._clock()
        self.consumed = 0.0
        self.waited = 0.0

    def spend(self, units: float) -> float:
        """Pay for a page; sleeps while the bucket is in debt and returns the seconds slept."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= max(0.0, units)
        self.consumed += max(0.0, units)
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        self._sleep(wait)
        self.waited += wait
        self._tokens = 0.0
        self._last = now + wait
        return wait


def consumed_units(resp: Mapping[str, Any], size_bytes: int, consistent: bool) -> float:
    """The page's ConsumedCapacity.CapacityUnits, or an estimate from its size when the backend gives none."""
    cc = resp.get("ConsumedCapacity")
    if isinstance(cc, Mapping) and cc.get("CapacityUnits") is not None:
        return float(cc["CapacityUnits"])
    return estimate_read_units(size_bytes, consistent)


class RetryBudget:
    """The total time one failing call may spend being retried, across every attempt that makes it.

    botocore retries inside each attempt and Prefect retries the task; multiplied, a call that fails the same
    way every time took minutes. Whoever retries asks `allow()` after each failure: True while the failures
    began less than `seconds` ago. A success (`reset()`), or a quiet `gap` after the last failure, starts afresh.
    """

    def __init__(self, seconds: float, gap: float = 120.0, clock: Callable[[], float] | None = None) -> None:
        self.seconds = seconds
        self.gap = gap
        self._clock = clock or time.monotonic
        self.first: float | None = None
        self.last: float | None = None

    def allow(self) -> bool:
        now = self._clock()
        if self.first is None or self.last is None or now - self.last > self.gap:
            self.first = now
        self.last = now
        return now - self.first < self.seconds

    def spent(self) -> float:
        return 0.0 if self.first is None or self.last is None else self.last - self.first

    def reset(self) -> None:
        self.first = self.last = None
