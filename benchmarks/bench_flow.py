"""The migrate flow itself, measured as a user runs it: bench_move.py's `s3-flow` step (and its re-run).

    python benchmarks/bench_flow.py --endpoint-url URL --config CFG.json --report DIR --out OUT.json

runs `flows.migrate.migrate` twice (a first run and a re-run) against the moto server bench_move.py started, in a
process of its own with its own Prefect home, so its temporary Prefect server, its database and the flow's own
CPU never share this benchmark's process. For each run it writes to OUT.json what the flow reported (the bucket's
backfill `durationSeconds`, verdict, copied/skipped) and what Prefect recorded: task runs in all and per task,
seconds from the flow run's start to the first S3 backfill copy, and the backfill's wall from the planning task's
start to the last backfill copy's end. bench_move.py times s5cmd on the same server in the same repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def _child(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from config.options import RunOptions
    from flows.migrate import migrate

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
                **_timeline(state.state_details.flow_run_id),
            }
        )
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--report", required=True, help="directory for the two runs' reports")
    parser.add_argument("--out", required=True, help="where to write the measurements (JSON)")
    return _child(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
