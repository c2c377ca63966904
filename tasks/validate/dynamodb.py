"""DynamoDB validation: every item of the source table against the target, type-exact and TTL-aware.

Both tables are read with a parallel, strongly consistent scan, paced to each table's read budget, and reduced
to (key_string, digest) rows.
Memory stays bounded for any table size: rows are routed by a hash of the key into P partitions (spilled
to parquet when P > 1), and partitions are compared one at a time, so a partition's source and target rows
are always together. Items whose TTL has passed are left out on both sides, because DynamoDB deletes expired
items only eventually (typically within days) and either side may still hold them. Which attributes differ
is fetched (batch_get_item) only for the rows found different.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from config.model import MigrationConfig
from tasks.aws import Backend, error_code
from tasks.move.dynamodb_plan import ReadPacer, consumed_units, item_size, scan_request, table_read_rate
from tasks.move.dynamodb_scan import call_scan, scan_client, segmented_scan_problem, spec_for
from tasks.move.dynamodb_write import GET_BATCH_SIZE, get_batch
from tasks.steps import step
from tasks.validate.compare import STRING, compare_frames, empty_mismatches, hash_strings
from tasks.validate.digest import (
    attribute_diff,
    attribute_type,
    digest_int,
    is_expired,
    item_digest,
    key_string,
    parse_key_string,
)

ROWS_PER_PARTITION = 500_000
FLUSH_ROWS = 50_000  # rows a scan worker buffers before routing them to partitions
DETAIL_LIMIT = 10_000  # "different" rows whose attribute-level detail is fetched
_UNSUPPORTED = {"UnknownOperationException", "NotImplemented", "NotImplementedException", "InvalidAction"}
_SCHEMA = pa.schema([("key", pa.large_string()), ("digest", pa.uint64())])


def table_keys(backend: Backend, region: str, table: str) -> tuple[list[str], int]:
    """(key attribute names, hash first; approximate item count) from describe_table."""
    desc = backend.client("dynamodb", region).describe_table(TableName=table)["Table"]
    schema = sorted(desc["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return [k["AttributeName"] for k in schema], int(desc.get("ItemCount") or 0)


def ttl_attribute(backend: Backend, region: str, table: str) -> str | None:
    """The table's TTL attribute when TTL is enabled (or being enabled), else None."""
    try:
        desc = backend.client("dynamodb", region).describe_time_to_live(TableName=table)
    except Exception as err:
        if error_code(err) not in _UNSUPPORTED:
            raise
        return None  # a backend without the TTL API: nothing is treated as expired
    ttl = desc.get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return str(ttl.get("AttributeName") or "") or None
    return None


class _Spool:
    """(key, digest) rows by partition: in memory for one partition, parquet files under a directory
    otherwise. Thread-safe: scan workers add concurrently."""

    def __init__(self, partitions: int, directory: Path | None) -> None:
        self.partitions = partitions
        self.directory = directory
        self._lock = threading.Lock()
        self._memory: dict[tuple[str, int], list[pa.Table]] = {}

    def add(self, side: str, keys: list[str], digests: list[int]) -> None:
        if not keys:
            return
        key_arr = pa.array(keys, type=pa.large_string())
        table = pa.Table.from_arrays([key_arr, pa.array(digests, type=pa.uint64())], schema=_SCHEMA)
        if self.partitions == 1:
            parts: Iterator[tuple[int, pa.Table]] = iter([(0, table)])
        else:
            route = hash_strings(key_arr)[0] % np.uint64(self.partitions)
            parts = ((p, table.take(pa.array(np.flatnonzero(route == p)))) for p in range(self.partitions))
        for p, part in parts:
            if not part.num_rows:
                continue
            if self.directory is None:
                with self._lock:
                    self._memory.setdefault((side, p), []).append(part)
            else:
                folder = self.directory / side / f"p{p:05d}"
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, folder / f"{uuid.uuid4().hex}.parquet")

    def frame(self, side: str, p: int) -> pd.DataFrame:
        """One side of one partition as [key (string[pyarrow]), digest (uint64)]."""
        if self.directory is None:
            tables = self._memory.pop((side, p), [])
        else:
            folder = self.directory / side / f"p{p:05d}"
            tables = [pq.read_table(f, schema=_SCHEMA) for f in sorted(folder.glob("*.parquet"))]
        table = pa.concat_tables(tables) if tables else _SCHEMA.empty_table()
        return pd.DataFrame(
            {
                "key": pd.array(table.column("key"), dtype=STRING),
                "digest": table.column("digest").to_numpy(),
            }
        )


def _scan(
    backend: Backend,
    cfg: MigrationConfig,
    region: str,
    table: str,
    key_names: list[str],
    ttl_attr: str | None,
    now: float,
    segments: int,
    spool: _Spool,
    side: str,
) -> tuple[int, int, dict[str, Any]]:
    """Parallel consistent scan into the spool, paced to the table's read budget (consistent reads cost
    twice what the backfill's do, and are counted so); returns (items kept, expired skipped, read stats)."""
    ddb = scan_client(backend, region)
    spec = spec_for(cfg, table)
    desc = ddb.describe_table(TableName=table)["Table"]
    rate, rate_from = table_read_rate(desc, spec.source_read_share, spec.on_demand_read_rate)
    pacers = [ReadPacer(rate / segments) for _ in range(segments)]  # one static share per worker

    def segment(seg: int) -> tuple[int, int]:
        kept = expired = 0
        keys: list[str] = []
        digests: list[int] = []
        start: dict[str, Any] | None = None
        while True:
            request = scan_request(table, seg, segments, consistent=True, start_key=start)
            page = call_scan(ddb, request, (region, table, f"validate {seg}/{segments}"))
            items = page.get("Items", [])
            size = int(page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-length") or 0)
            pacers[seg].spend(consumed_units(page, size or sum(item_size(it) for it in items), consistent=True))
            for item in items:
                if is_expired(item, ttl_attr, now):
                    expired += 1
                    continue
                keys.append(key_string(item, key_names))
                digests.append(digest_int(item_digest(item)))
                kept += 1
            if len(keys) >= FLUSH_ROWS:
                spool.add(side, keys, digests)
                keys, digests = [], []
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        spool.add(side, keys, digests)
        return kept, expired

    with ThreadPoolExecutor(max_workers=segments) as pool:
        results = list(pool.map(segment, range(segments)))
    stats = {
        "readRate": round(rate, 3),
        "readRateFrom": f"{rate_from} / {segments} segment(s)",
        "consumedReadUnits": round(sum(p.consumed for p in pacers), 1),
        "pacedSeconds": round(max(p.waited for p in pacers), 3),
    }
    return sum(r[0] for r in results), sum(r[1] for r in results), stats


def _batch_get(backend: Backend, region: str, table: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """Items by key_string for `keys` (consistent reads, 100 per request, unprocessed keys retried with backoff)."""
    ddb = backend.client("dynamodb", region)
    out: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    for i in range(0, len(keys), GET_BATCH_SIZE):
        chunk = [parse_key_string(k) for k in keys[i : i + GET_BATCH_SIZE]]
        names = list(chunk[0]) if chunk else names
        for item in get_batch(ddb, table, chunk):
            out[key_string(item, names)] = item
    return out


def describe_difference(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """A one-line account of how two versions of an item differ, naming attributes and type changes."""
    if a is None or b is None:
        return "item changed during validation (re-run to confirm)"
    parts: list[str] = []
    for path in attribute_diff(a, b):
        top = path.split(".", 1)[0]
        if path == top and top in a and top in b and attribute_type(a[top]) != attribute_type(b[top]):
            parts.append(f"{path} (type {attribute_type(a[top])} -> {attribute_type(b[top])})")
        elif path == top and top not in b:
            parts.append(f"{path} (only in source)")
        elif path == top and top not in a:
            parts.append(f"{path} (only in target)")
        else:
            parts.append(path)
    return "attributes: " + "; ".join(parts) if parts else "item changed during validation (re-run to confirm)"


@step("validate-table", retries=2, run_name="validate-{source_table}")
def validate_table(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    partitions: int | None = None,
    spill_dir: Path | None = None,
    *,
    segments: int | None = None,
    detail_limit: int = DETAIL_LIMIT,
    now: float | None = None,
) -> dict[str, Any]:
    """Counts plus `mismatches` (a DataFrame [key, kind, detail]: every missing, extra or different item).

    `partitions` defaults to one per ~500k items (from ItemCount); with more than one, rows are spilled to
    parquet under `spill_dir` (a temporary directory when None) and removed afterwards. Expired items are
    counted (expiredSkipped, expiredSkippedTarget) but not compared. Keys in the output are key_string()s,
    which parse_key_string() turns back into a get_item Key.
    """
    now = time.time() if now is None else now
    key_names, count_src = table_keys(backend, cfg.source_region, source_table)
    _, count_dst = table_keys(backend, cfg.target_region, target_table)
    ttl_attr = ttl_attribute(backend, cfg.source_region, source_table)
    biggest = max(count_src, count_dst, 1)
    parts = partitions or max(1, math.ceil(biggest / ROWS_PER_PARTITION))
    workers = segments or max(1, min(16, math.ceil(biggest / 25_000)))

    directory: Path | None = None  # ours to remove afterwards; None keeps the rows in memory
    if spill_dir is not None:
        directory = Path(spill_dir) / f"{source_table}-{uuid.uuid4().hex[:8]}"
        directory.mkdir(parents=True)
    elif parts > 1:
        directory = Path(tempfile.mkdtemp(prefix=f"validate-{source_table}-"))
    limits: dict[str, str] = {}
    for region, table in ((cfg.source_region, source_table), (cfg.target_region, target_table)):
        problem = segmented_scan_problem(backend, region, table, workers)
        if problem:  # the backend cannot scan this table in segments: one segment for both sides
            limits["segmentedScan"], workers = problem, 1
    try:
        spool = _Spool(parts, directory)
        kept_src, expired_src, read_src = _scan(
            backend, cfg, cfg.source_region, source_table, key_names, ttl_attr, now, workers, spool, "source"
        )
        kept_dst, expired_dst, read_dst = _scan(
            backend, cfg, cfg.target_region, target_table, key_names, ttl_attr, now, workers, spool, "target"
        )
        frames = []
        for p in range(parts):
            result = compare_frames(spool.frame("source", p), spool.frame("target", p), "key", ["digest"])
            if not result.empty:
                frames.append(result)
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    mismatches = (
        pd.concat(frames, ignore_index=True).sort_values(["key", "kind"], kind="stable", ignore_index=True)
        if frames
        else empty_mismatches("key")
    )
    different = mismatches.index[mismatches["kind"] == "different"]
    if len(different):
        detail = mismatches["detail"].astype(object)
        wanted = mismatches.loc[different[:detail_limit], "key"].astype(str).tolist()
        src_items = _batch_get(backend, cfg.source_region, source_table, wanted)
        dst_items = _batch_get(backend, cfg.target_region, target_table, wanted)
        for idx, key in zip(different[:detail_limit], wanted, strict=True):
            detail[idx] = describe_difference(src_items.get(key), dst_items.get(key))
        for idx in different[detail_limit:]:
            detail[idx] = f"content digest differs (detail limited to the first {detail_limit})"
        mismatches["detail"] = pd.array(detail.to_numpy(), dtype=STRING)

    kinds = mismatches["kind"].value_counts()
    return {
        "source": source_table,
        "target": target_table,
        "keyAttributes": key_names,
        "ttlAttribute": ttl_attr,
        "partitions": parts,
        "sourceItems": kept_src,
        "targetItems": kept_dst,
        "expiredSkipped": expired_src,
        "expiredSkippedTarget": expired_dst,
        "missing": int(kinds.get("missing_in_target", 0)),
        "extra": int(kinds.get("extra_in_target", 0)),
        "different": int(kinds.get("different", 0)),
        "segments": workers,
        "reads": {"source": read_src, "target": read_dst},
        "notSupportedByBackend": limits,
        "mismatches": mismatches,
    }
