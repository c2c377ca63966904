"""The migrate flow itself, measured as a user runs it: bench_move.py's `s3-flow` step (and its re-run).

    python benchmarks/bench_flow.py --endpoint-url URL --config CFG.json --report DIR --out OUT.json

runs `flows.migrate.migrate` twice (a first run and a re-run) against the moto server bench_move.py started, in a
process of its own with its own Prefect home, so its temporary Prefect server, its database and the flow's own
CPU never share this benchmark's process. For each run it writes to OUT.json what the flow reported (the bucket's
backfill `durationSeconds`, verdict, copied/skipped) and what Prefect recorded: task runs in all and per task,
seconds from the flow run's start to the first S3 backfill copy, and the backfill's wall from the planning task's
start to the last backfill copy's end. bench_move.py times s5cmd on the same server in the same repetition.

    python benchmarks/bench_flow.py --memory 2000,20000

instead runs the flow (first run + re-run) at each object count against a moto server in this process, seeded through
moto's backend, and prints the flow process's own peak RSS (VmHWM) at each: it must not grow with the object count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLOW_SUFFIX = "flow"


def flow_config(source_region: str, target_region: str, bucket: str) -> dict[str, Any]:
    """The bench's bucket only, in the seed's JSON format (the flow reads a file, as a user's run does)."""
    return {
        "sourceRegion": source_region,
        "targetRegion": target_region,
        "migrationBatch": "bench",
        "timestamp": "20261128",
        "environmentSuffix": FLOW_SUFFIX,
        "s3Buckets": [{"name": bucket}],
        "dynamodbTables": [],
    }


def run(url: str, config: dict[str, Any], tmp: Path, timeout_s: float) -> dict[str, Any]:
    """Run this module as a child (first run + re-run); its results, and the child's CPU seconds (with its
    temporary Prefect server)."""
    tmp.mkdir(parents=True, exist_ok=True)
    cfg_path, out = tmp / "flow-config.json", tmp / "flow-out.json"
    cfg_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=config["sourceRegion"],
        AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"),
        PREFECT_HOME=str(tmp / "prefect-home"),  # its own database: no other run's rows, no lock contention
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",  # a fresh database on a busy machine
        PYTHONPATH=str(ROOT),
    )
    cmd = [sys.executable, str(Path(__file__).resolve()), "--endpoint-url", url, "--config", str(cfg_path)]
    cmd += ["--report", str(tmp / "flow-reports"), "--out", str(out)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"the migrate flow exited {proc.returncode}: {(proc.stderr or proc.stdout)[-3000:]}")
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return {"runs": json.loads(out.read_text()), "childCpuSeconds": round(cpu, 2)}


def _timeline(flow_run_id: Any) -> dict[str, Any]:
    """Task runs of one flow run, read back from the Prefect API: counts, time to first copy, backfill wall."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    per_task = Counter(r.task_key.rsplit("-", 1)[0] if r.task_key else r.name for r in runs)
    copies = [r for r in runs if r.name.startswith("s3-backfill-") and r.start_time and r.end_time]
    plans = [r.start_time for r in runs if r.name.startswith("s3-partitions-") and r.start_time]
    out: dict[str, Any] = {"taskRuns": len(runs), "taskRunsByTask": dict(per_task), "backfillTaskRuns": len(copies)}
    if copies and flow_run.start_time:
        first = min(r.start_time for r in copies)
        last = max(r.end_time for r in copies)
        out["flowStartToFirstCopyS"] = round((first - flow_run.start_time).total_seconds(), 2)
        if plans:  # the first planning pass is the backfill's (the catch-up plans again after it)
            out["backfillWallS"] = round((last - min(plans)).total_seconds(), 2)
        out["copyTasksWallS"] = round((last - first).total_seconds(), 2)
    return out


def _status_mib(field: str) -> float:
    """A field of /proc/self/status in MiB (VmHWM: peak RSS since exec, VmRSS: now)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from config.options import RunOptions
    from flows.migrate import migrate

    rss_start_mib = _status_mib("VmRSS")  # the interpreter with Prefect, boto3 and the flow imported
    results = []
    for label in ("first", "rerun"):
        report_path = str(Path(args.report) / f"report-{label}.json")
        c0, t0 = time.process_time(), time.perf_counter()
        state = migrate(
            options=RunOptions(config_path=args.config, endpoint_url=args.endpoint_url),
            report_path=report_path,
            validation_level="quick",
            return_state=True,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak_mib = _status_mib("VmHWM")  # this process's peak so far (the temporary Prefect server is a child)
        if not state.is_completed():
            print(f"migrate {label}: {state.name}: {state.message}", file=sys.stderr)
            return 1
        report = json.loads(Path(report_path).read_text())
        bucket = report["resources"]["s3Buckets"][0]
        fill = bucket.get("backfill") or {}
        results.append(
            {
                "run": label,
                "verdict": report["verdict"]["decision"],
                "backfillDurationS": float(fill.get("durationSeconds", float("nan"))),
                "copied": int(fill.get("copied", 0) or 0),
                "skipped": int(fill.get("skipped", 0) or 0),
                "partitions": int(fill.get("partitions", 0) or 0),
                "flowWallS": round(wall, 2),
                "flowProcessCpuS": round(cpu, 2),
                "reportedDurationS": report.get("durationSeconds"),
                "rssAtStartMiB": rss_start_mib,
                "peakRssMiB": peak_mib,
                **_timeline(state.state_details.flow_run_id),
            }
        )
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    return 0


class _Server:
    """A moto server in THIS process (ThreadedMotoServer on 127.0.0.1), seeded through moto's backend: PutObject
    over HTTP runs at ~190/s here. The flow runs in a child process and reaches it over HTTP, as in bench_move."""

    def __init__(self) -> None:
        import logging
        import socket

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it logs every request otherwise
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        # moto's backends are this process's globals, which outlive a stopped server: start every size from none.
        import urllib.request

        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")):
            pass

    def seed(self, region: str, bucket: str, objects: int, size: int) -> float:
        """A versioned source bucket (created over HTTP) holding `objects` objects of `size` bytes, put through
        moto's backend; returns the seconds it took."""
        import gc

        import boto3
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        from tasks.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY

        s3 = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,
        )
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        store, body, t0 = s3_backends[DEFAULT_ACCOUNT_ID]["global"], b"m" * size, time.monotonic()
        for i in range(objects):
            store.put_object(bucket, f"events/dt=2026-11-{1 + i % 28:02d}/part-{i:07d}.bin", body)
        gc.freeze()  # the server's collector would otherwise walk every seeded object, again and again
        return time.monotonic() - t0

    def stop(self) -> None:
        self.server.stop()


def memory(sizes: list[int], object_size: int, timeout_s: float) -> list[dict[str, Any]]:
    """The flow process's peak RSS (VmHWM of the flow's own process, not its temporary Prefect server's) after a
    first run and a re-run of `flows.migrate.migrate` on a bucket of each size, one fresh server per size."""
    import tempfile

    rows: list[dict[str, Any]] = []
    for objects in sizes:
        server = _Server()
        try:
            seed_s = server.seed("us-east-1", "bench-memory-src", objects, object_size)
            tmp = Path(tempfile.mkdtemp(prefix=f"bench-flow-memory-{objects}-"))  # removed once its checks pass
            out = run(server.url, flow_config("us-east-1", "eu-west-1", "bench-memory-src"), tmp, timeout_s)
        finally:
            server.stop()
        first, rerun = out["runs"]
        if first["verdict"] != "GO" or first["copied"] != objects or rerun["copied"]:
            raise RuntimeError(f"{objects} objects: {first['verdict']}, {first}, re-run {rerun} (reports in {tmp})")
        shutil.rmtree(tmp, ignore_errors=True)
        row = {
            "objects": objects,
            "seedS": round(seed_s, 1),
            "partitions": first["partitions"],
            "taskRuns": first["taskRuns"],
            "rssAtStartMiB": first["rssAtStartMiB"],
            "peakFirstMiB": first["peakRssMiB"],
            "peakRerunMiB": rerun["peakRssMiB"],
            "backfillS": first["backfillDurationS"],
            "flowWallS": first["flowWallS"],
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url")
    parser.add_argument("--config")
    parser.add_argument("--report", help="directory for the two runs' reports")
    parser.add_argument("--out", help="where to write the measurements (JSON)")
    parser.add_argument(
        "--memory",
        metavar="N,M",
        help="instead: the flow process's peak RSS at these object counts (a moto server in this process)",
    )
    parser.add_argument("--object-size", type=int, default=1024, help="bytes per object (--memory)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per flow child (--memory)")
    args = parser.parse_args(argv)
    if args.memory:
        sizes = [int(n) for n in args.memory.split(",")]
        rows = memory(sizes, args.object_size, args.timeout)
        print("\n| objects | partitions | task runs | flow RSS at start MiB | peak, first run MiB | peak, re-run MiB |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['objects']:,} | {r['partitions']} | {r['taskRuns']} | {r['rssAtStartMiB']} | "
                f"{r['peakFirstMiB']} | {r['peakRerunMiB']} |"
            )
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=2))
        return 0
    if not (args.endpoint_url and args.config and args.report and args.out):
        parser.error("--endpoint-url, --config, --report and --out are required (or --memory)")
    return _child(args)


if __name__ == "__main__":
    raise SystemExit(main())
