"""What a migration will cost and how long it will take, per bucket and table, for the path tasks/paths.py chooses
and the other path beside it. Pure: counts in, requests, dollars and seconds out; no AWS call, tested on fixed
inputs (tests/unit/test_estimate.py).

Each figure is a count of the requests this project's code (or AWS's server-side job) makes, priced from the
table in config/prices.py. Durations come from AWS's published limits and this project's pacing (the read budget
of tasks/move/dynamodb_plan.table_read_rate, the target's write capacity, the copy workers); where AWS publishes no
rate (Batch Operations, export, import) the rate is an assumption, and every assumption is printed beside the
figure it produced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from config.prices import PriceTable
from tasks.paths import (
    DDB_EXPORT_IMPORT,
    DDB_SCAN,
    S3_BATCH_REPLICATION,
    S3_CLIENT_COPY,
    PathChoice,
    s3_path,
    table_path,
)

GB = 1024**3
LIST_PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys per request
STREAM_PAGE = 1000  # GetRecords returns at most 1,000 records per call
SCAN_PAGE_BYTES = 1024**2  # a Scan page holds at most 1 MB: one checkpoint write per page
READ_EVENTUAL_BYTES = 8192  # an eventually consistent read unit reads 8 KB (the backfill's scan)
READ_STRONG_BYTES = 4096  # a strongly consistent read unit reads 4 KB (validation's scans)
WRITE_UNIT_BYTES = 1024  # a write unit writes 1 KB of one item
BUCKET_KEY_SHARE = 0.01  # S3 Bucket Keys cut SSE-KMS calls to KMS "by up to 99%" (S3 User Guide, Bucket Keys)
COPY_PER_PREFIX = 3500.0  # S3: at least 3,500 PUT/COPY/POST/DELETE per second per partitioned prefix
COPY_LATENCY_S = 0.05  # one small cross-region CopyObject, end to end (an assumption, not measured here)
COPY_STREAM_BPS = 20 * 1024**2  # bytes per second one copy in flight moves (an assumption)
BATCH_PREPARE_S = 900.0  # generating a Batch Replication manifest before the first object moves (assumed)
BATCH_OBJECTS_PER_S = 1000.0  # Batch Replication throughput: AWS publishes none (assumed)
# DynamoDB developer guide, initial throughput for on-demand: "Newly created tables with on-demand capacity mode can
# sustain up to 4,000 writes per second and 12,000 reads per second" (then instantly up to double the previous peak).
ON_DEMAND_WRITE_START = 4000.0
EXPORT_FIXED_S, EXPORT_BPS = 600.0, 100 * 1024**2  # export to S3: AWS publishes no rate (assumed)
IMPORT_FIXED_S, IMPORT_BPS = 600.0, 50 * 1024**2  # ImportTable: AWS publishes no rate (assumed)
CHANGED_SHARE = 0.01  # items written at the source during the migration, replayed from its stream (assumed)
HOURS_PER_MONTH = 730.0  # AWS bills a GB-month over 730 hours


def money(usd: float) -> str:
    """Dollars as the plan prints them: $1,234.56."""
    return f"${usd:,.2f}"


def duration(seconds: float) -> str:
    """Seconds for people: '45 s', '12 min', '3 h 05 min', '2 d 4 h'."""
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    if s < 2 * 86400:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m:02d} min"
    d, h = divmod(round(s / 3600), 24)
    return f"{d} d {h} h"


def _pages(count: int, page: int) -> int:
    return math.ceil(count / page) if count > 0 else 0


@dataclass(frozen=True)
class CopyWorkers:
    """How many copies are in flight at once: the flow's task slots x each partition task's copy pool."""

    tasks: int
    per_task: int

    @property
    def in_flight(self) -> int:
        return max(1, self.tasks * self.per_task)


class Bill:
    """Requests counted and priced line by line, with the assumptions that produced them."""

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices
        self.requests: dict[str, float] = {}
        self.lines: list[dict[str, Any]] = []
        self.assumptions: list[str] = []
        self.transfer_bytes = 0

    def add(self, what: str, quantity: float, key: str | None, note: str = "", whole: bool = True) -> None:
        """One priced line (key None: counted, not billed); requests (whole: rounded up) of one name add up."""
        q: float = math.ceil(quantity) if whole else round(quantity, 6)
        self.requests[what] = round(self.requests.get(what, 0) + q, 6)
        usd = self.prices.cost(key, q) if key else 0.0
        self.lines.append({"what": what, "quantity": q, "price": key, "usd": round(usd, 6), "note": note})

    def transfer(self, nbytes: int, what: str) -> None:
        self.transfer_bytes += nbytes
        gb = nbytes / GB
        usd = self.prices.cost("transferInterRegion", gb)
        self.lines.append({"what": what, "quantity": round(gb, 3), "price": "transferInterRegion", "usd": usd})

    def usd(self) -> float:
        return sum(float(line["usd"]) for line in self.lines)

    def result(self, path: str, seconds: float) -> dict[str, Any]:
        return {
            "path": path,
            "requests": dict(self.requests),
            "transferGB": round(self.transfer_bytes / GB, 3),
            "usd": round(self.usd(), 2),
            "cost": money(self.usd()),
            "seconds": round(seconds, 1),
            "duration": duration(seconds),
            "lines": self.lines,
            "assumptions": self.assumptions,
        }


def _s3_common(bill: Bill, objects: int, stream_objects: int, stream_bytes: int) -> None:
    """What every path of a bucket also pays: the catch-up's listings and HEADs, and full validation."""
    pages = _pages(objects, LIST_PAGE)
    bill.add("LIST", 3 * pages, "s3PutCopyList", "catch-up: source + target; and the backfill planning's listing")
    bill.add("LIST", 2 * pages, "s3PutCopyList", "validation: source + target listings")
    bill.add("GET/HEAD", 2 * objects, "s3GetHead", "validation: one HEAD per object on each side")
    if stream_objects:
        bill.add("GET/HEAD", stream_objects, "s3GetHead", "validation: source objects without a checksum, streamed")
        bill.transfer(stream_bytes, "validation: streamed source bytes, cross-region")


def s3_client_copy(
    prices: PriceTable, objects: int, nbytes: int, workers: CopyWorkers, stream: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """The project's own partitioned CopyObject backfill of a bucket's current versions."""
    bill = Bill(prices)
    bill.add("COPY/PUT", objects, "s3PutCopyList", "one CopyObject per object (a multipart copy: one per part)")
    bill.add("KMS", objects * BUCKET_KEY_SHARE, "kmsRequests", "SSE-KMS with a bucket key")
    bill.add("checkpoint WRU", objects, "ddbOnDemandWrite", "one manifest record per copied object")
    bill.transfer(nbytes, "backfill: object bytes copied cross-region")
    _s3_common(bill, objects, *stream)
    rate = min(COPY_PER_PREFIX, workers.in_flight / COPY_LATENCY_S)
    bandwidth = workers.in_flight * COPY_STREAM_BPS
    seconds = max(objects / rate, nbytes / bandwidth) if objects else 0.0
    bill.assumptions += [
        f"{workers.in_flight} copies in flight ({workers.tasks} task slots x {workers.per_task} per partition), "
        f"{COPY_LATENCY_S * 1000:g} ms per CopyObject: {rate:,.0f} objects/s, at most S3's "
        f"{COPY_PER_PREFIX:,.0f} COPY/s per prefix (one prefix assumed)",
        f"{COPY_STREAM_BPS // 1024**2} MB/s per copy in flight: {bandwidth / 1024**2:,.0f} MB/s",
        f"KMS: bucket keys cut requests by up to 99%: {BUCKET_KEY_SHARE:.0%} of objects assumed",
    ]
    return bill.result(S3_CLIENT_COPY, seconds)


def s3_batch_replication(
    prices: PriceTable, objects: int, nbytes: int, versions: int | None, stream: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """One S3 Batch Replication job whose generated manifest covers every eligible version (priced per version)."""
    bill = Bill(prices)
    n = versions if versions is not None else objects
    version_bytes = int(nbytes * n / objects) if objects else 0
    bill.add("Batch Operations jobs", 1, "s3BatchJob", "one Batch Replication job")
    bill.add("Batch Operations objects", n, "s3BatchObjects", "every eligible version in the generated manifest")
    bill.add("COPY/PUT", n, "s3PutCopyList", "one replication PUT per version at the destination")
    bill.add("KMS", n * BUCKET_KEY_SHARE, "kmsRequests", "SSE-KMS with a bucket key")
    bill.add("GET/HEAD", 2 * objects, "s3GetHead", "catch-up: one HEAD per replica on each side")
    bill.add("checkpoint WRU", 2, "ddbOnDemandWrite", "the job's id, and its end")
    bill.transfer(version_bytes, "replication: version bytes cross-region")
    _s3_common(bill, objects, *stream)
    seconds = BATCH_PREPARE_S + n / BATCH_OBJECTS_PER_S
    bill.assumptions += [
        f"{n:,} versions{'' if versions is not None else ' (versions not counted: one per object assumed)'}",
        f"manifest generation {duration(BATCH_PREPARE_S)}, then {BATCH_OBJECTS_PER_S:,.0f} objects/s "
        "(AWS publishes no Batch Replication rate)",
        "not counted: the second job, re-encrypting SSE-S3 replicas in place (UpdateObjectEncryption), "
        f"at most {money(prices.cost('s3BatchJob', 1) + prices.cost('s3BatchObjects', n))} plus KMS requests when "
        "every version is SSE-S3 (the plan does not know the source objects' encryption)",
    ]
    return bill.result(S3_BATCH_REPLICATION, seconds)


def estimate_bucket(
    prices: PriceTable,
    name: str,
    objects: int,
    nbytes: int,
    threshold: int | None,
    workers: CopyWorkers,
    *,
    versions: int | None = None,
    blocked: str | None = None,
    stream: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """A bucket's estimate on the path tasks.paths.s3_path chooses, with the other path's beside it."""
    choice = s3_path(objects, threshold, blocked)
    paths = {
        S3_CLIENT_COPY: s3_client_copy(prices, objects, nbytes, workers, stream),
        S3_BATCH_REPLICATION: s3_batch_replication(prices, objects, nbytes, versions, stream),
    }
    return _on_path(name, "s3 bucket", choice, paths, {"objects": objects, "bytes": nbytes})


@dataclass(frozen=True)
class TableSize:
    """What the estimate knows of a table before it moves: items, bytes, and where those numbers come from."""

    items: int
    bytes: int
    source: str = "DescribeTable"

    @property
    def item_bytes(self) -> float:
        return self.bytes / self.items if self.items else 0.0


@dataclass(frozen=True)
class TableRates:
    """The source's read budget and the target's write capacity (units per second), each with how it was decided:
    tasks/move/dynamodb_plan.table_read_rate and target_write_rate (None: on-demand, not paced)."""

    read: float
    read_why: str
    write: float | None
    write_why: str
    on_demand: bool


def _ddb_common(bill: Bill, size: TableSize, rates: TableRates) -> float:
    """What both paths pay: the stream replay of the writes made meanwhile, and full validation; its seconds."""
    changed = size.items * CHANGED_SHARE
    bill.add("stream reads", _pages(int(changed), STREAM_PAGE) + 1, "ddbStreamsRead", "GetRecords of the catch-up")
    units = 2 * size.bytes / READ_STRONG_BYTES
    bill.add(
        "validation RRU",
        units,
        "ddbOnDemandRead" if rates.on_demand else None,
        "both tables scanned strongly consistent" + ("" if rates.on_demand else " (within provisioned RCU)"),
    )
    bill.assumptions.append(f"{CHANGED_SHARE:.0%} of items written at the source meanwhile, replayed from the stream")
    return size.bytes / READ_STRONG_BYTES / rates.read


def _wru(size: TableSize) -> float:
    return size.items * max(1, math.ceil(size.item_bytes / WRITE_UNIT_BYTES))


def _rate(units: float) -> str:
    """A rate as people read it: 2.5, 1,000 (a small budget keeps its fraction)."""
    return f"{units:,.1f}".removesuffix(".0")


def ddb_scan(prices: PriceTable, size: TableSize, rates: TableRates) -> dict[str, Any]:
    """The project's parallel scan + BatchWriteItem backfill, paced by the read budget and the write capacity."""
    bill = Bill(prices)
    read_units = size.bytes / READ_EVENTUAL_BYTES
    wru = _wru(size)
    bill.add(
        "scan RRU",
        read_units,
        "ddbOnDemandRead" if rates.on_demand else None,
        "eventually consistent scan" + ("" if rates.on_demand else " (within provisioned RCU)"),
    )
    read_s = read_units / rates.read
    write_rate = rates.write or ON_DEMAND_WRITE_START
    write_s = wru / write_rate
    seconds = max(read_s, write_s)
    if rates.write is None:
        bill.add("BatchWriteItem WRU", wru, "ddbOnDemandWrite", "on-demand target")
    else:
        bill.add("BatchWriteItem WRU", wru, None, "within the target's provisioned WCU")
        bill.add(
            "target WCU-hours",
            rates.write * max(seconds, 3600) / 3600,
            "ddbProvisionedWcuHour",
            "the target's write capacity while the backfill runs (an hour at least)",
            whole=False,
        )
    write_why = (
        rates.write_why if rates.write else "on-demand target: a new on-demand table serves 4,000 WRU/s at first"
    )
    bill.add("checkpoint WRU", _pages(size.bytes, SCAN_PAGE_BYTES) + 1, "ddbOnDemandWrite", "one per scan page")
    bill.transfer(size.bytes, "backfill: items read in the source region, written in the target")
    validate_s = _ddb_common(bill, size, rates)
    bill.assumptions += [
        f"read budget {_rate(rates.read)} RCU/s ({rates.read_why}), 8 KB per unit: {duration(read_s)}",
        f"writes {_rate(write_rate)} WCU/s ({write_why}), {max(1, math.ceil(size.item_bytes / 1024))} unit(s) "
        f"per item: {duration(write_s)}",
        f"full validation at the same read budget: {duration(validate_s)} (not added: it runs after the move)",
        "keys spread over the partitions (one partition serves at most 1,000 WCU/s and 3,000 RCU/s)",
    ]
    return bill.result(DDB_SCAN, seconds)


def ddb_export_import(prices: PriceTable, size: TableSize, rates: TableRates) -> dict[str, Any]:
    """ExportTableToPointInTime (PITR on the source while it runs) + ImportTable: no read or write capacity."""
    bill = Bill(prices)
    gb = size.bytes / GB
    export_s = EXPORT_FIXED_S + size.bytes / EXPORT_BPS
    import_s = IMPORT_FIXED_S + size.bytes / IMPORT_BPS
    seconds = export_s + import_s
    bill.add("export GB", gb, "ddbExport", "full export of the table size", whole=False)
    bill.add("import GB", gb, "ddbImport", "uncompressed size of the exported data", whole=False)
    bill.add(
        "PITR GB-months",
        gb * seconds / 3600 / HOURS_PER_MONTH,
        "ddbPitr",
        "PITR on the source while it runs",
        whole=False,
    )
    bill.add("checkpoint WRU", 2, "ddbOnDemandWrite", "ExportArn and ImportArn recorded")
    bill.transfer(size.bytes, "import: the export read across regions")
    _ddb_common(bill, size, rates)
    bill.assumptions += [
        f"export {duration(EXPORT_FIXED_S)} + {EXPORT_BPS // 1024**2} MB/s, import {duration(IMPORT_FIXED_S)} + "
        f"{IMPORT_BPS // 1024**2} MB/s (AWS publishes no rate for either): {duration(seconds)}",
        "import consumes no write capacity and export no read capacity",
    ]
    return bill.result(DDB_EXPORT_IMPORT, seconds)


def estimate_table(
    prices: PriceTable, name: str, size: TableSize, rates: TableRates, threshold: int | None, blocked: str | None = None
) -> dict[str, Any]:
    """A table's estimate on the path tasks.paths.table_path chooses, with the other path's beside it."""
    choice = table_path(size.bytes, threshold, blocked)
    paths = {DDB_SCAN: ddb_scan(prices, size, rates), DDB_EXPORT_IMPORT: ddb_export_import(prices, size, rates)}
    counts = {"items": size.items, "bytes": size.bytes, "sizeFrom": size.source}
    return _on_path(name, "dynamodb table", choice, paths, counts)


def _on_path(
    name: str, kind: str, choice: PathChoice, paths: dict[str, dict[str, Any]], counts: dict[str, Any]
) -> dict[str, Any]:
    """The chosen path's estimate with the store's counts, and the other path's in brief beside it."""
    chosen = paths.pop(choice.path)
    other = next(iter(paths.values()))
    return {"store": name, "kind": kind, "why": choice.reason, **counts, **chosen, "alternative": _brief(other)}


def _brief(est: dict[str, Any]) -> dict[str, Any]:
    return {k: est[k] for k in ("path", "usd", "cost", "seconds", "duration", "requests", "transferGB")}


def total(stores: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The migration's total: costs add up; stores move side by side, so the duration is the longest store's."""
    rows = list(stores)
    usd = sum(float(s["usd"]) for s in rows)
    seconds = max((float(s["seconds"]) for s in rows), default=0.0)
    requests: dict[str, float] = {}
    for s in rows:
        for k, v in s["requests"].items():
            requests[k] = round(requests.get(k, 0) + float(v), 6)
    return {
        "usd": round(usd, 2),
        "cost": money(usd),
        "seconds": round(seconds, 1),
        "duration": duration(seconds),
        "transferGB": round(sum(float(s["transferGB"]) for s in rows), 3),
        "requests": requests,
        "assumptions": ["buckets and tables move side by side: the total duration is the longest store's"],
    }
