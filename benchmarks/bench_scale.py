"""Scale benchmark: planning (and, section by section, the rest) at hundreds of thousands of objects.

    .venv/bin/python benchmarks/bench_scale.py [--objects 500000] [--small 100000] [--only s3] [--layout dated]

A moto server runs in THIS process (moto's ThreadedMotoServer on 127.0.0.1) and is seeded through moto's
backend directly: PutObject over HTTP runs at ~190/s on this emulator, which would take 45 minutes for
500,000 objects. Everything measured goes over HTTP through boto3, as in a run.

Two emulator costs are not AWS's and are named in the output:
- moto answers every ListObjectsV2 by sorting the whole bucket (O(n log n) per call: 1.5 s a page at
  50,000 keys, ~15 s at 500,000). The benchmark swaps in an indexed equivalent for calls without a
  Delimiter (checked against moto's own answers first), so a 500,000-key bucket lists in minutes.
- The server is one Python process (one core): concurrent LIST calls do not run side by side there, so
  the wall times below are the emulator's; the comparison that carries over to AWS is in rounds (LIST
  calls on the critical path) and calls, projected with AWS's published limits.

Sections (`--only NAME`, default all): SECTIONS = {"s3": ...}; another section is one function taking
(args, ctx) and yielding the lines to print as they are measured.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account, which the emulator's keys map to
AWS_LIST_LATENCY_S = 0.08  # ~80 ms per ListObjectsV2 page of 1,000 keys (issue 10's figure; assumption)
AWS_GET_PER_PREFIX = 5500  # S3: at least 5,500 GET/HEAD requests per second per partitioned prefix
AWS_PUT_PER_PREFIX = 3500  # S3: at least 3,500 PUT/COPY/POST/DELETE requests per second per partitioned prefix
AWS_LIST_PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys per call
LIST_PRICE_PER_1000 = 0.005  # us-east-1 LIST (PUT-class) price, USD per 1,000 requests (AWS S3 pricing page)
TARGET = 10**9


# ---------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keys(layout: str, n: int, tag: str) -> Any:
    """Keys of a bucket: 'dated' (events/dt=.../hour=.../part-N.json, an analytics layout) or 'flat' (hex ids)."""
    if layout == "flat":
        for i in range(n):
            yield f"{(i * 2654435761) % (1 << 40):010x}-{tag}-{i}"
        return
    for i in range(n):
        day, hour = 1 + i % 30, (i // 30) % 24
        yield f"events/dt=2026-11-{day:02d}/hour={hour:02d}/part-{i:07d}.json"


def _indexed_listing() -> Callable[[], None]:
    """Replace moto's S3 ListObjectsV2 (a full sort per call) by a bisect over a sorted name list, for calls
    without a Delimiter; returns the function that puts moto's own back. Same keys, order and tokens."""
    from moto.s3.models import FakeDeleteMarker, S3Backend

    original = S3Backend.list_objects_v2
    cache: dict[int, tuple[int, list[str]]] = {}

    def names(bucket: Any) -> list[str]:
        got = cache.get(id(bucket))
        if got is None or got[0] != len(bucket.keys):
            got = (len(bucket.keys), sorted(bucket.keys.keys()))
            cache[id(bucket)] = got
        return got[1]

    def indexed(
        self: Any,
        bucket: Any,
        prefix: str | None,
        delimiter: str | None,
        continuation_token: str | None,
        start_after: str | None,
        max_keys: int,
    ) -> Any:
        if delimiter:
            return original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        keys = names(bucket)
        after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
        i = bisect.bisect_right(keys, after) if after else 0
        if prefix:
            i = max(i, bisect.bisect_left(keys, prefix))
        out: list[Any] = []
        while i < len(keys) and len(out) <= max_keys and keys[i].startswith(prefix or ""):
            key = bucket.keys[keys[i]]
            if not isinstance(key, FakeDeleteMarker):
                out.append(key)
            i += 1
        return self._truncate_result(out, max_keys)

    S3Backend.list_objects_v2 = indexed  # type: ignore[method-assign]

    def restore() -> None:
        S3Backend.list_objects_v2 = original  # type: ignore[method-assign]

    return restore


class Context:
    """The in-process server, its URL and a client; buckets seeded through moto's backend."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it logs every request otherwise
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.restore_listing: Callable[[], None] = lambda: None

    def client(self) -> Any:
        """An S3 client on the server, with enough connections for the listing threads."""
        import boto3
        import botocore.config

        from tasks.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY

        return boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,
            config=botocore.config.Config(max_pool_connections=32, retries={"mode": "standard"}),
        )

    def seed(self, bucket: str, keys: Any) -> tuple[int, float]:
        """Create the bucket over HTTP, put its objects through moto's backend: (objects, seconds)."""
        from moto.s3.models import s3_backends

        self.client().create_bucket(Bucket=bucket)
        store = s3_backends[ACCOUNT]["global"]
        t0, n = time.monotonic(), 0
        for key in keys:
            store.put_object(bucket, key, b"x" * 16)
            n += 1
        return n, time.monotonic() - t0

    def stop(self) -> None:
        self.restore_listing()
        self.server.stop()


# ---------------------------------------------------------------------------------------------- S3


def _count_lists(client: Any) -> list[int]:
    calls = [0]

    def hook(**_: Any) -> None:
        calls[0] += 1

    client.meta.events.register("before-call.s3.ListObjectsV2", hook)
    return calls


def sequential_listing(ctx: Context, bucket: str) -> dict[str, Any]:
    """What planning did before: one paginator over the whole bucket, page after page."""
    s3 = ctx.client()
    calls = _count_lists(s3)
    t0, n = time.monotonic(), 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        n += len(page.get("Contents", []))
    return {"objects": n, "wall_s": time.monotonic() - t0, "list_calls": calls[0], "rounds": calls[0]}


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM): unlike ru_maxrss it starts afresh at exec, so the parent's size
    (the server and its seeded buckets, inherited through fork) does not count."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_plan(url: str, bucket: str) -> None:
    """In a fresh process: plan_partitions as the flow calls it; prints wall, calls, rounds, peak RSS (JSON)."""
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    from tasks.aws import Backend
    from tasks.move.s3 import plan_partitions

    stats: dict[str, Any] = {}

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.args, tuple) and len(record.args) == 7:
                keys = ("bucket", "objects", "partitions", "size", "list_calls", "pieces", "rounds")
                stats.update(zip(keys, record.args, strict=True))

    logging.getLogger("tasks.move.s3").addHandler(Grab())
    logging.getLogger("tasks.move.s3").setLevel(logging.INFO)
    backend = Backend(kind="emulator", endpoint_url=url)
    s3 = backend.client("s3", REGION)
    calls = _count_lists(s3)
    rss0 = _peak_rss_mib()
    t0 = time.monotonic()
    ranges = plan_partitions.fn(backend, REGION, bucket)
    wall = time.monotonic() - t0
    stats.update(
        wall_s=wall,
        hooked_list_calls=calls[0],
        ranges=len(ranges),
        covered=sum(r["keys"] for r in ranges),
        rss_before_mib=rss0,
        rss_peak_mib=_peak_rss_mib(),
    )
    print(json.dumps(stats))


def parallel_plan(ctx: Context, bucket: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-plan", ctx.url, bucket],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _check_listing(ctx: Context, bucket: str) -> str:
    """Moto's own ListObjectsV2 and the indexed one answer the same (a few calls of each kind)."""
    s3 = ctx.client()
    probes = [
        {},
        {"StartAfter": "events/dt=2026-11-05/"},
        {"Prefix": "events/dt=2026-11-07/hour=03/", "StartAfter": "events/dt=2026-11-07/hour=03/part-0"},
        {"StartAfter": "7"},
    ]
    answers = []
    for restore in (False, True):
        if restore:
            ctx.restore_listing = _indexed_listing()
        got = []
        for kw in probes:
            resp = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000, **kw)
            got.append(([o["Key"] for o in resp.get("Contents", [])], resp["IsTruncated"]))
        answers.append(got)
    same = answers[0] == answers[1]
    if not same:
        raise SystemExit("the indexed listing differs from moto's own: not benchmarking on it")
    return f"indexed ListObjectsV2 checked against moto's own on {len(probes)} calls: same keys, same truncation"


def section_s3(args: argparse.Namespace, ctx: Context) -> Iterator[str]:
    from config.settings import SETTINGS
    from tasks.move.s3_listing import LIST_WORKERS
    from tasks.move.s3_plan import MAX_PARTITIONS, partition_size

    sizes = sorted({args.small, args.objects})
    seeded: dict[int, str] = {}
    for n in sizes:
        name = f"scale-{args.layout}-{n}"
        count, secs = ctx.seed(name, _keys(args.layout, n, str(n)))
        seeded[n] = name
        yield f"seeded {name}: {count:,} objects through moto's backend in {secs:.0f} s ({count / secs:,.0f}/s)"
    yield _check_listing(ctx, seeded[sizes[0]])
    rows = []
    for n in sizes:
        seq = sequential_listing(ctx, seeded[n])
        par = parallel_plan(ctx, seeded[n])
        assert seq["objects"] == par["covered"] == n, (seq, par)
        rows.append((n, seq, par))
        yield f"measured {n:,}: sequential {json.dumps(seq)}; parallel {json.dumps(par)}"
    workers = SETTINGS.migrate_task_workers
    yield from [
        "",
        f"{'objects':>9} | {'sequential: calls':>17} {'wall s':>7} | {'parallel: calls':>15} {'rounds':>6} "
        f"{'wall s':>7} {'pieces':>6} | {'partitions':>10} {'keys each':>9} | {'RSS before':>10} {'RSS peak':>8}",
    ]
    for n, seq, par in rows:
        yield (
            f"{n:>9,} | {seq['list_calls']:>17,} {seq['wall_s']:>7.1f} | {par['hooked_list_calls']:>15,} "
            f"{par['rounds']:>6} {par['wall_s']:>7.1f} {par['pieces']:>6} | {par['ranges']:>10,} {par['size']:>9,} | "
            f"{par['rss_before_mib']:>7.0f} MiB {par['rss_peak_mib']:>4.0f} MiB"
        )
    n, seq, par = rows[-1]
    growth = rows[-1][2]["rss_peak_mib"] - rows[0][2]["rss_peak_mib"] if len(rows) > 1 else 0.0
    yield from [
        "",
        f"RSS of the planning process: {growth:+.0f} MiB from {rows[0][0]:,} to {n:,} objects "
        "(boundary keys only: at most 4 x 10^4 kept, whatever the count)",
        f"wall times are the one-core emulator's (LIST calls queue there); the critical path on AWS is the rounds: "
        f"{par['rounds']} rounds of up to {LIST_WORKERS} calls in flight against {seq['rounds']:,} calls in a row",
    ]
    # Projection to 10^9 objects, from the measured call counts and AWS's published limits.
    overhead = par["hooked_list_calls"] - seq["list_calls"]  # grows with the pieces, not with the objects
    seq_calls = -(-TARGET // AWS_LIST_PAGE)
    par_calls = seq_calls + max(overhead, 0)
    size = partition_size(TARGET, workers)
    par_wall = par_calls * AWS_LIST_LATENCY_S / LIST_WORKERS
    yield from [
        "",
        f"Projection to {TARGET:,} objects (assumptions beside each figure):",
        f"  sequential listing: {seq_calls:,} LIST calls x {AWS_LIST_LATENCY_S * 1000:.0f} ms (assumed AWS latency "
        f"per page of {AWS_LIST_PAGE:,} keys) = {seq_calls * AWS_LIST_LATENCY_S / 3600:.1f} h before the first copy",
        f"  parallel listing: ~{par_calls:,} calls (the {overhead:+,} measured here are per piece, not per object), "
        f"{LIST_WORKERS} in flight = {par_wall / 3600:.1f} h, {LIST_WORKERS / AWS_LIST_LATENCY_S:.0f} LIST/s "
        f"(S3 serves >= {AWS_GET_PER_PREFIX:,} GET-class requests/s per prefix: far from throttling); "
        f"more listing threads divide it further",
        f"  cost of the listing: {par_calls / 1000 * LIST_PRICE_PER_1000:,.2f} USD at {LIST_PRICE_PER_1000} USD "
        "per 1,000 LIST (us-east-1 list price, check the S3 pricing page)",
        f"  partitions: {-(-TARGET // size):,} task runs of {size:,} keys ({workers} task workers; at most "
        f"{MAX_PARTITIONS:,} whatever the count); a killed partition re-does at most one manifest batch (25 "
        "copies) plus the copies in flight, and re-lists its own range",
        f"  copy floor: {TARGET / AWS_PUT_PER_PREFIX / 3600:,.0f} h at {AWS_PUT_PER_PREFIX:,} COPY/s for one "
        f"prefix; S3 scales per prefix, so P busy prefixes divide it by P",
    ]


def section_dynamodb(args: argparse.Namespace, ctx: Context) -> Iterator[str]:
    """The DynamoDB half (benchmarks/scale_dynamodb.py): its own in-process moto server, seeded through the backend."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import scale_dynamodb

    yield from scale_dynamodb.report(scale_dynamodb.measure(args.items)).splitlines()


SECTIONS: dict[str, Callable[[argparse.Namespace, Context], Iterator[str]]] = {
    "s3": section_s3,
    "dynamodb": section_dynamodb,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=500_000, help="objects in the big bucket (default 500,000)")
    parser.add_argument("--small", type=int, default=100_000, help="objects in the small bucket (default 100,000)")
    parser.add_argument("--layout", choices=("dated", "flat"), default="dated", help="key layout of the buckets")
    parser.add_argument("--items", type=int, default=2_000_000, help="items in the big table (default 2,000,000)")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--child-plan", nargs=2, metavar=("URL", "BUCKET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_plan:
        child_plan(*args.child_plan)
        return 0
    ctx = Context()
    try:
        print(
            f"bench_scale {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores), "
            f"moto {importlib.metadata.version('moto')}, boto3 {importlib.metadata.version('boto3')}; moto server "
            f"in this process at {ctx.url}, seeded through moto's backend (HTTP PutObject runs at ~190/s here)"
        )
        for name in args.only or list(SECTIONS):
            print(f"\n== {name}")
            for line in SECTIONS[name](args, ctx):
                print(line, flush=True)
    finally:
        ctx.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
