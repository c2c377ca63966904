"""DynamoDB data movement without global tables: source stream, parallel-scan backfill, stream catch-up.

Order matters and is the whole trick: the stream is enabled on the source *before* the backfill scans,
so every write made while (or after) the backfill runs is in the stream; replaying the stream afterwards
in per-key order (tasks.move.dynamodb_stream) converges the target to the source. Puts and deletes are
idempotent, so any page or record replayed after a crash lands on the same state. Every write goes through
tasks.move.dynamodb_write; the waits for a table or stream to be ready live in tasks.provision.dynamodb.

Items are raw AttributeValue dicts from the low-level client end to end (no TypeDeserializer round
trip), so 38-digit numbers, binary, sets, nested maps/lists and empty strings are copied exactly.
Progress lives in the checkpoint table in the target region (tasks.move.checkpoints).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend, is_not_found
from tasks.errors import PreflightError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb_plan import (
    IMAGE_VIEW_TYPES,
    STREAM_SK,
    ReadPacer,
    chunks,
    consumed_units,
    decode_item,
    encode_item,
    item_size,
    plan_total_segments,
    scan_request,
    segment_sk,
    table_pk,
    table_read_rate,
    target_write_rate,
    write_units,
)
from tasks.move.dynamodb_scan import call_scan, scan_client, segmented_scan_problem, spec_for
from tasks.move.dynamodb_write import WriteStats, write_batch
from tasks.move.keys import PLAN_SK
from tasks.names import resource_names
from tasks.provision.dynamodb import wait_active, wait_stream_enabled
from tasks.steps import step

VIEW_TYPE = "NEW_AND_OLD_IMAGES"
# Pages whose writes may be in flight at once. 1 = a kill re-does at most one page, and the next page is
# already scanned (prefetched) while the current one is written, so scanning still overlaps writing.
PAGE_WINDOW = 1


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _store(backend: Backend, cfg: MigrationConfig, checkpoint_table: str | None) -> CheckpointStore:
    return CheckpointStore(backend, cfg.target_region, checkpoint_table or resource_names(cfg).checkpoint_table)


def describe_source(ddb: Any, cfg: MigrationConfig, table: str) -> dict[str, Any]:
    try:
        return ddb.describe_table(TableName=table)["Table"]
    except Exception as err:
        if is_not_found(err):
            raise PreflightError(
                f"source table {table!r} does not exist in {cfg.source_region}; check dynamodbTables in the config"
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
    ddb = backend.client("dynamodb", cfg.source_region)
    streams = backend.client("dynamodbstreams", cfg.source_region)
    store = _store(backend, cfg, checkpoint_table)
    pk = table_pk(source_table)
    desc = describe_source(ddb, cfg, source_table)
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
            f"DynamoDB stream ({view}) enabled on source table {source_table} in {cfg.source_region} "
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
        problem = segmented_scan_problem(backend, cfg.source_region, source_table, total)
        if problem is None:
            store.put(pk, PLAN_SK, {**existing, "segmentedScan": "ok"})
            return total
        store.put(pk, PLAN_SK, {**existing, "totalSegments": 1, "plannedTotal": total, "segmentedScan": problem})
        return 1
    desc = describe_source(backend.client("dynamodb", cfg.source_region), cfg, source_table)
    items, size = int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0))
    total = plan_total_segments(items, size, busy=SETTINGS.ddb_backfill_tasks)
    attrs: dict[str, Any] = {
        "totalSegments": total,
        "itemCount": items,
        "tableSizeBytes": size,
        "plannedAt": _now_iso(),
    }
    problem = segmented_scan_problem(backend, cfg.source_region, source_table, total)
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
class _Pacers:
    """One scanner's static shares: of the source table's read budget, and of the target's write capacity."""

    read: ReadPacer
    read_from: str
    write: ReadPacer | None
    write_from: str

    @classmethod
    def share(cls, backend: Backend, cfg: MigrationConfig, source: str, target: str, scanners: int) -> _Pacers:
        """1/`scanners` of each budget: the most scanners that can run at once (they may be in any process)."""
        spec = spec_for(cfg, source)
        src = backend.client("dynamodb", cfg.source_region)
        read, read_from = table_read_rate(
            describe_source(src, cfg, source), spec.source_read_share, spec.on_demand_read_rate
        )
        dst = backend.client("dynamodb", cfg.target_region)
        write, write_from = target_write_rate(dst.describe_table(TableName=target)["Table"])
        return cls(
            ReadPacer(read / scanners),
            f"{read_from} / {scanners} scanner(s)",
            None if write is None else ReadPacer(write / scanners),
            write_from if write is None else f"{write_from} / {scanners} scanner(s)",
        )


@dataclass
class _Page:
    futures: list[Future[WriteStats]]
    last_key: dict[str, Any] | None
    scanned: int


@dataclass
class _SegmentProgress(WriteStats):
    scanned: int = 0
    pages: int = 0
    bytes: int = 0


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
    pacers: _Pacers | None = None,
) -> dict[str, Any]:
    """Copy one parallel-scan segment, resuming from its checkpoint; a finished segment is skipped.

    The next page is scanned while the current one is written by `writers` threads; a page's
    LastEvaluatedKey is checkpointed only once all of its items are written, so a kill re-does at most
    PAGE_WINDOW page(s) of idempotent puts. `page_size` caps items per scan page (default: DynamoDB's
    1 MB pages), trading a few more checkpoint writes for less re-done work after a kill. `pacers`: the
    read/write budget shares of the group this segment runs in (backfill_segments); alone, it gets 1/total.
    """
    if not 0 <= segment < total_segments:
        raise ValueError(f"segment {segment} is outside 0..{total_segments - 1}")
    src = scan_client(backend, cfg.source_region)
    dst = backend.client("dynamodb", cfg.target_region)
    store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
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
    started, began = time.monotonic(), time.time()
    progress = _SegmentProgress()
    paced = pacers or _Pacers.share(backend, cfg, source_table, target_table, total_segments)
    pacer = paced.read

    # Eventually consistent reads (half the cost): a write the scan reads stale was made after the stream was
    # on (it is replayed by the catch-up) or seconds before, while the stream was being enabled and waited for.
    call_key = (cfg.source_region, source_table, f"{segment}/{total_segments}")

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
            progress.add(fut.result())
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
            if paced.write is not None and items:
                paced.write.spend(write_units(items))  # the target's write share, paid before writing
            futures = [
                pool.submit(write_batch, dst, target_table, [{"PutRequest": {"Item": it}} for it in chunk])
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
        "span": [round(began, 3), round(time.time(), 3)],
        "resumedFrom": encode_item(start_key) if start_key else None,
        "done": True,
        "totalScanned": prev["scanned"] + progress.scanned,
        "totalWritten": prev["written"] + progress.written,
        "readRate": round(pacer.rate, 3),
        "readRateFrom": paced.read_from,
        "writeRateFrom": paced.write_from,
        "consumedReadUnits": round(pacer.consumed, 1),
        "pacedSeconds": round(pacer.waited, 3),
    }


_SUMMED = ("scanned", "written", "pages", "retries", "throttles", "bytes", "totalScanned", "totalWritten")


@step("ddb-backfill-group", retries=4, run_name="ddb-backfill-{source_table}-{group[first]}-{group[stop]}")
def backfill_segments(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    group: dict[str, int],
    total_segments: int,
    checkpoint_table: str,
    writers: int = SETTINGS.ddb_writers,
    page_size: int | None = None,
) -> dict[str, Any]:
    """Copy a group of segments (dynamodb_plan.segment_groups) one after the other, each from its own checkpoint.

    One task run for many segments keeps a table of 10^6 segments at a bounded number of task runs. One
    segment scans at a time, so the group's share of the budgets is 1/`group["of"]`, and a kill re-does at most
    one page of it; a retry skips the segments already done (their checkpoints say so).
    """
    first, stop, of = int(group["first"]), int(group["stop"]), int(group["of"])
    if not 0 <= first < stop <= total_segments:
        raise ValueError(f"segment group {first}..{stop - 1} is outside 0..{total_segments - 1}")
    started, began = time.monotonic(), time.time()
    pacers = _Pacers.share(backend, cfg, source_table, target_table, of)
    results = [
        backfill_segment.fn(
            backend, cfg, source_table, target_table, seg, total_segments, checkpoint_table,
            writers=writers, page_size=page_size, pacers=pacers,
        )
        for seg in range(first, stop)
    ]  # fmt: skip
    limits: dict[str, str] = {}
    for r in results:
        limits.update(r.get("notSupportedByBackend") or {})
    return {
        "table": source_table,
        "target": target_table,
        "segment": first,
        "segments": stop - first,
        "skippedSegments": sum(1 for r in results if r.get("skipped")),
        "totalSegments": total_segments,
        "notSupportedByBackend": limits,
        **{k: sum(int(r.get(k, 0) or 0) for r in results) for k in _SUMMED},
        "duration_s": round(time.monotonic() - started, 3),
        "span": [round(began, 3), round(time.time(), 3)],
        "done": True,
        "readRate": round(pacers.read.rate, 3),
        "readRateFrom": pacers.read_from,
        "writeRateFrom": pacers.write_from,
        "consumedReadUnits": round(pacers.read.consumed, 1),
        "pacedSeconds": round(pacers.read.waited + (pacers.write.waited if pacers.write else 0.0), 3),
    }
