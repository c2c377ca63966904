"""What the plan reads back before it prices anything: what is really there (the checkpoint table, our replication
rule on each source bucket), each table's size where DescribeTable does not report it (a small sample of items),
and the rates that pace a table's backfill; then each store's estimate (tasks/estimate.py) and its lines.

Read-only: Describe/Get/Scan calls only, so `--plan` changes nothing.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig, TableSpec
from config.prices import PriceTable, as_json, load_prices
from config.settings import SETTINGS
from tasks import estimate as est
from tasks import plan_count
from tasks.aws import Backend, bucket_arn
from tasks.move.dynamodb_import_plan import import_blocked
from tasks.move.dynamodb_plan import item_size, table_read_rate, target_write_rate
from tasks.move.s3_plan import replication_rule, replication_rule_id, rule_drift
from tasks.names import resource_names
from tasks.provision import dynamodb, iam
from tasks.provision.common import lookup
from tasks.provision.dynamodb_request import backfill_request, target_table_request
from tasks.provision.s3 import get_replication
from tasks.steps import step

SAMPLE_ITEMS = 100  # Scan Limit of the size sample: one page, a few read units
COUNT_CAP = 100_000  # a COUNT scan stops here when ItemCount is not reported (the count is then "at least")


def checkpoint_action(backend: Backend, cfg: MigrationConfig) -> str:
    """The checkpoint table as it is: ours already (a resumed run), another owner's, or to create."""
    found = dynamodb.find_table(backend, cfg, resource_names(cfg).checkpoint_table, with_data=False)
    if found is None:
        return "create"
    if found["owned"]:
        return "exists (ours, holds this migration's progress: a run resumes from it)"
    return "exists, NOT ours (tags lack ManagedBy/MigrationBatch/Environment): provisioning will refuse it"


def replication_action(backend: Backend, cfg: MigrationConfig, bucket: str, target: str) -> str:
    """Our rule on a source bucket as it is: absent (put), equal to what a run would put (in place), or drifted."""
    current = get_replication(backend.client("s3", cfg.source_region), bucket) or {}
    rule_id = replication_rule_id(cfg)
    rules = list(current.get("Rules", []))
    ours = next((r for r in rules if r.get("ID") == rule_id), None)
    if ours is None:
        return f"put replication rule to {target}"
    names = resource_names(cfg)
    key = lookup(backend.client("kms", cfg.target_region).describe_key, KeyId=names.kms_alias)
    key_arn = str(key["KeyMetadata"]["Arn"]) if key else ""
    desired = replication_rule(rule_id, int(ours.get("Priority") or 1), bucket_arn(target, cfg.target_region), key_arn)
    drift = rule_drift(desired, ours)
    # A path the read-back lacks is one the backend does not return (moto keeps no DeleteMarkerReplication): not a
    # difference we can see, but a run puts the rule again; a path it returns with another value is real drift.
    returned = [p for p in drift if _has(ours, p)]
    unseen = [p for p in drift if p not in returned]
    role = iam.find_role(backend, cfg, names.replication_role)
    foreign = [r for r in rules if r.get("ID") != rule_id]
    # ensure_replication keeps another owner's role when their rules share the bucket: that is not drift.
    want_role = current.get("Role") if foreign and current.get("Role") else (role or {}).get("arn")
    role_ok = bool(want_role) and current.get("Role") == want_role
    if not returned and role_ok:
        gaps = f"; the backend returns no {', '.join(unseen)}: a run puts the rule again" if unseen else ""
        return f"replication rule to {target} in place (ours{gaps})"
    what = returned[:3] + ([] if role_ok else ["role"])
    return f"update replication rule to {target} ({', '.join(what)}{' ...' if len(returned) > 3 else ''})"


def _has(rule: dict[str, Any], dotted: str) -> bool:
    """Whether the rule holds a value at this dotted path (rule_drift's path format)."""
    node: Any = rule
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def table_size(ddb: Any, name: str, desc: dict[str, Any]) -> est.TableSize:
    """Items and bytes: DescribeTable's (approximate, refreshed about every six hours) when it reports them, else
    estimated from a sample of up to SAMPLE_ITEMS items (bytes per item x ItemCount, or x a COUNT scan's count
    where ItemCount is 0 too, as on a table younger than six hours or on moto)."""
    items, size = int(desc.get("ItemCount", 0)), int(desc.get("TableSizeBytes", 0))
    if size > 0:
        return est.TableSize(items, size, "DescribeTable (approximate)")
    page = ddb.scan(TableName=name, Limit=SAMPLE_ITEMS)
    sample = page.get("Items", [])
    if not sample:
        return est.TableSize(0, 0, "DescribeTable: 0; a Scan found no item")
    per_item = sum(item_size(i) for i in sample) / len(sample)
    how = f"estimated from a sample of {len(sample)} items ({per_item:,.0f} B each)"
    if items <= 0:
        items, capped = _count(ddb, name) if page.get("LastEvaluatedKey") else (len(sample), False)
        how += f" x {'at least ' if capped else ''}{items:,} items counted (ItemCount not reported)"
    else:
        how += f" x ItemCount {items:,}"
    return est.TableSize(items, round(per_item * items), how)


def _count(ddb: Any, name: str) -> tuple[int, bool]:
    """Items counted by a COUNT scan, stopping at COUNT_CAP; (count, whether it stopped there)."""
    total = 0
    for page in ddb.get_paginator("scan").paginate(TableName=name, Select="COUNT"):
        total += int(page.get("Count", 0))
        if total >= COUNT_CAP:
            return total, True
    return total, False


def table_rates(desc: dict[str, Any], spec: TableSpec, cfg: MigrationConfig) -> est.TableRates:
    """The backfill's pace as the run will set it: the source's read budget and the target's write capacity."""
    read, read_why = table_read_rate(desc, spec.source_read_share, spec.on_demand_read_rate)
    req = target_table_request(desc, {}, spec, cfg, "")
    backfill = backfill_request(req)  # what the backfill writes: on-demand until the capacity settles (ADR 0012)
    target = {
        "BillingModeSummary": {"BillingMode": backfill["BillingMode"]},
        "ProvisionedThroughput": backfill.get("ProvisionedThroughput"),
        "OnDemandThroughput": backfill.get("OnDemandThroughput"),
    }
    write, write_why = target_write_rate(target)
    return est.TableRates(read, read_why, write, write_why, req["BillingMode"] != "PROVISIONED")


def bucket_estimate(
    prices: PriceTable, bucket: dict[str, Any], threshold: int | None, blocked: str | None = None
) -> dict[str, Any]:
    """A planned bucket's estimate (versions are exactly the objects only where versioning was never on, or where
    CloudWatch counted them: its NumberOfObjects counts every version; it cannot tell what full validation streams)."""
    listed = plan_count.listed(bucket)
    out = est.estimate_bucket(
        prices,
        bucket["name"],
        int(bucket["objects"]),
        int(bucket["bytes"]),
        threshold,
        est.CopyWorkers(SETTINGS.migrate_task_workers, SETTINGS.s3_copy_workers),
        versions=int(bucket["objects"]) if bucket.get("versioning") == "Disabled" or not listed else None,
        blocked=blocked,
        stream=(int(bucket.get("validationStreamObjects", 0)), int(bucket.get("validationStreamBytes", 0)))
        if listed
        else (0, 0),
    )
    if not listed:
        out["assumptions"].append(
            f"objects and bytes from CloudWatch's daily metrics ({bucket['counted']}), every version counted as an "
            "object; what full validation streams is not priced (only a listing tells)"
        )
    return out


def table_estimate(
    backend: Backend, cfg: MigrationConfig, prices: PriceTable, name: str, threshold: int | None
) -> dict[str, Any]:
    """A source table's size (read back or sampled) and its estimate on the path its size and shape choose."""
    spec = next(s for s in cfg.dynamodb_tables if s.name == name)
    ddb = backend.client("dynamodb", cfg.source_region)
    desc = ddb.describe_table(TableName=name)["Table"]
    size = table_size(ddb, name, desc)
    rates = table_rates(desc, spec, cfg)
    return est.estimate_table(prices, name, size, rates, threshold, import_blocked(desc, cfg.target_region, size.bytes))


@step("estimate", retries=1)
def source_estimates(
    backend: Backend, cfg: MigrationConfig, prices_file: str | None, dynamodb_import_min_bytes: int | None
) -> dict[str, dict[str, Any]]:
    """Each table's estimate before it moves (the report sets the run's measured counts beside it; a bucket's is
    made from its backfill planning's count, tasks/report/build.estimate_vs_measured)."""
    prices = load_prices(prices_file)
    return {
        t.name: table_estimate(backend, cfg, prices, t.name, dynamodb_import_min_bytes) for t in cfg.dynamodb_tables
    }


def plan_total(prices: PriceTable, stores: list[dict[str, Any]]) -> dict[str, Any]:
    return {**est.total(stores), "prices": as_json(prices)}


def estimate_lines(store: dict[str, Any]) -> list[str]:
    """A store's estimate for the terminal: path and why, requests, transfer, cost, duration, the other path, and
    the assumptions."""
    alt = store["alternative"]
    requests = ", ".join(f"{k} {_count_text(v)}" for k, v in store["requests"].items())
    out = [
        f"    path: {store['path']} ({store['why']})",
        f"    estimate: {store['cost']}, {store['duration']}; {store['transferGB']:,} GB cross-region",
        f"    requests: {requests}",
        f"    the other path, {alt['path']}: {alt['cost']}, {alt['duration']}",
    ]
    out += [f"    assumes: {a}" for a in store["assumptions"]]
    return out


def total_lines(total: dict[str, Any]) -> list[str]:
    prices = total["prices"]
    return [
        f"  estimated total: {total['cost']}, {total['duration']}; {total['transferGB']:,} GB cross-region",
        *(f"    assumes: {a}" for a in total["assumptions"]),
        f"    prices: {prices['region']} list prices of {prices['date']} ({'; '.join(prices['origin'])})",
    ]


def _count_text(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3f}"
