"""DynamoDB validation as partitioned tasks on the flow's task runner (tasks/validate/dynamodb_partition.py):
scans first (they run while the buckets are validated), then one compare task per hash bucket; only counts and,
once per table, its mismatches come back to the flow."""

from __future__ import annotations

from typing import Any

from prefect import unmapped

from config.model import MigrationConfig
from flows.common import result_of
from tasks.aws import Backend
from tasks.names import resource_names
from tasks.provision import kms, s3
from tasks.validate import dynamodb_partition as ddb_partition


def start_table_validation(backend: Backend, cfg: MigrationConfig, run_id: str) -> dict[str, dict[str, Any]]:
    """Every table's validation plan, then both sides' scan tasks submitted, writing hashed rows to the staging
    bucket (created here, once, when there is a table) under the migration key."""
    names = resource_names(cfg)
    if not names.tables:
        return {}
    kms_arn = kms.find_key_arn(backend, cfg)
    if kms_arn is None:
        return {s: {"error": f"{names.kms_alias} not found: run the migration first"} for s in names.tables}
    staging = result_of(s3.ensure_staging_bucket.submit(backend, cfg, kms_arn))
    if staging.get("error"):
        return {s: {"error": f"staging bucket: {staging['error']}"} for s in names.tables}
    plans = {s: ddb_partition.plan_table.submit(backend, cfg, s, t) for s, t in names.tables.items()}
    started: dict[str, dict[str, Any]] = {}
    for s, fut in plans.items():
        plan = result_of(fut)
        if plan.get("error"):
            started[s] = plan
            continue
        scans = [ddb_partition.scan_side.submit(backend, cfg, plan, side, group, run_id, kms_arn)
                 for side in ddb_partition.SIDES for group in plan["groups"]]  # fmt: skip
        started[s] = {"plan": plan, "scans": scans}
    return started


def finish_table_validation(
    backend: Backend, cfg: MigrationConfig, run_id: str, started: dict[str, dict[str, Any]], frames: dict[str, Any]
) -> list[dict[str, Any]]:
    """Once a table's scans are done, one compare task per hash bucket (mismatches written where found, counts
    back); then its counts added up and its mismatches read back once into `frames`, as for buckets."""
    names = resource_names(cfg)
    b, c = unmapped(backend), unmapped(cfg)
    compares: dict[str, list[Any]] = {}
    for s, st in started.items():
        if "plan" not in st:
            continue
        st["scans"] = [result_of(f) for f in st["scans"]]
        if not any(r.get("error") for r in st["scans"]):  # a side missing rows would read as missing items
            expect = ddb_partition.expected_rows(st["scans"])
            plan, buckets = unmapped(st["plan"]), list(range(st["plan"]["buckets"]))
            compares[s] = list(ddb_partition.compare_bucket.map(b, c, plan, buckets, run_id, unmapped(expect)))
    rows: list[dict[str, Any]] = []
    for s, st in started.items():
        if "plan" not in st:
            rows.append({"source": s, "target": names.tables[s], "error": st["error"]})
            continue
        done = [result_of(f) for f in compares.get(s, [])]
        rows.append(ddb_partition.add_table_counts(st["plan"], st["scans"], done))
        frames[s] = ddb_partition.collect_table(backend, cfg, st["plan"], run_id)
    return rows
