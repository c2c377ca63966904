"""What every DynamoDB validation task shares: a table's key names and TTL attribute, one scan segment's pages
(strongly consistent, paced to the read budget) reduced to (key_string, digest) rows, and the attribute-level
account of a "different" item (batch_get_item on both sides, only for the rows found different).

Items whose TTL has passed are left out on both sides, because DynamoDB deletes expired items only eventually
(typically within days) and either side may still hold them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from config.model import MigrationConfig
from tasks.aws import Backend, error_code
from tasks.move.dynamodb_plan import ReadPacer, consumed_units, item_size, scan_request
from tasks.move.dynamodb_scan import call_scan
from tasks.move.dynamodb_write import GET_BATCH_SIZE, get_batch
from tasks.validate.compare import STRING
from tasks.validate.digest import (
    attribute_diff,
    attribute_type,
    digest_int,
    is_expired,
    item_digest,
    key_string,
    parse_key_string,
)

DETAIL_LIMIT = 10_000  # "different" rows whose attribute-level detail is fetched
ROW_SCHEMA = pa.schema([("key", pa.large_string()), ("digest", pa.uint64())])
_UNSUPPORTED = {"UnknownOperationException", "NotImplemented", "NotImplementedException", "InvalidAction"}


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


def digest_rows(
    items: list[dict[str, Any]], key_names: list[str], ttl_attr: str | None, now: float
) -> tuple[list[str], list[int], int]:
    """(key strings, content digests, expired count) of one page's items; expired items are only counted."""
    keys: list[str] = []
    digests: list[int] = []
    expired = 0
    for item in items:
        if is_expired(item, ttl_attr, now):
            expired += 1
            continue
        keys.append(key_string(item, key_names))
        digests.append(digest_int(item_digest(item)))
    return keys, digests, expired


def segment_pages(
    ddb: Any, region: str, table: str, segment: int, total_segments: int, pacer: ReadPacer
) -> Iterator[list[dict[str, Any]]]:
    """The items of one scan segment, page by page: consistent reads (they cost twice what the backfill's do,
    and are counted so), each page paid to `pacer` with the capacity it consumed."""
    start: dict[str, Any] | None = None
    while True:
        request = scan_request(table, segment, total_segments, consistent=True, start_key=start)
        page = call_scan(ddb, request, (region, table, f"validate {segment}/{total_segments}"))
        items = page.get("Items", [])
        size = int(page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("content-length") or 0)
        pacer.spend(consumed_units(page, size or sum(item_size(it) for it in items), consistent=True))
        yield items
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def rows_frame(table: pa.Table) -> pd.DataFrame:
    """(key, digest) rows as the frame compare_frames takes: [key (string[pyarrow]), digest (uint64)]."""
    return pd.DataFrame(
        {"key": pd.array(table.column("key"), dtype=STRING), "digest": table.column("digest").to_numpy()}
    )


def batch_get(backend: Backend, region: str, table: str, keys: list[str]) -> dict[str, dict[str, Any]]:
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


def fill_detail(
    backend: Backend, cfg: MigrationConfig, source_table: str, target_table: str, mismatches: pd.DataFrame, limit: int
) -> None:
    """Name what differs (attributes, type changes) for the first `limit` "different" rows, in place; the rest
    say the detail was limited."""
    different = mismatches.index[mismatches["kind"] == "different"]
    if not len(different):
        return
    detail = mismatches["detail"].astype(object)
    wanted = mismatches.loc[different[:limit], "key"].astype(str).tolist()
    src_items = batch_get(backend, cfg.source_region, source_table, wanted)
    dst_items = batch_get(backend, cfg.target_region, target_table, wanted)
    for idx, key in zip(different[:limit], wanted, strict=True):
        detail[idx] = describe_difference(src_items.get(key), dst_items.get(key))
    for idx in different[limit:]:
        detail[idx] = f"content digest differs (detail limited to the first {limit} per partition)"
    mismatches["detail"] = pd.array(detail.to_numpy(), dtype=STRING)
