"""DynamoDB data movement without global tables: source stream, parallel-scan backfill, stream catch-up.

Order matters and is the whole trick: the stream is enabled on the source *before* the backfill scans,
so every write made while (or after) the backfill runs is in the stream; replaying the stream afterwards
in per-key order converges the target to the source. Puts and deletes are idempotent, so any page or
record replayed after a crash lands on the same state.

Items are raw AttributeValue dicts from the low-level client end to end (no TypeDeserializer round
trip), so 38-digit numbers, binary, sets, nested maps/lists and empty strings are copied exactly.
Progress lives in the checkpoint table in the target region (tasks.move.checkpoints).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend, error_code, is_not_found
from tasks.errors import PreflightError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb_plan import (
    IMAGE_VIEW_TYPES,
    STREAM_SK,
    THROTTLE_CODES,
    ReadPacer,
    age_seconds,
    backoff_delay,
    chunks,
    collapse_records,
    consumed_units,
    decode_item,
    encode_item,
    item_size,
    order_shards,
    plan_total_segments,
    retention_warning,
    scan_request,
    segment_sk,
    shard_sk,
    table_pk,
    table_read_rate,
    write_requests,
)
from tasks.move.dynamodb_scan import call_scan, scan_client, segmented_scan_problem, spec_for
from tasks.names import resource_names
from tasks.provision.dynamodb import wait_active, wait_stream_enabled
from tasks.steps import step

PLAN_SK = "plan"
VIEW_TYPE = "NEW_AND_OLD_IMAGES"
# Pages whose writes may be in flight at once. 1 = a kill re-does at most one page, and the next page is
# already scanned (prefetched) while the current one is written, so scanning still overlaps writing.
PAGE_WINDOW = 1
MAX_UNPROCESSED_ATTEMPTS = 15  # ~ a minute of full-jitter backoff capped at 5 s
MAX_THROTTLE_ATTEMPTS = 10  # on top of botocore's own 8 attempts per call
STREAM_PAGE = 1000  # get_records maximum
CLOSED_SHARD_EMPTY_POLLS = 20


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _store(backend: Backend, cfg: MigrationConfig, checkpoint_table: str | None) -> CheckpointStore:
    return CheckpointStore(backend, cfg.targetRegion, checkpoint_table or resource_names(cfg).checkpoint_table)


def _describe_source(ddb: Any, cfg: MigrationConfig, table: str) -> dict[str, Any]:
    try:
        return ddb.describe_table(TableName=table)["Table"]
    except Exception as err:
        if is_not_found(err):
            raise PreflightError(
                f"source table {table!r} does not exist in {cfg.sourceRegion}; check dynamodbTables in the config"
            ) from None
        raise


@step("ddb-stream", run_name="ddb-stream-{source_table}")
def ensure_source_stream(
    backend: Backend, cfg: MigrationConfig, source_table: str, checkpoint_table: str | None = None
) -> dict[str, Any]:
    """Make sure the source table streams NEW_AND_OLD_IMAGES before the backfill starts (idempotent).

    Whether *we* enabled it is recorded durably (an intent record goes in before the change), so teardown
    disables only streams this migration turned on, even after a crash between the two.
    """
    ddb = backend.client("dynamodb", cfg.sourceRegion)
    streams = backend.client("dynamodbstreams", cfg.sourceRegion)
    store = _store(backend, cfg, checkpoint_table)
    pk = table_pk(source_table)
    desc = _describe_source(ddb, cfg, source_table)
    record = store.get(pk, STREAM_SK) or {}
    spec = desc.get("StreamSpecification") or {}
    warnings: list[str] = []
    changed_now = False

    if spec.get("StreamEnabled"):
        view = str(spec.get("StreamViewType"))
        if view not in IMAGE_VIEW_TYPES:
            raise PreflightError(
                f"source table {source_table!r} already has a {view} stream, which carries no new item "
                f"images; switch it to {VIEW_TYPE} (or NEW_IMAGE) and re-run"
            )
        arn = str(desc["LatestStreamArn"])
        stream = wait_stream_enabled(streams, arn)
        recorded = record.get("streamArn")
        if record.get("enabledByUs") and not recorded:
            # We crashed between enabling and recording: adopt it if it was created after our intent.
            created = stream.get("CreationRequestDateTime")
            intent = int(record.get("intentAt", 0))
            enabled_by_us = created is not None and created.timestamp() >= intent - 5
        else:
            enabled_by_us = bool(record.get("enabledByUs")) and recorded == arn
        if recorded and recorded != arn:
            warnings.append(
                f"the stream changed since it was recorded ({recorded} -> {arn}); writes made in between may "
                "be missing from the target: re-run the backfill"
            )
        enabled_at = record.get("enabledAt") if enabled_by_us else None
        if enabled_by_us and not enabled_at:
            enabled_at = stream["CreationRequestDateTime"].astimezone(UTC).isoformat(timespec="seconds")
    else:
        if record.get("streamArn"):
            warnings.append(
                f"the stream recorded earlier ({record['streamArn']}) was disabled since; writes made "
                "while it was off are missing from the target: re-run the backfill"
            )
        store.put(pk, STREAM_SK, {"enabledByUs": True, "intentAt": int(time.time()), "viewType": VIEW_TYPE})
        wait_active(ddb, source_table)
        ddb.update_table(
            TableName=source_table, StreamSpecification={"StreamEnabled": True, "StreamViewType": VIEW_TYPE}
        )
        desc = wait_active(ddb, source_table)
        arn = str(desc["LatestStreamArn"])
        stream = wait_stream_enabled(streams, arn)
        view = VIEW_TYPE
        enabled_by_us = True
        enabled_at = _now_iso()
        changed_now = True

    wanted = {"streamArn": arn, "viewType": view, "enabledByUs": enabled_by_us}
    if enabled_at:
        wanted["enabledAt"] = enabled_at
    if any(record.get(k) != v for k, v in wanted.items()) or "intentAt" in record:
        store.put(pk, STREAM_SK, wanted)

    source_changed = (
        [
            f"DynamoDB stream ({view}) enabled on source table {source_table} in {cfg.sourceRegion} "
            f"at {enabled_at} by this migration; teardown disables it"
        ]
        if enabled_by_us
        else []
    )
    return {
        "table": source_table,
        "streamArn": arn,
        "streamLabel": stream.get("StreamLabel"),
        "streamStatus": stream.get("StreamStatus"),
        "viewType": view,
        "enabledByUs": enabled_by_us,
        "enabledAt": enabled_at,
        "changedNow": changed_now,
        "sourceChanged": source_changed,
        "warnings": warnings,
    }


@step("ddb-segments", run_name="ddb-segments-{source_table}")
def plan_segments(
    backend: Backend, cfg: MigrationConfig, source_table: str, checkpoint_table: str | None = None
) -> int:
    """Total parallel-scan segments for the table, decided once and persisted: segment positions are only
    meaningful for the same total, so a resumed run must reuse it even if the table has grown.

    A plan of several segments is probed first: where the backend cannot scan this table in segments, the
    plan is one segment and says why (`segmentedScan`), which the backfill reports under notSupportedByBackend.
    """
    store = _store(backend, cfg, checkpoint_table)
    pk = table_pk(source_table)
    existing = store.get(pk, PLAN_SK)
    if existing and existing.get("totalSegments"):
        total = int(existing["totalSegments"])
        if total == 1 or existing.get("segmentedScan"):
            return total
        # Planned by an older version, never probed: probe it now (its segments cannot have progressed
        # on a backend that refuses segmented scans; one segment re-puts idempotently).
        problem = segmented_scan_problem(backend, cfg.sourceRegion, source_table, total)
        if problem is None:
            store.put(pk, PLAN_SK, {**existing, "segmentedScan": "ok"})
            return total
        store.put(pk, PLAN_SK, {**existing, "totalSegments": 1, "plannedTotal": total, "segmentedScan": problem})
        return 1
    desc = _describe_source(backend.client("dynamodb", cfg.sourceRegion), cfg, source_table)
    items, size = int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0))
    total = plan_total_segments(items, size)
    attrs: dict[str, Any] = {
        "totalSegments": total,
        "itemCount": items,
        "tableSizeBytes": size,
        "plannedAt": _now_iso(),
    }
    problem = segmented_scan_problem(backend, cfg.sourceRegion, source_table, total)
    if problem:
        attrs.update(totalSegments=1, plannedTotal=total, segmentedScan=problem)
        total = 1
    else:
        attrs["segmentedScan"] = "ok" if total > 1 else "one segment"
    if not store.put_if_absent(pk, PLAN_SK, attrs):  # another run planned first: theirs wins
        return int(str((store.get(pk, PLAN_SK) or attrs)["totalSegments"]))
    return total


def backend_limits(plan: dict[str, Any] | None) -> dict[str, str]:
    """The notSupportedByBackend entry a plan implies (a segmented-scan fallback), else {}."""
    why = (plan or {}).get("segmentedScan")
    return {"segmentedScan": str(why)} if why and why not in ("ok", "one segment") else {}


@dataclass
class _WriteStats:
    written: int = 0
    retries: int = 0  # unprocessed items re-sent
    throttles: int = 0  # throttling errors that outlasted botocore's retries


def _write_batch(ddb: Any, table: str, requests: Sequence[dict[str, Any]]) -> _WriteStats:
    """One BatchWriteItem of <= 25 requests, re-sending UnprocessedItems with full-jitter backoff until
    all are written; throttling errors are first retried by botocore (standard mode), then here."""
    stats = _WriteStats()
    pending = list(requests)
    unprocessed_attempt = throttle_attempt = 0
    while pending:
        try:
            resp = ddb.batch_write_item(RequestItems={table: pending})
        except Exception as err:
            if error_code(err) in THROTTLE_CODES and throttle_attempt < MAX_THROTTLE_ATTEMPTS:
                stats.throttles += 1
                time.sleep(backoff_delay(throttle_attempt + 3))
                throttle_attempt += 1
                continue
            raise
        left = (resp.get("UnprocessedItems") or {}).get(table) or []
        stats.written += len(pending) - len(left)
        if left:
            if unprocessed_attempt >= MAX_UNPROCESSED_ATTEMPTS:
                raise RuntimeError(
                    f"{len(left)} items to {table} were still unprocessed after {unprocessed_attempt} retries"
                )
            stats.retries += len(left)
            time.sleep(backoff_delay(unprocessed_attempt))
            unprocessed_attempt += 1
        pending = left
    return stats


@dataclass
class _Page:
    futures: list[Future[_WriteStats]]
    last_key: dict[str, Any] | None
    scanned: int


@dataclass
class _SegmentProgress:
    scanned: int = 0
    written: int = 0
    pages: int = 0
    retries: int = 0
    throttles: int = 0
    bytes: int = 0
    totals: dict[str, int] = field(default_factory=dict)


@step("ddb-backfill", retries=4, run_name="ddb-backfill-{source_table}-{segment}")
def backfill_segment(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    segment: int,
    total_segments: int,
    checkpoint_table: str,
    writers: int = SETTINGS.ddb_writers,
    page_size: int | None = None,
) -> dict[str, Any]:
    """Copy one parallel-scan segment, resuming from its checkpoint; a finished segment is skipped.

    The next page is scanned while the current one is written by `writers` threads; a page's
    LastEvaluatedKey is checkpointed only once all of its items are written, so a kill re-does at most
    PAGE_WINDOW page(s) of idempotent puts. `page_size` caps items per scan page (default: DynamoDB's
    1 MB pages), trading a few more checkpoint writes for less re-done work after a kill.
    """
    if not 0 <= segment < total_segments:
        raise ValueError(f"segment {segment} is outside 0..{total_segments - 1}")
    src = scan_client(backend, cfg.sourceRegion)
    dst = backend.client("dynamodb", cfg.targetRegion)
    store = CheckpointStore(backend, cfg.targetRegion, checkpoint_table)
    pk, sk = table_pk(source_table), segment_sk(segment, total_segments)
    cp = store.get(pk, sk) or {}
    limits = backend_limits(store.get(pk, PLAN_SK))
    prev = {k: int(cp.get(k, 0)) for k in ("scanned", "written", "pages")}
    base: dict[str, Any] = {
        "table": source_table,
        "target": target_table,
        "segment": segment,
        "totalSegments": total_segments,
        "notSupportedByBackend": limits,
    }
    if cp.get("done"):
        return {
            **base, "skipped": True, "scanned": 0, "written": 0, "pages": 0, "retries": 0, "throttles": 0,
            "bytes": 0, "duration_s": 0.0, "resumedFrom": None, "done": True,
            "totalScanned": prev["scanned"], "totalWritten": prev["written"],
        }  # fmt: skip
    start_key = decode_item(str(cp["lastKey"])) if cp.get("lastKey") else None
    started = time.monotonic()
    progress = _SegmentProgress()
    spec = spec_for(cfg, source_table)
    table_rate, rate_from = table_read_rate(
        _describe_source(src, cfg, source_table), spec.sourceReadShare, spec.onDemandReadRate
    )
    pacer = ReadPacer(table_rate / total_segments)  # a static share: holds across tasks and processes

    # Eventually consistent reads (half the cost): a write the scan reads stale was made after the stream was
    # on (it is replayed by the catch-up) or seconds before, while the stream was being enabled and waited for.
    call_key = (cfg.sourceRegion, source_table, f"{segment}/{total_segments}")

    def scan(start: dict[str, Any] | None) -> dict[str, Any]:
        request = scan_request(
            source_table, segment, total_segments, consistent=False, start_key=start, limit=page_size
        )
        resp = call_scan(src, request, call_key)
        wire = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-length")
        size = int(wire) if wire else sum(item_size(it) for it in resp.get("Items", []))
        pacer.spend(consumed_units(resp, size, consistent=False))
        return resp

    def commit(page: _Page) -> None:
        for fut in page.futures:
            s = fut.result()
            progress.written += s.written
            progress.retries += s.retries
            progress.throttles += s.throttles
        progress.scanned += page.scanned
        progress.pages += 1
        attrs: dict[str, Any] = {
            "segment": segment,
            "totalSegments": total_segments,
            "done": page.last_key is None,
            "scanned": prev["scanned"] + progress.scanned,
            "written": prev["written"] + progress.written,
            "pages": prev["pages"] + progress.pages,
        }
        if page.last_key is not None:
            attrs["lastKey"] = encode_item(page.last_key)
        store.put(pk, sk, attrs)

    pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix=f"ddb-w{segment}")
    scanner = ThreadPoolExecutor(1, thread_name_prefix=f"ddb-s{segment}")
    inflight: deque[_Page] = deque()
    try:
        next_scan: Future[dict[str, Any]] | None = scanner.submit(scan, start_key)
        while next_scan is not None:
            resp = next_scan.result()
            last_key = resp.get("LastEvaluatedKey")
            next_scan = scanner.submit(scan, last_key) if last_key else None  # prefetch
            items = resp.get("Items", [])
            # Wire size when the transport reports it (free), else DynamoDB's item-size rule.
            wire = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-length")
            progress.bytes += int(wire) if wire else sum(item_size(it) for it in items)
            while len(inflight) >= PAGE_WINDOW:
                commit(inflight.popleft())
            futures = [
                pool.submit(_write_batch, dst, target_table, [{"PutRequest": {"Item": it}} for it in chunk])
                for chunk in chunks(items)
            ]
            inflight.append(_Page(futures, last_key, len(items)))
        while inflight:
            commit(inflight.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        scanner.shutdown(wait=True, cancel_futures=True)

    return {
        **base,
        "skipped": False,
        "scanned": progress.scanned,
        "written": progress.written,
        "pages": progress.pages,
        "retries": progress.retries,
        "throttles": progress.throttles,
        "bytes": progress.bytes,
        "duration_s": round(time.monotonic() - started, 3),
        "resumedFrom": encode_item(start_key) if start_key else None,
        "done": True,
        "totalScanned": prev["scanned"] + progress.scanned,
        "totalWritten": prev["written"] + progress.written,
        "readRate": round(pacer.rate, 3),
        "readRateFrom": f"{rate_from} / {total_segments} segment(s)",
        "consumedReadUnits": round(pacer.consumed, 1),
        "pacedSeconds": round(pacer.waited, 3),
    }


def _list_shards(streams: Any, arn: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": arn}
    while True:
        desc = streams.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs["ExclusiveStartShardId"] = last


@dataclass
class _Budget:
    deadline: float | None
    records_left: int | None

    def exhausted(self) -> bool:
        if self.records_left is not None and self.records_left <= 0:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def page(self) -> int:
        return STREAM_PAGE if self.records_left is None else max(1, min(STREAM_PAGE, self.records_left))


@dataclass
class _CatchUpStats:
    records: int = 0
    puts: int = 0
    deletes: int = 0
    retries: int = 0
    throttles: int = 0
    oldest_age: float | None = None
    warnings: list[str] = field(default_factory=list)


def _shard_iterator(streams: Any, arn: str, shard_id: str, sequence: str | None, stats: _CatchUpStats) -> str:
    """An iterator just after the last applied record, or from the trim horizon for a new shard. If the
    checkpoint itself was trimmed away, records were lost: start at the horizon and say so."""
    if sequence:
        try:
            return str(
                streams.get_shard_iterator(
                    StreamArn=arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=sequence,
                )["ShardIterator"]
            )
        except Exception as err:
            if error_code(err) != "TrimmedDataAccessException":
                raise
            stats.warnings.append(
                f"shard {shard_id}: records after checkpoint {sequence} were trimmed (older than 24 h) "
                "before being applied; re-run the backfill to recover them"
            )
    return str(
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    )


def catch_up(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    checkpoint_table: str,
    max_seconds: float | None = None,
    max_records: int | None = None,
    writers: int = SETTINGS.ddb_writers,
) -> dict[str, Any]:
    """Replay the source stream onto the target from the shard checkpoints, parents before children.

    Each get_records page is collapsed to the last change per key and written as one parallel batch,
    then its last sequence number is checkpointed; replaying a page twice converges to the same state.
    Stops early after `max_seconds` or `max_records`, and reports the lag left behind.
    """
    started = time.monotonic()
    ddb_src = backend.client("dynamodb", cfg.sourceRegion)
    streams = backend.client("dynamodbstreams", cfg.sourceRegion)
    dst = backend.client("dynamodb", cfg.targetRegion)
    store = CheckpointStore(backend, cfg.targetRegion, checkpoint_table)
    pk = table_pk(source_table)
    desc = _describe_source(ddb_src, cfg, source_table)
    if not (desc.get("StreamSpecification") or {}).get("StreamEnabled") or not desc.get("LatestStreamArn"):
        raise PreflightError(
            f"source table {source_table!r} has no enabled stream; run ensure_source_stream before catch-up"
        )
    arn = str(desc["LatestStreamArn"])
    stats = _CatchUpStats()
    recorded = (store.get(pk, STREAM_SK) or {}).get("streamArn")
    if recorded and recorded != arn:
        stats.warnings.append(
            f"the source stream changed since the backfill ({recorded} -> {arn}); writes in between may be "
            "missing: re-run the backfill"
        )
    budget = _Budget(None if max_seconds is None else started + max_seconds, max_records)
    shards = order_shards(_list_shards(streams, arn))
    listed = {s["ShardId"] for s in shards}
    checkpoints = dict(store.query(pk, "shard#"))
    finished: set[str] = set()
    shard_report: list[dict[str, Any]] = []
    to_peek: list[tuple[str, str | None]] = []  # shards that may still hold unapplied records
    pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix="ddb-catchup")

    def apply(records: list[dict[str, Any]]) -> None:
        ops = collapse_records(records)
        futures = [pool.submit(_write_batch, dst, target_table, write_requests(c)) for c in chunks(ops)]
        for fut in futures:
            s = fut.result()
            stats.retries += s.retries
            stats.throttles += s.throttles
        stats.puts += sum(1 for op, _ in ops if op == "put")
        stats.deletes += sum(1 for op, _ in ops if op == "delete")

    try:
        for shard in shards:
            sid = shard["ShardId"]
            sk = shard_sk(arn, sid)
            cp = checkpoints.get(sk, {})
            sequence: str | None = cp.get("sequence")
            ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            entry: dict[str, Any] = {
                "shardId": sid,
                "parent": shard.get("ParentShardId"),
                "closed": bool(ending),
            }
            shard_report.append(entry)
            parent = shard.get("ParentShardId")
            if cp.get("finished") or (ending and sequence and int(sequence) >= int(ending)):
                finished.add(sid)
                entry.update(state="finished", sequence=sequence, applied=0)
                continue
            if parent in listed and parent not in finished:
                entry.update(state="waiting-for-parent", sequence=sequence, applied=0)
                continue
            if budget.exhausted():
                entry.update(state="not-started", sequence=sequence, applied=0)
                to_peek.append((sid, sequence))
                continue
            state, sequence, applied = _replay_shard(
                streams, store, pk, sk, arn, shard, sequence, budget, stats, apply, cp
            )
            entry.update(state=state, sequence=sequence, applied=applied)
            if state == "finished":
                finished.add(sid)
            elif state == "stopped":
                to_peek.append((sid, sequence))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    lag = 0.0
    for sid, sequence in to_peek:
        age = _peek_age(streams, arn, sid, sequence, stats)
        if age is not None:
            lag = max(lag, age)
    warning = retention_warning(lag if lag > 0 else None, source_table)
    return {
        "table": source_table,
        "target": target_table,
        "streamArn": arn,
        "records": stats.records,
        "puts": stats.puts,
        "deletes": stats.deletes,
        "retries": stats.retries,
        "throttles": stats.throttles,
        "shards": shard_report,
        "caughtUp": not to_peek or lag == 0.0,
        "lag_seconds": round(lag, 3),
        "oldest_record_age_s": None if stats.oldest_age is None else round(stats.oldest_age, 3),
        "retention_warning": warning,
        "warnings": stats.warnings,
        "duration_s": round(time.monotonic() - started, 3),
    }


def _replay_shard(
    streams: Any,
    store: CheckpointStore,
    pk: str,
    sk: str,
    arn: str,
    shard: dict[str, Any],
    sequence: str | None,
    budget: _Budget,
    stats: _CatchUpStats,
    apply: Callable[[list[dict[str, Any]]], None],
    cp: dict[str, Any],
) -> tuple[str, str | None, int]:
    """Read one shard from its checkpoint until closed-and-drained, caught up (open shard, no records)
    or out of budget. Returns (state, last applied sequence, records applied in this call)."""
    sid = shard["ShardId"]
    closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
    iterator = _shard_iterator(streams, arn, sid, sequence, stats)
    applied = 0
    total = int(cp.get("records", 0))
    empty_polls = 0
    while True:
        if budget.exhausted():
            return "stopped", sequence, applied
        try:
            resp = streams.get_records(ShardIterator=iterator, Limit=budget.page())
        except Exception as err:
            if error_code(err) in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                iterator = _shard_iterator(streams, arn, sid, sequence, stats)
                continue
            raise
        records: list[dict[str, Any]] = resp.get("Records", [])
        if records:
            created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
            if created is not None:
                age = age_seconds(created)
                stats.oldest_age = age if stats.oldest_age is None else max(stats.oldest_age, age)
            apply(records)
            sequence = str(records[-1]["dynamodb"]["SequenceNumber"])
            applied += len(records)
            total += len(records)
            stats.records += len(records)
            if budget.records_left is not None:
                budget.records_left -= len(records)
        nxt = resp.get("NextShardIterator")
        if records or nxt is None:
            attrs: dict[str, Any] = {
                "shardId": sid,
                "streamArn": arn,
                "records": total,
                "finished": nxt is None,
            }
            if sequence:
                attrs["sequence"] = sequence
            store.put(pk, sk, attrs)
        if nxt is None:
            return "finished", sequence, applied
        if not records:
            empty_polls += 1
            if not closed or empty_polls >= CLOSED_SHARD_EMPTY_POLLS:
                return "caught-up", sequence, applied
        else:
            empty_polls = 0
        iterator = nxt


def _peek_age(streams: Any, arn: str, shard_id: str, sequence: str | None, stats: _CatchUpStats) -> float | None:
    """Age of the first record after the checkpoint (the oldest one not applied), or None if none."""
    iterator = _shard_iterator(streams, arn, shard_id, sequence, stats)
    records = streams.get_records(ShardIterator=iterator, Limit=1).get("Records", [])
    if not records:
        return None
    created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
    return age_seconds(created) if created is not None else None


def sync_table(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    checkpoint_table: str,
    parallel_segments: int = 2,
    writers: int = SETTINGS.ddb_writers,
    page_size: int | None = None,
) -> dict[str, Any]:
    """The whole table move in one call (tests, benchmark): stream, plan, every segment, catch-up.
    The Prefect flow maps segments to tasks itself instead."""
    started = time.monotonic()
    stream = ensure_source_stream.fn(backend, cfg, source_table, checkpoint_table=checkpoint_table)
    total = plan_segments.fn(backend, cfg, source_table, checkpoint_table=checkpoint_table)

    def one(segment: int) -> dict[str, Any]:
        return backfill_segment.fn(
            backend,
            cfg,
            source_table,
            target_table,
            segment,
            total,
            checkpoint_table,
            writers=writers,
            page_size=page_size,
        )

    with ThreadPoolExecutor(max(1, min(parallel_segments, total)), thread_name_prefix="ddb-seg") as pool:
        segments = list(pool.map(one, range(total)))
    backfill_s = round(time.monotonic() - started, 3)
    caught = catch_up(backend, cfg, source_table, target_table, checkpoint_table, writers=writers)
    keys = ("scanned", "written", "pages", "retries", "throttles", "bytes")
    return {
        "table": source_table,
        "target": target_table,
        "stream": stream,
        "totalSegments": total,
        "segments": segments,
        "backfill": {k: sum(int(s[k]) for s in segments) for k in keys} | {"duration_s": backfill_s},
        "catchUp": caught,
        "duration_s": round(time.monotonic() - started, 3),
    }
