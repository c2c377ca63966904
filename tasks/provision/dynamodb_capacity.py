"""The target table's capacity: on-demand while its backfill writes it, then its steady state, switched once.

A provisioned target at the source's capacity x scalingFactor would bound the backfill at that many writes a second;
`dynamodb_request.backfill_request` creates it on-demand, and `settle_capacity` gives it the steady capacity when
its backfill is done (the same UpdateTable provisioning uses to repair a billing mode that drifted).
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig, TableSpec
from tasks.aws import Backend
from tasks.provision.dynamodb import describe_table, read_source, switch_billing, wait_active
from tasks.provision.dynamodb_request import billing_mode, target_table_request
from tasks.steps import step

CAPACITY_KEYS = ("billingMode", "readCapacity", "writeCapacity", "gsiCapacity")  # what settling changes


def _units(throughput: dict[str, Any]) -> tuple[Any, Any]:
    return throughput.get("ReadCapacityUnits"), throughput.get("WriteCapacityUnits")


def _steady(out: dict[str, Any], req: dict[str, Any]) -> bool:
    """The read-back shows the request's capacity on the table and on every one of its GSIs."""
    gsis = {g["IndexName"]: _units(g["ProvisionedThroughput"]) for g in req.get("GlobalSecondaryIndexes", [])}
    have = {name: (c["readCapacity"], c["writeCapacity"]) for name, c in out["gsiCapacity"].items()}
    return (out["readCapacity"], out["writeCapacity"]) == _units(req["ProvisionedThroughput"]) and all(
        have.get(name) == units for name, units in gsis.items()
    )


@step("settle-capacity", run_name="settle-capacity-{spec.name}")
def settle_capacity(backend: Backend, cfg: MigrationConfig, spec: TableSpec, kms_key_arn: str) -> dict[str, Any]:
    """After its backfill, give the target its steady capacity (the source's x scalingFactor), once: idempotent.

    The target was created on-demand for the backfill (dynamodb_request.backfill_request). Returns the billing
    read back: `settled` is what the table now shows, never what was asked.
    """
    source_desc, source_ttl = read_source(backend, cfg, spec)
    req = target_table_request(source_desc, source_ttl, spec, cfg, kms_key_arn)
    name = req["TableName"]
    ddb = backend.client("dynamodb", cfg.target_region)
    switched = billing_mode(wait_active(ddb, name)) != req["BillingMode"]
    if switched:
        switch_billing(ddb, name, req)
    out = describe_table(backend, cfg.target_region, name)
    settled = out["billingMode"] == req["BillingMode"] and (req["BillingMode"] != "PROVISIONED" or _steady(out, req))
    unsupported = {} if settled or not switched else {
        "billingMode": f"UpdateTable to {req['BillingMode']} was accepted but the read-back shows "
        f"{out['billingMode']} (read {out['readCapacity']}, write {out['writeCapacity']}, GSIs {out['gsiCapacity']})"
    }  # fmt: skip
    return {
        "table": name,
        "switched": switched,
        "settled": settled,
        **{k: out[k] for k in CAPACITY_KEYS},
        "notSupportedByBackend": unsupported,
    }
