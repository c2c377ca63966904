"""DynamoDB validation as bounded partitioned tasks: a shuffle in two stages, through shared storage.

Stage 1, `scan_side`: one task per side (source | target) and group of scan segments reads its items (strongly
consistent, paced to its share of the table's read budget), reduces them to (key_string, digest) rows, routes
each row to hash bucket b of P by a stable hash of its key, and writes the rows as parquet objects to the
staging bucket (target region, SSE-KMS under the migration key, reachable from every task runner's machine: a
local path is not, across Dask workers) under `validation/{run_id}/{table}/{side}/b={b}/`. A bucket's buffer is
written when it reaches a row bound, so a task's memory is bounded whatever the table's size.
Stage 2, `compare_bucket`: one task per bucket reads its objects of both sides (a key's rows are always in the
same bucket), compares them, writes its mismatches to the checkpoint table where it found them (the format
S3 validation uses) and deletes its objects. Only counts come back to the flow (add_table_counts); the flow reads
the mismatches back once per table for the CSV (collect_table).
"""

from __future__ import annotations

import io
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb_plan import (
    BYTES_PER_SEGMENT,
    ReadPacer,
    plan_total_segments,
    segment_groups,
    table_read_rate,
)
from tasks.move.dynamodb_scan import scan_client, segmented_scan_problem, spec_for
from tasks.move.keys import table_validation_pk
from tasks.names import resource_names, staging_bucket
from tasks.provision.s3 import delete_versions
from tasks.steps import step
from tasks.validate.compare import compare_frames, hash_strings
from tasks.validate.dynamodb_rows import (
    DETAIL_LIMIT,
    ROW_SCHEMA,
    digest_rows,
    fill_detail,
    rows_frame,
    segment_pages,
    ttl_attribute,
)
from tasks.validate.s3_partition import read_mismatch_chunks, write_mismatch_chunks

PREFIX = "validation"
SIDES = ("source", "target")
SCANNERS = 16  # segments of one table scanned at once, over all its groups (validate_table's threads before)
MAX_GROUPS = 16  # scan tasks per side
MAX_BUCKETS = 256  # compare tasks per table
ITEMS_PER_GROUP = 1_000_000  # a group (task run) per 1M items or per 2 GB, whichever asks for more
ROWS_PER_BUCKET = 500_000  # what one compare task holds per side
BYTES_PER_BUCKET = 512 * 1024**2  # the same, counted in bytes: 500k items of ~1 KB
TASK_BUFFER_ROWS = 1_000_000  # rows a scan task buffers over all its buckets before writing them
MIN_OBJECT_ROWS = 1_000  # below this an object is not worth its PUT
COUNTS_SK = "counts#"


def plan_sizes(
    item_count: int,
    size_bytes: int,
    *,
    segments: int | None = None,
    groups: int | None = None,
    buckets: int | None = None,
) -> dict[str, int]:
    """Total scan segments N (as the backfill sizes them), G groups per side, P hash buckets, and the segments
    each group scans at once (so that G x workers <= SCANNERS): a small table is N = G = P = 1."""
    items, size = max(0, item_count), max(0, size_bytes)
    total = segments or plan_total_segments(items, size, busy=SCANNERS)
    g = groups or math.ceil(max(items / ITEMS_PER_GROUP, size / BYTES_PER_SEGMENT))
    g = max(1, min(MAX_GROUPS, total, g))
    p = buckets or max(1, min(MAX_BUCKETS, math.ceil(max(items / ROWS_PER_BUCKET, size / BYTES_PER_BUCKET))))
    return {
        "totalSegments": total,
        "groups": g,
        "buckets": p,
        "workers": max(1, min(math.ceil(total / g), SCANNERS // g)),
    }


@step("validate-table-plan", retries=2, run_name="validate-plan-{source_table}")
def plan_table(
    backend: Backend, cfg: MigrationConfig, source_table: str, target_table: str, **given: Any
) -> dict[str, Any]:
    """A table pair's validation plan (small, picklable: every task of the table gets it): key names, TTL
    attribute, the one instant (`now`) expiry is judged at, segments, groups and buckets (plan_sizes, or as
    `given`), and `detail_limit`: how many "different" rows get their attribute-level detail. Sized by the
    larger table (ItemCount, TableSizeBytes: either can be 0 on an emulator, so the larger reading wins)."""
    now, detail_limit = given.pop("now", None), int(given.pop("detail_limit", DETAIL_LIMIT))
    descs = {
        side: backend.client("dynamodb", region).describe_table(TableName=table)["Table"]
        for side, region, table in (
            ("source", cfg.source_region, source_table),
            ("target", cfg.target_region, target_table),
        )
    }
    schema = sorted(descs["source"]["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    items = max(int(d.get("ItemCount") or 0) for d in descs.values())
    size = max(int(d.get("TableSizeBytes") or 0) for d in descs.values())
    sizes = plan_sizes(items, size, **given)
    limits: dict[str, str] = {}
    for region, table in ((cfg.source_region, source_table), (cfg.target_region, target_table)):
        problem = segmented_scan_problem(backend, region, table, sizes["totalSegments"])
        if problem:  # the backend cannot scan this table in segments: one segment, both sides
            limits["segmentedScan"] = problem
            sizes.update(totalSegments=1, groups=1, workers=1)
    return {
        "source": source_table,
        "target": target_table,
        "keyAttributes": [k["AttributeName"] for k in schema],
        "ttlAttribute": ttl_attribute(backend, cfg.source_region, source_table),
        "now": time.time() if now is None else now,
        "totalSegments": sizes["totalSegments"],
        "workers": sizes["workers"],
        "buckets": sizes["buckets"],
        "groups": [{"index": i, **g} for i, g in enumerate(segment_groups(sizes["totalSegments"], sizes["groups"]))],
        "notSupportedByBackend": limits,
        "detailLimit": detail_limit,
    }


def bucket_prefix(run_id: str, table: str, side: str, bucket: int) -> str:
    """Where one side's rows of one hash bucket live in the staging bucket."""
    return f"{PREFIX}/{run_id}/{table}/{side}/b={bucket:05d}/"


class _BucketWriter:
    """Rows routed to P hash buckets, each buffered until it holds `bound` rows and then written as one parquet
    object (SSE-KMS under the migration key): at most about TASK_BUFFER_ROWS rows in memory. Thread-safe."""

    def __init__(
        self, s3: Any, cfg: MigrationConfig, plan: dict[str, Any], side: str, group: int, run_id: str, kms: str
    ):
        self.s3, self.bucket, self.kms = s3, staging_bucket(cfg), kms
        self.prefixes = [bucket_prefix(run_id, plan["source"], side, b) for b in range(plan["buckets"])]
        self.name = f"g={group:05d}-{uuid.uuid4().hex[:8]}"  # this attempt's objects; a retry writes its own
        self.bound = max(MIN_OBJECT_ROWS, TASK_BUFFER_ROWS // len(self.prefixes))
        self.rows = [0] * len(self.prefixes)
        self.objects = 0
        self._buffers: dict[int, list[pa.Table]] = {}
        self._held = [0] * len(self.prefixes)
        self._parts = [0] * len(self.prefixes)
        self._lock = threading.Lock()

    def add(self, keys: list[str], digests: list[int]) -> None:
        if not keys:
            return
        key_arr = pa.array(keys, type=pa.large_string())
        table = pa.Table.from_arrays([key_arr, pa.array(digests, type=pa.uint64())], schema=ROW_SCHEMA)
        route = hash_strings(key_arr)[0] % np.uint64(len(self.prefixes))  # stable across processes, unlike hash()
        full: list[tuple[int, int, list[pa.Table]]] = []
        with self._lock:
            for b in np.unique(route).tolist():
                part = table.take(pa.array(np.flatnonzero(route == b))) if len(self.prefixes) > 1 else table
                self._buffers.setdefault(b, []).append(part)
                self._held[b] += part.num_rows
                if self._held[b] >= self.bound:
                    full.append(self._take(b))
        for taken in full:
            self._put(*taken)

    def close(self) -> None:
        """Write every bucket's remaining rows."""
        with self._lock:
            full = [self._take(b) for b in list(self._buffers)]
        for taken in full:
            self._put(*taken)

    def _take(self, b: int) -> tuple[int, int, list[pa.Table]]:
        part, self._parts[b], self._held[b] = self._parts[b], self._parts[b] + 1, 0
        return b, part, self._buffers.pop(b)

    def _put(self, b: int, part: int, tables: list[pa.Table]) -> None:
        body = io.BytesIO()
        table = pa.concat_tables(tables)
        pq.write_table(table, body)
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{self.prefixes[b]}{self.name}-{part:05d}.parquet",
            Body=body.getvalue(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.kms,
            BucketKeyEnabled=True,
        )
        with self._lock:
            self.rows[b] += table.num_rows
            self.objects += 1


def _side(cfg: MigrationConfig, plan: dict[str, Any], side: str) -> tuple[str, str]:
    return (cfg.source_region, plan["source"]) if side == "source" else (cfg.target_region, plan["target"])


@step("validate-table-scan", retries=2, run_name="validate-{side}-{plan[source]}-{group[index]}")
def scan_side(
    backend: Backend,
    cfg: MigrationConfig,
    plan: dict[str, Any],
    side: str,
    group: dict[str, int],
    run_id: str,
    kms_key_arn: str,
) -> dict[str, Any]:
    """Scan one side's segments [first, stop) of the plan's N into the staging bucket's hash buckets; return
    counts only: items kept, expired skipped, rows written per bucket, this attempt's object name prefix
    (`name`: the compare reads that attempt's objects only, so a retried scan never counts twice) and reads."""
    region, table = _side(cfg, plan, side)
    ddb = scan_client(backend, region)
    spec = spec_for(cfg, table)
    rate, rate_from = table_read_rate(
        ddb.describe_table(TableName=table)["Table"], spec.source_read_share, spec.on_demand_read_rate
    )
    segments = list(range(group["first"], group["stop"]))
    workers = max(1, min(plan["workers"], len(segments)))
    scanners = len(plan["groups"]) * plan["workers"]  # segments of this table that may scan at once
    pacers = [ReadPacer(rate / scanners) for _ in range(workers)]  # one static share per scanner
    writer = _BucketWriter(
        backend.client("s3", cfg.target_region), cfg, plan, side, group["index"], run_id, kms_key_arn
    )

    def scan(w: int) -> tuple[int, int]:
        kept = expired = 0
        for seg in segments[w::workers]:
            for items in segment_pages(ddb, region, table, seg, plan["totalSegments"], pacers[w]):
                keys, digests, gone = digest_rows(items, plan["keyAttributes"], plan["ttlAttribute"], plan["now"])
                writer.add(keys, digests)
                kept, expired = kept + len(keys), expired + gone
        return kept, expired

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(scan, range(workers)))
    writer.close()
    return {
        "side": side,
        "group": group["index"],
        "name": writer.name,
        "kept": sum(r[0] for r in results),
        "expired": sum(r[1] for r in results),
        "rows": writer.rows,
        "objects": writer.objects,
        "readRate": round(rate, 3),
        "readRateFrom": f"{rate_from} / {scanners} segment(s)",
        "consumedReadUnits": round(sum(p.consumed for p in pacers), 1),
        "pacedSeconds": round(max(p.waited for p in pacers), 3),
    }


def expected_rows(scans: list[dict[str, Any]]) -> dict[str, Any]:
    """What each compare task must find: per side, the object name of each group's attempt and the rows per
    bucket those attempts wrote (the compare checks it read exactly these)."""
    out: dict[str, Any] = {}
    for side in SIDES:
        mine = [s for s in scans if s["side"] == side]
        rows = np.sum([s["rows"] for s in mine], axis=0).tolist() if mine else []
        out[side] = {"names": sorted(s["name"] for s in mine), "rows": rows}
    return out


def _read_side(s3: Any, bucket: str, prefix: str, names: list[str], want: int) -> pd.DataFrame:
    """The rows of the chosen attempts' objects under `prefix`; a count other than `want` raises (retried)."""
    tables: list[pa.Table] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"][len(prefix) :].rsplit("-", 1)[0] in names:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                tables.append(pq.read_table(io.BytesIO(body), schema=ROW_SCHEMA))
    table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
    if table.num_rows != want:
        raise RuntimeError(f"s3://{bucket}/{prefix}: {table.num_rows} rows read, the scans wrote {want}")
    return rows_frame(table)


@step("validate-table-bucket", retries=2, run_name="validate-{plan[source]}-b{bucket}")
def compare_bucket(
    backend: Backend, cfg: MigrationConfig, plan: dict[str, Any], bucket: int, run_id: str, expect: dict[str, Any]
) -> dict[str, Any]:
    """Compare hash bucket `bucket` of both sides; its mismatches go to the checkpoint table under
    (table_validation_pk(target, run_id), b=...), its counts beside them (so a retry after the objects were
    deleted returns them instead of comparing nothing), then its objects are deleted. Returns counts only."""
    store = CheckpointStore(backend, cfg.target_region, resource_names(cfg).checkpoint_table)
    s3, staging = backend.client("s3", cfg.target_region), staging_bucket(cfg)
    pk, sk = table_validation_pk(plan["target"], run_id), f"b={bucket:05d}"
    counts = store.get(pk, COUNTS_SK + sk)
    if counts is None:
        src, dst = (
            _read_side(s3, staging, bucket_prefix(run_id, plan["source"], side, bucket), expect[side]["names"],
                       int(expect[side]["rows"][bucket]) if expect[side]["rows"] else 0)
            for side in SIDES
        )  # fmt: skip
        mismatches = compare_frames(src, dst, "key", ["digest"])
        limit = math.ceil(plan["detailLimit"] / plan["buckets"])  # the table's detail limit, over its buckets
        fill_detail(backend, cfg, plan["source"], plan["target"], mismatches, limit)
        write_mismatch_chunks(store, pk, sk, mismatches)
        kinds = mismatches["kind"].value_counts()
        counts = {
            "bucket": bucket,
            "sourceRows": len(src),
            "targetRows": len(dst),
            "missing": int(kinds.get("missing_in_target", 0)),
            "extra": int(kinds.get("extra_in_target", 0)),
            "different": int(kinds.get("different", 0)),
        }
        store.put(pk, COUNTS_SK + sk, counts)
    for side in SIDES:
        delete_versions(s3, staging, bucket_prefix(run_id, plan["source"], side, bucket))
    return {k: v for k, v in counts.items() if k != "updatedAt"}


@step("collect-table-mismatches", retries=2, run_name="collect-mismatches-{plan[source]}")
def collect_table(backend: Backend, cfg: MigrationConfig, plan: dict[str, Any], run_id: str) -> pd.DataFrame:
    """Every mismatch the table's buckets wrote, one frame [key, kind, detail] sorted by key; then the run's
    records and anything left under its staging prefix (a failed or repeated scan's objects) are removed."""
    store = CheckpointStore(backend, cfg.target_region, resource_names(cfg).checkpoint_table)
    pk = table_validation_pk(plan["target"], run_id)
    frame = read_mismatch_chunks(store, pk, exclude=COUNTS_SK)
    store.delete_pk(pk)
    s3 = backend.client("s3", cfg.target_region)
    delete_versions(s3, staging_bucket(cfg), f"{PREFIX}/{run_id}/{plan['source']}/")
    return frame


def add_table_counts(
    plan: dict[str, Any], scans: list[dict[str, Any]], compares: list[dict[str, Any]]
) -> dict[str, Any]:
    """One table's validation row (the keys the report reads) from its tasks' counts; a task that failed for
    good makes the row's `error`."""
    ok = [s for s in scans if not s.get("error")]
    reads = {}
    for side in SIDES:
        mine = [s for s in ok if s["side"] == side]
        if mine:
            reads[side] = {
                "readRate": mine[0]["readRate"],
                "readRateFrom": mine[0]["readRateFrom"],
                "consumedReadUnits": round(sum(float(s["consumedReadUnits"]) for s in mine), 1),
                "pacedSeconds": max(float(s["pacedSeconds"]) for s in mine),
            }
    out: dict[str, Any] = {
        "source": plan["source"],
        "target": plan["target"],
        "keyAttributes": plan["keyAttributes"],
        "ttlAttribute": plan["ttlAttribute"],
        "partitions": plan["buckets"],
        "groups": len(plan["groups"]),
        "sourceItems": sum(int(s["kept"]) for s in ok if s["side"] == "source"),
        "targetItems": sum(int(s["kept"]) for s in ok if s["side"] == "target"),
        "expiredSkipped": sum(int(s["expired"]) for s in ok if s["side"] == "source"),
        "expiredSkippedTarget": sum(int(s["expired"]) for s in ok if s["side"] == "target"),
        **{k: sum(int(c.get(k, 0) or 0) for c in compares) for k in ("missing", "extra", "different")},
        "segments": plan["totalSegments"],
        "taskRuns": len(scans) + len(compares),
        "reads": reads,
        "notSupportedByBackend": plan["notSupportedByBackend"],
    }
    errors = [str(t["error"]) for t in [*scans, *compares] if t.get("error")]
    if errors:
        out["error"] = f"{len(errors)} of {len(scans) + len(compares)} validation tasks failed: {errors[0]}"
    elif len(compares) != plan["buckets"]:
        out["error"] = f"{len(compares)} of {plan['buckets']} hash buckets compared"
    return out
