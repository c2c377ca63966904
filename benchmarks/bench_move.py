"""Data-movement benchmark: our S3 and DynamoDB copies vs peers, against one local moto server.

    .venv/bin/python benchmarks/bench_move.py --objects 2000 --object-size 1024 --items 20000 --changes 2000 --repeats 3

The moto server runs as a SEPARATE process (`python -m tasks.emulator serve`, bound to 127.0.0.1), so the
clients timed here never share a GIL with it. Every repetition starts with POST /moto-api/reset and a
reseed, so repetitions are independent and identical (same source, empty source stream, fresh target
buckets/tables and a fresh checkpoint table); within a repetition nothing is reset, so every tool copies
the very same source on the very same server. Tool order is rotated between repetitions so no tool is
always first or last.

Steps timed (wall seconds, and the server process's CPU seconds from /proc/PID/stat over the step):
  s3-ours        what the flow maps: plan_partitions + copy_partition (backfill) per range, ranges in the flow's
                 thread pool, summed by summarize_copies, into a target provisioned by ensure_bucket
                 (versioned, default SSE-KMS with a target-region CMK), checkpoints via ensure_checkpoint_table
  s3-s5cmd       s5cmd --endpoint-url URL cp 's3://src/*' s3://dst/        (defaults, untuned)
  s3-s5cmd-kms   the same with --sse aws:kms --sse-kms-key-id <the migration key>: the encryption our copy asks for
  s3-awscli      aws s3 sync s3://src s3://dst --endpoint-url URL           (defaults, untuned)
  s3-boto3-16t   list + 16-thread plain boto3 copy_object loop (the server's ceiling)
  s3-ours-rerun  the same again on the already-copied target (must issue no CopyObject)
  s3-ours-2p     s3-ours with the partitions on 2 spawned worker processes instead of the flow's threads
  s3-flow        the migrate flow itself (benchmarks/bench_flow.py, its own process and Prefect home) on the same
                 server and source: the backfill duration the flow reports; then s3-flow-rerun, the flow run again
  ddb-ours       plan_segments + backfill_segment over all segments, segments in a small thread pool
  ddb-naive      single-thread Table.scan + Table.batch_writer (boto3 resource API)
  ddb-raw-4t     4-thread raw batch_write_item of pre-generated items (the server's write ceiling)
  ddb-catchup    tasks.move.dynamodb_stream.catch_up of --changes source writes (puts/updates/deletes) made after
                 the backfill

Prints a table (medians over --repeats), the ratios the project targets with PASS/MISS, and the date,
machine and versions. The server is always stopped (try/finally, plus a watchdog at --max-minutes).
`--diagnose` instead measures the server's CPU per operation kind (DynamoDB scan vs write, S3 copy
arguments, manifest writes, listing pages), which explains the ratios on this emulator.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_flow  # noqa: E402
from config.model import MigrationConfig, parse_config  # noqa: E402
from config.settings import SETTINGS  # noqa: E402
from tasks.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY, Backend, clear_client_cache  # noqa: E402
from tasks.move.checkpoints import ensure_checkpoint_table  # noqa: E402
from tasks.move.dynamodb import backfill_segment, ensure_source_stream, plan_segments  # noqa: E402
from tasks.move.dynamodb_plan import encode_item  # noqa: E402
from tasks.move.dynamodb_stream import catch_up  # noqa: E402
from tasks.move.s3 import copy_partition, plan_partitions  # noqa: E402
from tasks.names import resource_names  # noqa: E402
from tasks.provision.dynamodb import ensure_table  # noqa: E402
from tasks.provision.kms import ensure_key  # noqa: E402
from tasks.provision.s3 import ensure_bucket  # noqa: E402
from tasks.report.build import summarize_copies  # noqa: E402

SRC_REGION = "us-east-1"
DST_REGION = "eu-west-1"
SRC_BUCKET = "bench-src"
SRC_TABLE = "bench-events"
# flows/migrate.py runs tasks on ThreadPoolTaskRunner(max_workers=SETTINGS.migrate_task_workers); the segments
# of one table are mapped onto that pool (the setting, not the flow, is imported: the flow imports Prefect).
FLOW_TASK_WORKERS = SETTINGS.migrate_task_workers
S3_COPY_WORKERS = SETTINGS.s3_copy_workers  # what the flows pass each S3 partition task (tasks/steps.py)
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
STEP_TIMEOUT_S = 900


# ---------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A moto server in its own process (own GIL), on loopback; CPU read from /proc/PID/stat."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tasks.emulator", "serve", "--port", str(self.port)],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches us, and our finally stops it
        )
        deadline = time.monotonic() + 60
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start; see {log_path}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def cpu(self) -> float:
        """utime + stime of the server process (all its threads), in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK  # fields 14 and 15 of proc(5)

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


# --------------------------------------------------------------------------------------------- helpers


@dataclass
class Sample:
    wall: float
    server_cpu: float
    client_cpu: float
    units: int
    requests: int | None = None
    note: str = ""


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    info: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, s: Sample) -> None:
        self.samples.setdefault(name, []).append(s)


class Calls:
    """Counts the API calls our own (cached) clients make, per operation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-call", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.counts[model.name] += 1

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)


def pid_cpu(pid: int) -> float:
    """utime + stime of a live process (all its threads), in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def _copy_in_worker(url: str, suffix: str, dst: str, part: dict[str, Any], kms_arn: str, ckpt: str) -> dict[str, Any]:
    """One partition's copy_partition in a worker process, as a Dask worker runs it: its own clients."""
    backend = Backend(kind="emulator", endpoint_url=url)
    cfg = make_cfg(suffix)
    return copy_partition.fn(backend, cfg, SRC_BUCKET, dst, part, kms_arn, ckpt, "backfill", S3_COPY_WORKERS)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(server: Server, fn: Callable[[], tuple[int, str]], calls: Calls | None = None) -> Sample:
    """Run fn (returning (units, note)); wall, server CPU, client CPU (ours + finished children)."""
    before = calls.snapshot() if calls else None
    c0, p0, k0, t0 = server.cpu(), time.process_time(), children_cpu(), time.perf_counter()
    units, note = fn()
    wall = time.perf_counter() - t0
    c1, p1, k1 = server.cpu(), time.process_time(), children_cpu()
    reqs = None
    if calls and before is not None:
        reqs = sum((calls.snapshot() - before).values())
    return Sample(wall, c1 - c0, (p1 - p0) + (k1 - k0), units, reqs, note)


def plain_client(service: str, region: str, url: str, pool: int = 32) -> Any:
    """A plain boto3 client, as a script would make one (default retries), pointed at the emulator."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=EMULATOR_ACCESS_KEY,
        aws_secret_access_key=EMULATOR_SECRET_KEY,
        config=botocore.config.Config(max_pool_connections=pool, s3={"addressing_style": "path"}),
    )


def make_cfg(suffix: str) -> MigrationConfig:
    return parse_config(
        {
            "sourceRegion": SRC_REGION,
            "targetRegion": DST_REGION,
            "migrationBatch": "bench",
            "timestamp": "20261128",
            "environmentSuffix": suffix,
            "s3Buckets": [{"name": SRC_BUCKET}],
            "dynamodbTables": [
                {
                    "name": SRC_TABLE,
                    "hashKey": "eventId",
                    "hashKeyType": "S",
                    "rangeKey": "timestamp",
                    "rangeKeyType": "N",
                    "readCapacity": 5,
                    "writeCapacity": 5,
                }
            ],
        },
        source="bench",
    )


def make_item(i: int, rng: random.Random) -> dict[str, Any]:
    """~250-byte item in the low-level format, several attribute types."""
    return {
        "eventId": {"S": f"evt-{i:07d}"},
        "timestamp": {"N": str(1_764_000_000 + i)},
        "userId": {"S": f"user-{i % 997:04d}"},
        "kind": {"S": ("click", "view", "purchase", "signup")[i % 4]},
        "amount": {"N": f"{i % 10000}.{i % 97 + 1:02d}"},
        "tags": {"SS": [f"t{i % 5}", f"t{i % 7 + 5}"]},
        "payload": {"B": rng.randbytes(64)},
        "active": {"BOOL": i % 2 == 0},
        "profile": {"M": {"city": {"S": ("Dublin", "Paris", "Berlin")[i % 3]}, "visits": {"N": str(i % 50)}}},
    }


def batch_write_all(ddb: Any, table: str, items: list[dict[str, Any]], threads: int) -> int:
    """batch_write_item of 25-item chunks in `threads` threads, re-sending unprocessed items."""

    def write(chunk: list[dict[str, Any]]) -> int:
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": it}} for it in chunk]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return len(chunk)

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))


def list_keys(s3: Any, bucket: str) -> list[str]:
    return [
        o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])
    ]


def scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        out.extend(page.get("Items", []))
    return out


def count_items(ddb: Any, table: str) -> int:
    return sum(int(p["Count"]) for p in ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))


def run_cmd(cmd: list[str], env: dict[str, str], watch: Watchdog) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch.child = proc
    try:
        out, err = proc.communicate(timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"{cmd[0]} timed out after {STEP_TIMEOUT_S} s") from None
    finally:
        watch.child = None
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {(err or out)[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Watchdog:
    """Bounds the whole run: at the deadline, stop the server (and any peer CLI) and exit."""

    def __init__(self, seconds: float) -> None:
        self.server: Server | None = None
        self.child: subprocess.Popen[str] | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        print("\nbench_move: --max-minutes reached; stopping the moto server and exiting", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            if self.child is not None:
                self.child.kill()
        with contextlib.suppress(Exception):
            if self.server is not None:
                self.server.stop()
        os._exit(3)

    def cancel(self) -> None:
        self._timer.cancel()


def version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


# ------------------------------------------------------------------------------------------- benchmark


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, watch: Watchdog, tmp: Path) -> None:
        self.args = args
        self.server = server
        self.watch = watch
        self.tmp = tmp
        self.url = server.url
        self.backend = Backend(kind="emulator", endpoint_url=server.url)
        self.cfg = make_cfg("ours")
        self.s3_src = plain_client("s3", SRC_REGION, self.url)
        self.s3_dst = plain_client("s3", DST_REGION, self.url, pool=32)
        self.ddb_src = plain_client("dynamodb", SRC_REGION, self.url)
        self.ddb_dst = plain_client("dynamodb", DST_REGION, self.url)
        rng = random.Random(42)
        self.bodies = [rng.randbytes(args.object_size) for _ in range(args.objects)]
        self.keys = [f"events/dt=2026-11-{1 + i % 28:02d}/part-{i:06d}.bin" for i in range(args.objects)]
        self.items = [make_item(i, rng) for i in range(args.items)]
        self.results = Results()
        self.flows: list[dict[str, Any]] = []
        self.calls = Calls()
        self.copy_calls = 0
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in ("HTTP_PROXY", "HTTPS_PROXY")
        }
        self.env.update(
            AWS_ACCESS_KEY_ID=EMULATOR_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=EMULATOR_SECRET_KEY,
            AWS_REGION=DST_REGION,
            AWS_DEFAULT_REGION=DST_REGION,
            # No user config can tune (or slow) the peers: they run with their defaults.
            AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
            NO_PROXY="127.0.0.1,localhost",
        )
        self.s5cmd = shutil.which("s5cmd", path=str(VENV_BIN)) or shutil.which("s5cmd") or "s5cmd"
        self.aws = shutil.which("aws", path=str(VENV_BIN)) or shutil.which("aws") or "aws"

    def _count_copy(self, **_: Any) -> None:
        self.copy_calls += 1

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # ---------------------------------------------------------------- per-repetition setup

    def setup(self) -> None:
        """Reset the server and build the same starting state: source data, CMK, checkpoint table, stream."""
        t0, c0 = time.perf_counter(), self.server.cpu()
        self.server.reset()
        clear_client_cache()  # clients are rebuilt lazily; re-hook them
        for service, region in (
            ("s3", SRC_REGION),
            ("s3", DST_REGION),
            ("dynamodb", SRC_REGION),
            ("dynamodb", DST_REGION),
            ("dynamodbstreams", SRC_REGION),
        ):
            self.calls.hook(self.backend.client(service, region))
        self.backend.client("s3", DST_REGION).meta.events.register("before-call.s3.CopyObject", self._count_copy)

        # Source bucket: versioned (the flow enables versioning on the source for replication before it backfills).
        self.s3_src.create_bucket(Bucket=SRC_BUCKET)
        self.s3_src.put_bucket_versioning(Bucket=SRC_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda kb: self.s3_src.put_object(Bucket=SRC_BUCKET, Key=kb[0], Body=kb[1]),
                    zip(self.keys, self.bodies, strict=True),
                )
            )
        self.ddb_src.create_table(
            TableName=SRC_TABLE,
            AttributeDefinitions=[
                {"AttributeName": "eventId", "AttributeType": "S"},
                {"AttributeName": "timestamp", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "eventId", "KeyType": "HASH"},
                {"AttributeName": "timestamp", "KeyType": "RANGE"},
            ],
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        )
        self.ddb_src.get_waiter("table_exists").wait(TableName=SRC_TABLE, WaiterConfig={"Delay": 1})
        batch_write_all(self.ddb_src, SRC_TABLE, self.items, 4)

        acct = self.backend.account_id(DST_REGION)
        self.kms_arn = ensure_key.fn(self.backend, self.cfg, acct)["arn"]
        self.ckpt = resource_names(self.cfg).checkpoint_table
        ensure_checkpoint_table.fn(self.backend, DST_REGION, self.ckpt, self.cfg.tags(), self.kms_arn)
        # The flow enables the source stream before any backfill scans; nothing writes the source until
        # the catch-up step's changes, so the stream holds exactly those.
        ensure_source_stream.fn(self.backend, self.cfg, SRC_TABLE, checkpoint_table=self.ckpt)
        self.results.info.setdefault("setup_wall", []).append(time.perf_counter() - t0)
        self.results.info.setdefault("setup_server_cpu", []).append(self.server.cpu() - c0)

    def target_bucket(self, tool: str) -> str:
        """A fresh target bucket provisioned exactly as ours is (ensure_bucket), named per tool."""
        cfg = make_cfg(tool)
        ensure_bucket.fn(self.backend, cfg, cfg.s3_buckets[0], self.kms_arn)
        return cfg.target_name(SRC_BUCKET)

    def target_table(self, tool: str) -> str:
        """A fresh target table built by ensure_table from the source's description, named per tool."""
        cfg = make_cfg(tool)
        ensure_table.fn(self.backend, cfg, cfg.dynamodb_tables[0], self.kms_arn)
        return cfg.target_name(SRC_TABLE)

    # ---------------------------------------------------------------- S3 tools

    def s3_backfill(self, dst: str) -> dict[str, Any]:
        """The flow's S3 backfill of one bucket: its partitions mapped onto the flow's pool, then summed."""
        parts = plan_partitions.fn(self.backend, SRC_REGION, SRC_BUCKET)

        def one(part: dict[str, Any]) -> dict[str, Any]:
            return copy_partition.fn(
                self.backend, self.cfg, SRC_BUCKET, dst, part, self.kms_arn, self.ckpt, "backfill", S3_COPY_WORKERS
            )

        with ThreadPoolExecutor(max(1, min(len(parts), FLOW_TASK_WORKERS)), thread_name_prefix="bench-s3") as pool:
            return summarize_copies(list(pool.map(one, parts)))

    def s3_ours(self, dst: str) -> tuple[int, str]:
        out = self.s3_backfill(dst)
        if out["copied"] != self.args.objects or out["failed"]:
            raise RuntimeError(f"our backfill copied {out['copied']}, failed {out['failed']}: {out['failures'][:3]}")
        return out["copied"], f"{out['partitions']} partitions"

    def s3_processes(self, dst: str, procs: int) -> None:
        """The same partitions on `procs` worker processes (spawned and warmed up before the clock starts, as a
        Dask LocalCluster's are), one partition task at a time each: what the flow gets from `--task-runner dask`.
        Client CPU is ours (planning) plus the workers' own, read from /proc."""
        pool = ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn"))
        try:
            list(pool.map(abs, range(procs)))  # start every worker (imports included) before timing
            pids = list(pool._processes)
            c0, p0, w0, t0 = self.server.cpu(), time.process_time(), sum(map(pid_cpu, pids)), time.perf_counter()
            parts = plan_partitions.fn(self.backend, SRC_REGION, SRC_BUCKET)
            args = [(self.url, "ours", dst, part, self.kms_arn, self.ckpt) for part in parts]
            out = summarize_copies(list(pool.map(_copy_in_worker, *zip(*args, strict=True))))
            wall = time.perf_counter() - t0
            client = time.process_time() - p0 + sum(map(pid_cpu, pids)) - w0
            sample = Sample(wall, self.server.cpu() - c0, client, out["copied"], note=f"{len(parts)} partitions")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if out["copied"] != self.args.objects or out["failed"]:
            raise RuntimeError(f"{procs} processes copied {out['copied']}, failed {out['failed']}")
        name = f"s3-ours-{procs}p"
        self.results.add(name, sample)
        self.log(
            f"  {name:<14} {sample.wall:7.2f} s wall, server CPU {sample.server_cpu:6.2f} s, client CPU "
            f"{sample.client_cpu:6.2f} s, {sample.units} units, {sample.note}"
        )

    def s3_rerun(self, dst: str) -> tuple[int, str]:
        copies_before = self.copy_calls
        out = self.s3_backfill(dst)
        issued = self.copy_calls - copies_before
        if out["copied"] or issued or out["skipped"] != self.args.objects:
            raise RuntimeError(f"re-run copied {out['copied']} (CopyObject calls {issued}), skipped {out['skipped']}")
        return out["skipped"], f"0 CopyObject calls, {out['skipped']} skipped"

    def s3_s5cmd(self, dst: str) -> tuple[int, str]:
        run_cmd(
            [self.s5cmd, "--endpoint-url", self.url, "cp", f"s3://{SRC_BUCKET}/*", f"s3://{dst}/"], self.env, self.watch
        )
        return self.args.objects, ""

    def s3_s5cmd_kms(self, dst: str) -> tuple[int, str]:
        """s5cmd asked to do what our copy does to every object: SSE-KMS under the migration's key."""
        sse = ["--sse", "aws:kms", "--sse-kms-key-id", self.kms_arn]
        run_cmd(
            [self.s5cmd, "--endpoint-url", self.url, "cp", *sse, f"s3://{SRC_BUCKET}/*", f"s3://{dst}/"],
            self.env,
            self.watch,
        )
        return self.args.objects, "--sse aws:kms --sse-kms-key-id <the migration key>"

    def s3_awscli(self, dst: str) -> tuple[int, str]:
        run_cmd(
            [self.aws, "s3", "sync", f"s3://{SRC_BUCKET}", f"s3://{dst}", "--endpoint-url", self.url],
            self.env,
            self.watch,
        )
        return self.args.objects, ""

    def s3_flow(self) -> None:
        """The migrate flow, first run and re-run; rows s3-flow / s3-flow-rerun are the backfill durations it
        reports (its CPU columns are the whole child run's: Prefect's server, provisioning and validation too)."""
        cfg = bench_flow.flow_config(SRC_REGION, DST_REGION, SRC_BUCKET)
        c0 = self.server.cpu()
        out = bench_flow.run(self.url, cfg, self.tmp / f"flow-{len(self.flows)}", STEP_TIMEOUT_S)
        server_cpu = self.server.cpu() - c0
        first, rerun = out["runs"]
        if first["verdict"] != "GO" or first["copied"] != self.args.objects or rerun["copied"]:
            raise RuntimeError(f"the flow: {first['verdict']}, copied {first['copied']}, re-run {rerun['copied']}")
        self.flows.append({**out, "serverCpuS": round(server_cpu, 2)})
        for name, r in (("s3-flow", first), ("s3-flow-rerun", rerun)):
            units = r["copied"] or r["skipped"]
            s = Sample(r["backfillDurationS"], server_cpu, out["childCpuSeconds"], units, note="whole child run CPU")
            self.results.add(name, s)
            self.log(
                f"  {name:<14} {s.wall:7.2f} s backfill (flow's report), flow wall {r['flowWallS']} s, "
                f"{r['taskRuns']} task runs ({r['backfillTaskRuns']} backfill copies), "
                f"flow start -> first copy {r.get('flowStartToFirstCopyS')} s, planning + copies "
                f"{r.get('backfillWallS')} s"
            )

    def s3_boto3(self, dst: str) -> tuple[int, str]:
        keys = list_keys(self.s3_dst, SRC_BUCKET)

        def copy(key: str) -> None:
            self.s3_dst.copy_object(Bucket=dst, Key=key, CopySource={"Bucket": SRC_BUCKET, "Key": key})

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(copy, keys))
        return len(keys), ""

    # ---------------------------------------------------------------- DynamoDB tools

    def ddb_ours(self, dst: str) -> tuple[int, str]:
        total = plan_segments.fn(self.backend, self.cfg, SRC_TABLE, checkpoint_table=self.ckpt)

        def one(segment: int) -> dict[str, Any]:
            return backfill_segment.fn(self.backend, self.cfg, SRC_TABLE, dst, segment, total, self.ckpt)

        with ThreadPoolExecutor(max(1, min(total, FLOW_TASK_WORKERS)), thread_name_prefix="bench-seg") as pool:
            segments = list(pool.map(one, range(total)))
        written = sum(int(s["written"]) for s in segments)
        if written != self.args.items:
            raise RuntimeError(f"our DynamoDB backfill wrote {written} of {self.args.items} items")
        return written, f"{total} segments"

    def ddb_naive(self, dst: str) -> tuple[int, str]:
        kw = {
            "endpoint_url": self.url,
            "aws_access_key_id": EMULATOR_ACCESS_KEY,
            "aws_secret_access_key": EMULATOR_SECRET_KEY,
        }
        src = boto3.resource("dynamodb", region_name=SRC_REGION, **kw).Table(SRC_TABLE)
        target = boto3.resource("dynamodb", region_name=DST_REGION, **kw).Table(dst)
        n = 0
        scan_kwargs: dict[str, Any] = {}
        with target.batch_writer() as writer:
            while True:
                resp = src.scan(**scan_kwargs)
                for item in resp.get("Items", []):
                    writer.put_item(Item=item)
                    n += 1
                if "LastEvaluatedKey" not in resp:
                    break
                scan_kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return n, ""

    def ddb_raw(self, dst: str) -> tuple[int, str]:
        return batch_write_all(self.ddb_dst, dst, self.items, 4), ""

    # ---------------------------------------------------------------- stream catch-up

    def make_changes(self, k: int, rep: int) -> list[str]:
        """k source writes after the backfill: a third new items (INSERT), a third updates (MODIFY) and a
        third deletes (REMOVE) of distinct existing items, from 4 threads like an application would."""
        rng = random.Random(1000 + rep)
        existing = rng.sample(range(len(self.items)), min(len(self.items), k))
        ops: list[tuple[str, int]] = []
        for j in range(k):
            ops.append((("put", "update", "delete")[j % 3], existing[j % len(existing)] if existing else 0))

        def apply(op: tuple[str, int]) -> str:
            kind, i = op
            key = {"eventId": self.items[i]["eventId"], "timestamp": self.items[i]["timestamp"]}
            if kind == "put":
                new = make_item(len(self.items) + 1_000_000 + rep * 100_000 + i, random.Random(i))
                self.ddb_src.put_item(TableName=SRC_TABLE, Item=new)
            elif kind == "update":
                self.ddb_src.update_item(
                    TableName=SRC_TABLE,
                    Key=key,
                    UpdateExpression="SET amount = :a, kind = :k ADD visits :one",
                    ExpressionAttributeValues={":a": {"N": "42.5"}, ":k": {"S": "updated"}, ":one": {"N": "1"}},
                )
            else:
                self.ddb_src.delete_item(TableName=SRC_TABLE, Key=key)
            return kind

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(apply, ops))

    def ddb_catchup(self, dst: str, k: int) -> tuple[int, str]:
        out = catch_up(self.backend, self.cfg, SRC_TABLE, dst, self.ckpt)
        if out["records"] != k or not out["caughtUp"]:
            raise RuntimeError(f"catch-up applied {out['records']} of {k} records (caughtUp={out['caughtUp']})")
        return out["records"], f"{out['puts']} puts, {out['deletes']} deletes after collapsing"

    # ---------------------------------------------------------------- one repetition

    def step(self, name: str, fn: Callable[[], tuple[int, str]], ours: bool = False) -> Sample:
        s = measure(self.server, fn, self.calls if ours else None)
        self.results.add(name, s)
        extra = f", {s.requests} API calls" if s.requests is not None else ""
        self.log(
            f"  {name:<14} {s.wall:7.2f} s wall, server CPU {s.server_cpu:6.2f} s, client CPU {s.client_cpu:6.2f} s, "
            f"{s.units} units{extra}{', ' + s.note if s.note else ''}"
        )
        return s

    def repetition(self, rep: int) -> None:
        a = self.args
        self.log(f"repetition {rep + 1}/{a.repeats}: reset + seed ({a.objects} objects, {a.items} items)")
        self.setup()

        buckets = {t: self.target_bucket(t) for t in ("ours", "s5cmd", "s5cmdkms", "awscli", "boto3", "2p")}
        s3_steps: list[tuple[str, Callable[[], None]]] = [
            ("ours", lambda: (self.step("s3-ours", lambda: self.s3_ours(buckets["ours"]), ours=True),
                              self.step("s3-ours-rerun", lambda: self.s3_rerun(buckets["ours"]), ours=True))),
            ("s5cmd", lambda: self.step("s3-s5cmd", lambda: self.s3_s5cmd(buckets["s5cmd"]))),
            ("s5cmdkms", lambda: self.step("s3-s5cmd-kms", lambda: self.s3_s5cmd_kms(buckets["s5cmdkms"]))),
            ("awscli", lambda: self.step("s3-awscli", lambda: self.s3_awscli(buckets["awscli"]))),
            ("boto3", lambda: self.step("s3-boto3-16t", lambda: self.s3_boto3(buckets["boto3"]))),
            ("2p", lambda: self.s3_processes(buckets["2p"], 2)),
            *([("flow", self.s3_flow)] if a.flow else []),
        ]  # fmt: skip
        if a.only:  # a subset of the S3 tools, in their rotated order, and no DynamoDB steps
            s3_steps = [s for s in s3_steps if s[0] in a.only]
        rot = rep % len(s3_steps)
        for _, run in s3_steps[rot:] + s3_steps[:rot]:
            run()
        for tool, bucket in buckets.items():
            n = len(list_keys(self.s3_dst, bucket))
            if n != a.objects and (not a.only or tool in a.only):
                raise RuntimeError(f"{tool}: target bucket {bucket} holds {n} of {a.objects} objects")
        if a.only:
            return

        tables = {t: self.target_table(t) for t in ("ours", "naive", "raw")}
        ddb_steps = [
            ("ddb-ours", lambda: self.ddb_ours(tables["ours"]), True),
            ("ddb-naive", lambda: self.ddb_naive(tables["naive"]), False),
            ("ddb-raw-4t", lambda: self.ddb_raw(tables["raw"]), False),
        ]
        rot = rep % len(ddb_steps)
        for name, fn, ours in ddb_steps[rot:] + ddb_steps[:rot]:
            self.step(name, fn, ours=ours)
        if rep == 0:  # full counts once (a COUNT scan of every target costs the server several seconds each)
            for tool, table in tables.items():
                n = count_items(self.ddb_dst, table)
                if n != a.items:
                    raise RuntimeError(f"{tool}: target table {table} holds {n} of {a.items} items")

        t0, c0 = time.perf_counter(), self.server.cpu()
        kinds = Counter(self.make_changes(a.changes, rep))
        self.results.info.setdefault("changes_wall", []).append(time.perf_counter() - t0)
        self.results.info.setdefault("changes_server_cpu", []).append(self.server.cpu() - c0)
        self.log(f"  made {a.changes} source changes {dict(kinds)} in {time.perf_counter() - t0:.1f} s")
        self.step("ddb-catchup", lambda: self.ddb_catchup(tables["ours"], a.changes), ours=True)
        if rep == 0:
            src = {encode_item(it) for it in scan_all(self.ddb_src, SRC_TABLE)}
            dst = {encode_item(it) for it in scan_all(self.ddb_dst, tables["ours"])}
            if src != dst:
                raise RuntimeError(
                    f"after catch-up the target differs from the source: {len(src - dst)} source items missing "
                    f"or different, {len(dst - src)} extra"
                )
            self.log(f"  verified: target == source after backfill + catch-up ({len(src)} items, every attribute)")


# ------------------------------------------------------------------------------------------- diagnosis


def diagnose(server: Server, args: argparse.Namespace) -> None:
    """Where the server's CPU goes, one operation kind at a time (run with --diagnose; one pass, untimed
    by the targets): DynamoDB write-only vs scan-only (1, 2 and 4 segments), S3 plain copy_object vs our
    copy arguments, our manifest writes, and a 1,000-key listing page."""
    url = server.url
    server.reset()
    ddb = plain_client("dynamodb", SRC_REGION, url)
    s3 = plain_client("s3", SRC_REGION, url)
    dst = plain_client("s3", DST_REGION, url)
    rng = random.Random(42)
    items = [make_item(i, rng) for i in range(args.items)]

    def m(label: str, fn: Callable[[], object], n: int, unit: str) -> None:
        c0, t0 = server.cpu(), time.perf_counter()
        r = fn()
        w, c = time.perf_counter() - t0, server.cpu() - c0
        print(
            f"| {label} | {w:.2f} | {c:.2f} | {1000 * c / n:.3f} ms/{unit} | {r if r is not None else ''} |", flush=True
        )

    print("\n| operation | wall s | server CPU s | server CPU per unit | detail |\n|---|---:|---:|---:|---|")
    keys = [{"AttributeName": "eventId", "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}]
    attrs = [{"AttributeName": "eventId", "AttributeType": "S"}, {"AttributeName": "timestamp", "AttributeType": "N"}]
    ddb.create_table(TableName="diag", AttributeDefinitions=attrs, KeySchema=keys, BillingMode="PAY_PER_REQUEST")
    m(f"DynamoDB write-only: {args.items} items, batch_write_item x4", lambda: batch_write_all(ddb, "diag", items, 4),
      args.items, "item")  # fmt: skip

    def scan(segs: int, consistent: bool) -> str:
        def one(seg: int) -> tuple[int, int]:
            kw: dict[str, Any] = {"TableName": "diag", "ConsistentRead": consistent}
            if segs > 1:
                kw.update(Segment=seg, TotalSegments=segs)
            pages = n = 0
            while True:
                r = ddb.scan(**kw)
                pages, n = pages + 1, n + len(r["Items"])
                if "LastEvaluatedKey" not in r:
                    return pages, n
                kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]

        with ThreadPoolExecutor(min(segs, 2)) as pool:
            res = list(pool.map(one, range(segs)))
        return f"{sum(r[0] for r in res)} pages, {sum(r[1] for r in res)} items"

    for segs, consistent in ((1, False), (1, True), (2, True), (4, True)):
        label = f"DynamoDB scan-only: {segs} segment(s){', ConsistentRead' if consistent else ''}"
        m(label, lambda s=segs, c=consistent: scan(s, c), args.items, "item")  # type: ignore[misc]

    kms = plain_client("kms", DST_REGION, url)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="diag-src")
    names = [f"k/{i:06d}" for i in range(args.objects)]
    with ThreadPoolExecutor(8) as pool:
        etag_list = list(
            pool.map(
                lambda k: s3.put_object(Bucket="diag-src", Key=k, Body=rng.randbytes(args.object_size))["ETag"], names
            )
        )
    etags = dict(zip(names, etag_list, strict=True))
    for b in ("diag-plain", "diag-ours"):
        dst.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": DST_REGION})
        dst.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        rule = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
        dst.put_bucket_encryption(
            Bucket=b,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": rule, "BucketKeyEnabled": True}]
            },
        )

    def copy(bucket: str, extra: Callable[[str], dict[str, Any]]) -> None:
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda k: dst.copy_object(
                        Bucket=bucket, Key=k, CopySource={"Bucket": "diag-src", "Key": k}, **extra(k)
                    ),
                    names,
                )
            )

    ours = {"MetadataDirective": "COPY", "TaggingDirective": "COPY", "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": key, "BucketKeyEnabled": True}  # fmt: skip
    m(f"S3 copy_object x16, plain arguments ({args.objects})", lambda: copy("diag-plain", lambda k: {}),
      args.objects, "object")  # fmt: skip
    m(f"S3 copy_object x16, our arguments ({args.objects})",
      lambda: copy("diag-ours", lambda k: {**ours, "CopySourceIfMatch": etags[k]}), args.objects, "object")  # fmt: skip
    ddb.create_table(
        TableName="diag-ckpt",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    recs = [
        {"pk": {"S": "s3#diag"}, "sk": {"S": k}, "srcEtag": {"S": e}, "dstEtag": {"S": e}, "size": {"N": "1024"}}
        for k, e in etags.items()
    ]

    def manifest() -> None:
        for i in range(0, len(recs), 25):
            ddb.batch_write_item(RequestItems={"diag-ckpt": [{"PutRequest": {"Item": r}} for r in recs[i : i + 25]]})

    m(f"S3 manifest: {len(recs)} records, 25 per batch_write_item", manifest, len(recs), "record")
    pages = max(1, -(-args.objects // 1000))
    m(f"S3 list_objects_v2 of {args.objects} keys", lambda: f"{len(list_keys(s3, 'diag-src'))} keys", pages, "page")


# -------------------------------------------------------------------------------------------- reporting

ORDER = [
    ("s3-ours", "objects"),
    ("s3-s5cmd", "objects"),
    ("s3-s5cmd-kms", "objects"),
    ("s3-awscli", "objects"),
    ("s3-boto3-16t", "objects"),
    ("s3-ours-rerun", "objects"),
    ("s3-ours-2p", "objects"),
    ("s3-flow", "objects"),
    ("s3-flow-rerun", "objects"),
    ("ddb-ours", "items"),
    ("ddb-naive", "items"),
    ("ddb-raw-4t", "items"),
    ("ddb-catchup", "records"),
]
LABELS = {
    "s3-ours": "S3 backfill, ours (flow parts)",
    "s3-s5cmd": "S3 s5cmd cp",
    "s3-s5cmd-kms": "S3 s5cmd cp --sse aws:kms (our key)",
    "s3-awscli": "S3 aws s3 sync",
    "s3-boto3-16t": "S3 boto3 copy_object x16 (ceiling)",
    "s3-ours-rerun": "S3 backfill re-run, ours",
    "s3-ours-2p": "S3 backfill, ours, partitions on 2 processes",
    "s3-flow": "S3 backfill, the migrate flow (its report)",
    "s3-flow-rerun": "S3 backfill, the flow's re-run (its report)",
    "ddb-ours": "DynamoDB backfill, ours",
    "ddb-naive": "DynamoDB naive scan + batch_writer",
    "ddb-raw-4t": "DynamoDB raw batch_write x4 (ceiling)",
    "ddb-catchup": "DynamoDB stream catch-up, ours",
}


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(
    res: Results, args: argparse.Namespace, header: dict[str, str], json_path: str | None, flows: list[dict[str, Any]]
) -> None:
    print()
    for k, v in header.items():
        print(f"{k}: {v}")
    print()
    head = "| step | median wall s | runs (s) | server CPU s | server CPU / wall | client CPU s | units | throughput |"
    print(head)
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    rows: dict[str, dict[str, Any]] = {}
    for name, unit in ORDER:
        ss = res.samples.get(name, [])
        if not ss:
            continue
        wall = med([s.wall for s in ss])
        cpu = med([s.server_cpu for s in ss])
        client = med([s.client_cpu for s in ss])
        units = int(med([s.units for s in ss]))
        rows[name] = {"wall": wall, "server_cpu": cpu, "client_cpu": client, "units": units}
        runs = ", ".join(f"{s.wall:.2f}" for s in ss)
        print(
            f"| {LABELS[name]} | {wall:.2f} | {runs} | {cpu:.2f} | {cpu / wall:.0%} | {client:.2f} | "
            f"{units:,} {unit} | {units / wall:,.0f} {unit}/s |"
        )
    print()
    print(
        "server CPU per unit (ms):",
        ", ".join(f"{n} {1000 * r['server_cpu'] / max(r['units'], 1):.2f}" for n, r in rows.items()),
    )
    if res.info:
        print("untimed, per repetition (median): " + ", ".join(f"{k} {med(v):.1f} s" for k, v in res.info.items()))

    def wall(name: str) -> float:
        return rows[name]["wall"] if name in rows else float("nan")

    def per_rep(num: str, den: str, pct: bool = False) -> str:
        a, b = res.samples.get(num, []), res.samples.get(den, [])
        return ", ".join(
            f"{x.wall / y.wall:.1%}" if pct else f"{x.wall / y.wall:.2f}" for x, y in zip(a, b, strict=False)
        )

    print()
    print("Targets (ratio of medians; per-repetition ratios in brackets):")
    checks = [
        ("S3 backfill vs s5cmd: s5cmd / ours", wall("s3-s5cmd") / wall("s3-ours"), ">= 1.0x", lambda r: r >= 1.0,
         per_rep("s3-s5cmd", "s3-ours")),
        ("S3 backfill vs aws s3 sync: awscli / ours", wall("s3-awscli") / wall("s3-ours"), ">= 1.2x",
         lambda r: r >= 1.2, per_rep("s3-awscli", "s3-ours")),
        ("S3 re-run / first run", wall("s3-ours-rerun") / wall("s3-ours"), "< 10%", lambda r: r < 0.10,
         per_rep("s3-ours-rerun", "s3-ours", pct=True)),
        ("S3 flow backfill vs s5cmd: s5cmd / flow", wall("s3-s5cmd") / wall("s3-flow"), ">= 1.0x",
         lambda r: r >= 1.0, per_rep("s3-s5cmd", "s3-flow")),
        ("S3 flow vs s5cmd, same SSE-KMS: s5cmd-kms / flow", wall("s3-s5cmd-kms") / wall("s3-flow"), ">= 1.0x",
         lambda r: r >= 1.0, per_rep("s3-s5cmd-kms", "s3-flow")),
        ("S3 flow re-run / flow first run", wall("s3-flow-rerun") / wall("s3-flow"), "< 10%", lambda r: r < 0.10,
         per_rep("s3-flow-rerun", "s3-flow", pct=True)),
        ("DynamoDB backfill vs naive: naive / ours", wall("ddb-naive") / wall("ddb-ours"), ">= 1.5x",
         lambda r: r >= 1.5, per_rep("ddb-naive", "ddb-ours")),
        ("DynamoDB backfill vs raw write ceiling: ours / ceiling", wall("ddb-ours") / wall("ddb-raw-4t"),
         "<= 1.10x (within 10%)", lambda r: r <= 1.10, per_rep("ddb-ours", "ddb-raw-4t")),
    ]  # fmt: skip
    verdicts = []
    for label, ratio, target, ok, reps in checks:
        verdict = "PASS" if ratio == ratio and ok(ratio) else "MISS"
        shown = f"{ratio:.1%}" if "re-run" in label else f"{ratio:.2f}x"
        print(f"  {label:<58} {shown:>8}  target {target:<22} {verdict}   [{reps}]")
        verdicts.append({"check": label, "ratio": ratio, "target": target, "verdict": verdict, "perRepetition": reps})
    print()
    print(f"S3 ours vs boto3 ceiling: ceiling / ours = {wall('s3-boto3-16t') / wall('s3-ours'):.2f}x")
    for i, f in enumerate(flows):
        print(
            f"\nThe migrate flow, repetition {i + 1} (its own process: server CPU {f['serverCpuS']} s, its CPU with "
            f"its temporary Prefect server {f['childCpuSeconds']} s over both runs):"
        )
        for r in f["runs"]:
            print(
                f"  {r['run']:<6} backfill {r['backfillDurationS']} s (planning + copies {r.get('backfillWallS')} s), "
                f"flow {r['reportedDurationS']} s by its report ({r['flowWallS']} s wall with Prefect's start), "
                f"flow start -> first copy {r.get('flowStartToFirstCopyS')} s, {r['taskRuns']} task runs "
                f"({r['backfillTaskRuns']} backfill copies over {r['partitions']} partitions), flow process CPU "
                f"{r['flowProcessCpuS']} s, verdict {r['verdict']}"
            )
    if json_path:
        out = {
            "header": header,
            "args": vars(args),
            "rows": rows,
            "samples": {k: [s.__dict__ for s in v] for k, v in res.samples.items()},
            "info": res.info,
            "checks": verdicts,
            "flows": flows,
        }
        Path(json_path).write_text(json.dumps(out, indent=2, default=str))
        print(f"raw results written to {json_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--object-size", type=int, default=1024, help="bytes per object")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--changes", type=int, default=2000, help="source writes replayed by the catch-up step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-minutes", type=float, default=40, help="hard bound on the whole run")
    parser.add_argument("--json", metavar="PATH", help="also write the raw samples as JSON")
    parser.add_argument(
        "--no-flow", dest="flow", action="store_false", help="skip the migrate flow step (s3-flow, s3-flow-rerun)"
    )
    parser.add_argument(
        "--only",
        type=lambda v: {t.strip() for t in v.split(",") if t.strip()},
        default=set(),
        metavar="TOOLS",
        help="only these S3 steps, e.g. 'flow,s5cmd' (of ours, s5cmd, s5cmdkms, awscli, boto3, 2p, flow), "
        "and no DynamoDB steps",
    )
    parser.add_argument(
        "--diagnose", action="store_true", help="instead: measure server CPU per operation kind (scan, write, copy)"
    )
    args = parser.parse_args(argv)

    header = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        "python": sys.version.split()[0],
        "versions": f"moto {importlib.metadata.version('moto')}, boto3 {importlib.metadata.version('boto3')}, "
        f"botocore {importlib.metadata.version('botocore')}, "
        f"s5cmd {version_of([shutil.which('s5cmd', path=str(VENV_BIN)) or 's5cmd', 'version'])}, "
        f"awscli {version_of([shutil.which('aws', path=str(VENV_BIN)) or 'aws', '--version'])}",
        "size": f"{args.objects} objects x {args.object_size} B, {args.items} items, {args.changes} stream changes, "
        f"{args.repeats} repetition(s)",
    }
    watch = Watchdog(args.max_minutes * 60)
    started = time.perf_counter()
    server: Server | None = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    with tempfile.TemporaryDirectory(prefix="bench-move-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            server = Server(tmp / "moto.log")
            watch.server = server
            print(f"moto server pid {server.proc.pid} at {server.url}", flush=True)
            if args.diagnose:
                diagnose(server, args)
                return 0
            bench = Bench(args, server, watch, tmp)
            for rep in range(args.repeats):
                bench.repetition(rep)
        except BaseException:
            if server is not None and server.log_path.exists():
                tail = server.log_path.read_text(errors="replace")[-3000:]
                if tail.strip():
                    print(f"--- moto server log tail ---\n{tail}", file=sys.stderr)
            raise
        finally:
            if server is not None:
                server.stop()
            watch.cancel()
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s")
    report(bench.results, args, header, args.json, bench.flows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
