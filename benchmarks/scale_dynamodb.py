"""The DynamoDB half of the scale benchmark: plan a big table, copy a subset, project to a 10 TB table.

    .venv/bin/python benchmarks/scale_dynamodb.py --items 2000000      # or through benchmarks/bench_scale.py

A moto server runs in this benchmark's own process (ThreadedMotoServer on 127.0.0.1) and the source table is
seeded through moto's backend directly (Table.put_item, no HTTP: HTTP puts run at ~3,000 items/s here). Then,
through HTTP as in a migration:
- plan_segments (the persisted plan) and segment_groups: the segments planned and the task runs for the table;
- one group's backfill (backfill_segments, the flow's task) in a CHILD process, so its client CPU is measured
  apart from the server's: items/s and client CPU per item, with the requests it made;
- a projection to a 10 TB table from those per-request costs and AWS's published limits, assumptions printed.

moto gives TableSizeBytes 0 and spreads items over at most 256 segment hashes; the plan below is therefore by
item count, and the projection applies the byte rule itself.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.model import MigrationConfig, parse_config  # noqa: E402
from config.settings import SETTINGS  # noqa: E402
from tasks.aws import Backend  # noqa: E402
from tasks.move.checkpoints import ensure_checkpoint_table  # noqa: E402
from tasks.move.dynamodb import plan_segments  # noqa: E402
from tasks.move.dynamodb_plan import (  # noqa: E402
    BYTES_PER_SEGMENT,
    item_size,
    plan_total_segments,
    segment_groups,
)
from tasks.names import resource_names  # noqa: E402

SRC_REGION, DST_REGION = "us-east-1", "eu-west-1"
TABLE = "scale-events"
ACCOUNT = "123456789012"  # moto's default account
TB = 1024**4

# AWS's published limits the projection uses (DynamoDB developer guide: partitions; service quotas).
PARTITION_BYTES = 10 * 1024**3  # a partition holds up to 10 GB
PARTITION_RCU, PARTITION_WCU = 3000, 1000  # per partition, per second
TABLE_QUOTA_RCU = TABLE_QUOTA_WCU = 40_000  # default per-table quota (on-demand and provisioned), per second
SCAN_PAGE_BYTES = 1024**2  # a Scan page reads at most 1 MB
EVENTUAL_RCU_BYTES = 8 * 1024  # an eventually consistent read unit reads 8 KB
WCU_BYTES = 1024


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cfg() -> MigrationConfig:
    return parse_config(
        {
            "sourceRegion": SRC_REGION,
            "targetRegion": DST_REGION,
            "migrationBatch": "scale",
            "timestamp": "20261201",
            "environmentSuffix": "bench",
            "s3Buckets": [],
            "dynamodbTables": [{"name": TABLE}],
        }
    )


def _item(i: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"evt#{i:010d}"},
        "ts": {"N": str(1_764_547_200 + i)},
        "kind": {"S": ("click", "view", "buy")[i % 3]},
        "payload": {"S": f"{i:08x}" * 8},
    }


def _seed(count: int) -> float:
    """Seed the source through moto's backend (no HTTP); returns seconds."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[ACCOUNT][SRC_REGION].get_table(TABLE)
    started = time.monotonic()
    for i in range(count):
        table.put_item(_item(i))
    # The seeded table is millions of long-lived objects in the server's heap: without this every full
    # garbage collection walks them all, and the server (this process) serves requests several times slower.
    gc.freeze()
    return time.monotonic() - started


_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from benchmarks.scale_dynamodb import _cfg
from tasks.aws import Backend
from tasks.move.dynamodb import backfill_segments
backend = Backend(kind="emulator", endpoint_url={url!r})
calls = {{}}
def count(event_name, **_):
    op = event_name.split(".")[-1]
    calls[op] = calls.get(op, 0) + 1
for region in ({src!r}, {dst!r}):
    backend.client("dynamodb", region).meta.events.register("before-call.dynamodb", count)
from tasks.move.dynamodb_scan import scan_client
scan_client(backend, {src!r}).meta.events.register("before-call.dynamodb", count)
t0 = time.monotonic()
out = backfill_segments.fn(backend, _cfg(), {table!r}, {target!r}, {group!r}, {total!r}, {ckpt!r})
out["wall_s"] = time.monotonic() - t0
out["calls"] = calls
print(json.dumps(out))
"""


def _copy_subset(url: str, cfg: MigrationConfig, group: dict[str, int], total: int) -> dict[str, Any]:
    """One group's backfill in a child process; its client CPU from the child's rusage."""
    names = resource_names(cfg)
    code = _CHILD.format(
        root=str(ROOT), url=url, src=SRC_REGION, dst=DST_REGION, table=TABLE,
        target=names.tables[TABLE], group=group, total=total, ckpt=names.checkpoint_table,
    )  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"subset backfill failed: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def project(item_bytes: float, cpu_per_item_s: float, table_bytes: int = 10 * TB) -> dict[str, Any]:
    """A 10 TB table's backfill from per-item costs and AWS limits (every number derived, none measured on AWS)."""
    items = int(table_bytes / item_bytes)
    segments = plan_total_segments(items, table_bytes, busy=SETTINGS.ddb_backfill_tasks)
    partitions = math.ceil(table_bytes / PARTITION_BYTES)
    write_units = items * max(1, math.ceil(item_bytes / WCU_BYTES))
    read_units = table_bytes / EVENTUAL_RCU_BYTES
    # What bounds the rate: the table's default quota, below what its partitions could serve.
    rcu = min(TABLE_QUOTA_RCU, partitions * PARTITION_RCU)
    wcu = min(TABLE_QUOTA_WCU, partitions * PARTITION_WCU)
    read_s, write_s = read_units / rcu, write_units / wcu
    wall_s = max(read_s, write_s)
    items_per_s = items / wall_s
    return {
        "tableBytes": table_bytes,
        "items": items,
        "segments": segments,
        "taskRuns": len(segment_groups(segments, SETTINGS.ddb_backfill_tasks)),
        "partitions": partitions,
        "scanRequests": math.ceil(table_bytes / SCAN_PAGE_BYTES),
        "batchWriteRequests": math.ceil(items / 25),
        "checkpointWrites": math.ceil(table_bytes / SCAN_PAGE_BYTES),  # one per page
        "readUnits": read_units,
        "writeUnits": write_units,
        "readHours": read_s / 3600,
        "writeHours": write_s / 3600,
        "wallHours": wall_s / 3600,
        "boundBy": "writes (target table quota)" if write_s >= read_s else "reads (source table quota)",
        "itemsPerSecond": items_per_s,
        "clientCores": items_per_s * cpu_per_item_s,  # cores busy to keep up with that rate
        "clientCpuHours": items * cpu_per_item_s / 3600,
    }


def measure(count: int) -> dict[str, Any]:
    """Seed `count` items through moto's backend, plan the table, copy one group of segments, project to 10 TB."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # it logs every request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        cfg = _cfg()
        backend = Backend(kind="emulator", endpoint_url=url)
        names = resource_names(cfg)
        schema: dict[str, Any] = {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        }
        # Provisioned far above what one process can read, so the subset's speed is the client's and the
        # server's, not our pacing (the pacing is unit-tested with a fake clock).
        backend.client("dynamodb", SRC_REGION).create_table(
            TableName=TABLE,
            ProvisionedThroughput={"ReadCapacityUnits": 1_000_000, "WriteCapacityUnits": 1000},
            **schema,
        )
        backend.client("dynamodb", DST_REGION).create_table(
            TableName=names.tables[TABLE], BillingMode="PAY_PER_REQUEST", **schema
        )
        ensure_checkpoint_table.fn(backend, DST_REGION, names.checkpoint_table, cfg.tags(), None)
        seed_s = _seed(count)
        t0 = time.monotonic()
        total = plan_segments.fn(backend, cfg, TABLE, names.checkpoint_table)
        plan_s = time.monotonic() - t0
        groups = segment_groups(total, SETTINGS.ddb_backfill_tasks)
        subset = _copy_subset(url, cfg, groups[0], total)
    finally:
        server.stop()
    copied = int(subset["written"]) or 1
    item_bytes = sum(item_size(_item(i)) for i in range(1000)) / 1000
    cpu_per_item = float(subset["client_cpu_s"]) / copied
    return {
        "items": count,
        "seedSeconds": round(seed_s, 1),
        "planSeconds": round(plan_s, 2),
        "segments": total,
        "taskRuns": len(groups),
        "maxTaskRuns": SETTINGS.ddb_backfill_tasks,
        "subset": {
            "group": groups[0],
            "copied": int(subset["written"]),
            "pages": int(subset["pages"]),
            "wallSeconds": round(float(subset["wall_s"]), 2),
            "itemsPerSecond": round(copied / float(subset["wall_s"]), 1),
            "clientCpuSeconds": round(float(subset["client_cpu_s"]), 2),
            "clientCpuPerItemMs": round(1000 * cpu_per_item, 4),
            "calls": subset["calls"],
        },
        "itemBytes": round(item_bytes, 1),
        "projection": project(item_bytes, cpu_per_item),
        "projection1KB": project(1024, cpu_per_item),  # the same table of 1 KB items (one write unit each)
    }


def report(result: dict[str, Any]) -> str:
    """The benchmark's lines: measured first, then the projection with its assumptions beside it."""
    s = result["subset"]
    lines = [
        f"DynamoDB: {result['items']:,} items seeded through moto's backend in {result['seedSeconds']} s "
        f"(moto server in this process; ~{result['itemBytes']} B per item)",
        f"  plan: {result['segments']:,} segments in {result['planSeconds']} s, {result['taskRuns']} task runs for the "
        f"table (at most REGION_MIGRATION_DDB_BACKFILL_TASKS={result['maxTaskRuns']})",
        f"  subset: group {s['group']['first']}..{s['group']['stop'] - 1} copied {s['copied']:,} items in "
        f"{s['wallSeconds']} s = {s['itemsPerSecond']:,} items/s; client CPU {s['clientCpuSeconds']} s = "
        f"{s['clientCpuPerItemMs']} ms per item (child process); requests {s['calls']}",
    ]
    for key in ("projection", "projection1KB"):
        if key in result:
            lines.extend(_projection_lines(result[key]))
    lines.append(
        "    assumptions: the table quota of 40,000 RCU and 40,000 WCU per second (AWS's default per table, "
        "raisable), below the partitions' 3,000 RCU / 1,000 WCU each; the whole budget given to the migration "
        "(sourceReadShare and the target's capacity lower it); the client CPU per item measured here on moto."
    )
    return "\n".join(lines)


def _projection_lines(p: dict[str, Any]) -> list[str]:
    return [
        f"  projection to a {p['tableBytes'] / TB:.0f} TB table of {p['items']:.3g} items "
        f"({p['tableBytes'] / p['items']:.0f} B each):",
        f"    {p['segments']:,} segments (one per 2 GB = {BYTES_PER_SEGMENT / 1024**3:.0f} GiB or 2M items), "
        f"{p['taskRuns']} task runs, {p['partitions']:,} partitions (10 GB each)",
        f"    {p['scanRequests']:.3g} Scan pages (1 MB), {p['batchWriteRequests']:.3g} BatchWriteItem calls, "
        f"{p['checkpointWrites']:.3g} checkpoint puts; {p['readUnits']:.3g} read units (eventual, 8 KB), "
        f"{p['writeUnits']:.3g} write units (1 KB)",
        f"    reads {p['readHours']:.1f} h, writes {p['writeHours']:.1f} h: {p['wallHours']:.1f} h, bound by "
        f"{p['boundBy']}, {p['itemsPerSecond']:,.0f} items/s",
        f"    client: {p['clientCores']:.1f} cores busy at that rate, {p['clientCpuHours']:,.0f} CPU hours in all",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2_000_000, help="items to seed (the issue asks >= 2,000,000)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = measure(args.items)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
