"""The target table request, built from the SOURCE table's own description (pure: no AWS calls).

Kept apart from tasks/provision/dynamodb.py (the service's AWS calls) so both stay readable; that module
re-exports these names.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig, TableSpec
from tasks.aws import tag_list
from tasks.errors import PreflightError

STREAM_VIEW = "NEW_AND_OLD_IMAGES"


# ---------------------------------------------------------------- pure: source description -> request


def _key(desc_schema: list[dict[str, str]], kind: str) -> str | None:
    for k in desc_schema:
        if k["KeyType"] == kind:
            return k["AttributeName"]
    return None


def _attr_type(source_desc: dict[str, Any], name: str | None) -> str | None:
    for a in source_desc.get("AttributeDefinitions", []):
        if a["AttributeName"] == name:
            return str(a["AttributeType"])
    return None


def billing_mode(desc: dict[str, Any]) -> str:
    """PROVISIONED or PAY_PER_REQUEST (tables created before on-demand existed have no summary)."""
    return str(desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"))


def check_spec_against_source(spec: TableSpec, source_desc: dict[str, Any], index: int) -> str | None:
    """The first config field that contradicts the live source table, as a one-line message, or None."""
    where = f"dynamodbTables[{index}] ({spec.name})"
    schema = source_desc.get("KeySchema", [])
    for role, json_key, given, given_type in (
        ("hash", "hashKey", spec.hash_key, spec.hash_key_type),
        ("range", "rangeKey", spec.range_key, spec.range_key_type),
    ):
        actual = _key(schema, role.upper())
        if given is not None and given != actual:
            if actual is None:
                return f"{where}: {json_key} {given!r} contradicts the source table, which has no {role} key; remove it"
            return (
                f"{where}: {json_key} {given!r} contradicts the source table's {role} key {actual!r}; "
                "remove it or fix it"
            )
        actual_type = _attr_type(source_desc, actual)
        if given_type is not None and given_type != actual_type:
            return (
                f"{where}: {json_key}Type {given_type!r} contradicts the source table's {role} key type "
                f"{actual_type!r}; remove it or fix it"
            )
    mode = billing_mode(source_desc)
    throughput = source_desc.get("ProvisionedThroughput", {})
    for field, value, units in (
        ("readCapacity", spec.read_capacity, "ReadCapacityUnits"),
        ("writeCapacity", spec.write_capacity, "WriteCapacityUnits"),
    ):
        if value is None:
            continue
        if mode == "PAY_PER_REQUEST":
            return (
                f"{where}: {field} {value} contradicts the source table's billing mode PAY_PER_REQUEST "
                "(no provisioned capacity); remove it"
            )
        source_value = throughput.get(units)
        if value != source_value:
            kind = "read" if field == "readCapacity" else "write"
            return (
                f"{where}: {field} {value} contradicts the source table's {kind} capacity {source_value}; "
                "remove it or fix it (scalingFactor scales the target)"
            )
    return None


def _projection(p: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ProjectionType": p.get("ProjectionType", "ALL")}
    if p.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = list(p["NonKeyAttributes"])
    return out


def _scaled(spec: TableSpec, throughput: dict[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": spec.scaled(int(throughput.get("ReadCapacityUnits") or 1)),
        "WriteCapacityUnits": spec.scaled(int(throughput.get("WriteCapacityUnits") or 1)),
    }


def _spec_index(cfg: MigrationConfig, spec: TableSpec) -> int:
    for i, t in enumerate(cfg.dynamodb_tables):
        if t.name == spec.name:
            return i
    return 0


def target_table_request(
    source_desc: dict[str, Any],
    source_ttl: dict[str, Any],
    spec: TableSpec,
    cfg: MigrationConfig,
    kms_key_arn: str,
) -> dict[str, Any]:
    """CreateTable kwargs for the target: the source's keys and indexes, scaled capacity, stream, CMK, tags.

    `source_ttl` is describe_time_to_live's output; TTL itself is enabled after creation (CreateTable
    has no TTL field), but it is accepted here so callers pass the whole source truth in one place.
    """
    problem = check_spec_against_source(spec, source_desc, _spec_index(cfg, spec))
    if problem:
        raise PreflightError(problem)
    mode = billing_mode(source_desc)
    req: dict[str, Any] = {
        "TableName": cfg.target_name(spec.name),
        "KeySchema": [dict(k) for k in source_desc["KeySchema"]],
        "AttributeDefinitions": [dict(a) for a in source_desc["AttributeDefinitions"]],
        "BillingMode": mode,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW},
        "SSESpecification": {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_key_arn},
        "Tags": tag_list(cfg.tags()),
    }
    if mode == "PROVISIONED":
        req["ProvisionedThroughput"] = _scaled(spec, source_desc.get("ProvisionedThroughput", {}))
    gsis = []
    for g in source_desc.get("GlobalSecondaryIndexes", []) or []:
        gsi: dict[str, Any] = {
            "IndexName": g["IndexName"],
            "KeySchema": [dict(k) for k in g["KeySchema"]],
            "Projection": _projection(g.get("Projection", {})),
        }
        if mode == "PROVISIONED":
            gsi["ProvisionedThroughput"] = _scaled(spec, g.get("ProvisionedThroughput", {}))
        gsis.append(gsi)
    if gsis:
        req["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {
            "IndexName": li["IndexName"],
            "KeySchema": [dict(k) for k in li["KeySchema"]],
            "Projection": _projection(li.get("Projection", {})),
        }
        for li in source_desc.get("LocalSecondaryIndexes", []) or []
    ]
    if lsis:
        req["LocalSecondaryIndexes"] = lsis
    table_class = source_desc.get("TableClassSummary", {}).get("TableClass")
    if table_class:
        req["TableClass"] = table_class
    return req


def backfill_request(req: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request of a new target: on-demand while the backfill writes it, whatever its steady state.

    A provisioned target at the source's capacity x scalingFactor would bound the backfill at that many writes a
    second (2,500 items into 10 WCU: four minutes; a terabyte: months). On-demand serves a new table's first 4,000
    writes a second at once and costs per write; `settle_capacity` then switches it to the steady `req` (AWS allows
    on-demand -> provisioned at any time, provisioned -> on-demand four times in 24 hours: never needed here).
    """
    if req["BillingMode"] != "PROVISIONED":
        return req
    out = {k: v for k, v in req.items() if k != "ProvisionedThroughput"}
    out["BillingMode"] = "PAY_PER_REQUEST"
    if req.get("GlobalSecondaryIndexes"):
        out["GlobalSecondaryIndexes"] = [
            {k: v for k, v in g.items() if k != "ProvisionedThroughput"} for g in req["GlobalSecondaryIndexes"]
        ]
    return out


def _ttl_on(ttl: dict[str, Any]) -> bool:
    return ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")


def ttl_attribute(source_ttl: dict[str, Any], configured: str | None = None) -> str | None:
    """The TTL attribute the target should expire items on, or None for no TTL.

    The source's own setting, mirrored exactly (a target with TTL its source lacks would delete every
    copied item whose attribute holds a past epoch, days after cutover); only the config's explicit
    `ttlAttribute` may ask for something else.
    """
    if configured:
        return configured
    d = source_ttl.get("TimeToLiveDescription", source_ttl)
    if _ttl_on(d) and d.get("AttributeName"):
        return str(d["AttributeName"])
    return None


def ttl_plan(current: dict[str, Any], want: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The one UpdateTimeToLive to make now (or None) and the drift that remains after it (or None).

    AWS allows one UpdateTimeToLive per table per hour ("Any additional UpdateTimeToLive calls for the same
    table during this one hour duration result in a ValidationException", API reference), so changing the
    attribute (off, then on) takes two runs: this one turns the old attribute off, a later one turns the
    new one on.
    """
    on, attr = _ttl_on(current), current.get("AttributeName")
    status = current.get("TimeToLiveStatus", "DISABLED")
    if want is None:
        if not on:
            return None, None
        return {"Enabled": False, "AttributeName": attr}, None
    if on and attr == want:
        return None, None
    if on:
        return {"Enabled": False, "AttributeName": attr}, (
            f"TTL was on {attr!r}, wanted on {want!r}: turned off now; turning it on takes another run at least "
            "an hour later (UpdateTimeToLive allows one change per table per hour)"
        )
    if status == "DISABLING":
        return None, f"TTL is still DISABLING; it is turned on {want!r} by a run an hour or more after the last change"
    return {"Enabled": True, "AttributeName": want}, None


def ttl_summary(source_ttl: dict[str, Any]) -> str:
    d = source_ttl.get("TimeToLiveDescription", source_ttl)
    status = d.get("TimeToLiveStatus", "DISABLED")
    return f"{status} on {d['AttributeName']}" if d.get("AttributeName") else str(status)


def ttl_drift(messages: list[str], ttl: dict[str, Any], want: str | None) -> dict[str, Any] | None:
    """What is left to change on the target's TTL; `targetMayDelete` when the target may expire items that
    the source (or the config) keeps: TTL on where none is wanted, or on another attribute."""
    if not messages:
        return None
    on = ttl.get("status") in ("ENABLED", "ENABLING")
    return {"message": "; ".join(messages), "targetMayDelete": on and ttl.get("attribute") != want}


def applied(fix: str, out: dict[str, Any], req: dict[str, Any], want_ttl: str | None = None) -> bool:
    """Whether the read-back shows a repair took effect (only the ones a backend may silently ignore)."""
    if fix == "ttl":
        on = out["ttl"]["status"] in ("ENABLED", "ENABLING")
        return on and out["ttl"]["attribute"] == want_ttl if want_ttl else not on
    if fix == "sse":
        return bool(
            out["sse"]["type"] == "KMS" and out["sse"]["kmsKeyArn"] == req["SSESpecification"]["KMSMasterKeyId"]
        )
    if fix == "stream":
        return bool(out["streamViewType"] == STREAM_VIEW)
    if fix == "pitr":
        return bool(out["pitr"] == "ENABLED")
    return True
