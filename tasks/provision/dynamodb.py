"""Target DynamoDB tables, built from the SOURCE table's own description (the config only confirms it).

The key schema, indexes and capacity come from describe_table in the source region, because a config
that disagrees with the live table is a mistake we must report, not a schema we should invent.
"""

from __future__ import annotations

import time
from typing import Any

from config.model import MigrationConfig, TableSpec
from tasks.aws import Backend, error_code, is_not_found, tag_dict, tag_list
from tasks.errors import CollisionError, PreflightError
from tasks.steps import step

STREAM_VIEW = "NEW_AND_OLD_IMAGES"
_WAIT = {"Delay": 2, "MaxAttempts": 450}  # moto answers ACTIVE at once; AWS takes seconds to minutes


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
    hash_key, range_key = _key(schema, "HASH"), _key(schema, "RANGE")
    if spec.hashKey is not None and spec.hashKey != hash_key:
        return (
            f"{where}: hashKey {spec.hashKey!r} contradicts the source table's hash key {hash_key!r}; "
            "remove it or fix it"
        )
    if spec.hashKeyType is not None and spec.hashKeyType != _attr_type(source_desc, hash_key):
        return (
            f"{where}: hashKeyType {spec.hashKeyType!r} contradicts the source table's hash key type "
            f"{_attr_type(source_desc, hash_key)!r}; remove it or fix it"
        )
    if spec.rangeKey is not None and spec.rangeKey != range_key:
        if range_key is None:
            return (
                f"{where}: rangeKey {spec.rangeKey!r} contradicts the source table, which has no range key; remove it"
            )
        return (
            f"{where}: rangeKey {spec.rangeKey!r} contradicts the source table's range key {range_key!r}; "
            "remove it or fix it"
        )
    if spec.rangeKeyType is not None and spec.rangeKeyType != _attr_type(source_desc, range_key):
        return (
            f"{where}: rangeKeyType {spec.rangeKeyType!r} contradicts the source table's range key type "
            f"{_attr_type(source_desc, range_key)!r}; remove it or fix it"
        )
    mode = billing_mode(source_desc)
    throughput = source_desc.get("ProvisionedThroughput", {})
    for field, value, units in (
        ("readCapacity", spec.readCapacity, "ReadCapacityUnits"),
        ("writeCapacity", spec.writeCapacity, "WriteCapacityUnits"),
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
    for i, t in enumerate(cfg.dynamodbTables):
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


# ---------------------------------------------------------------- AWS calls


def _describe(ddb: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(ddb.describe_table(TableName=name)["Table"])
    except Exception as err:
        if is_not_found(err):
            return None
        raise


def _wait_active(ddb: Any, name: str) -> dict[str, Any]:
    """Wait until the table and all its GSIs are ACTIVE (UpdateTable refuses to run otherwise)."""
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig=_WAIT)
    for _ in range(_WAIT["MaxAttempts"]):
        desc = dict(ddb.describe_table(TableName=name)["Table"])
        busy = desc.get("TableStatus") != "ACTIVE" or any(
            g.get("IndexStatus", "ACTIVE") != "ACTIVE" for g in desc.get("GlobalSecondaryIndexes", []) or []
        )
        if not busy:
            return desc
        time.sleep(_WAIT["Delay"])
    raise TimeoutError(f"DynamoDB table {name} did not become ACTIVE")


def _tags(ddb: Any, arn: str) -> dict[str, str]:
    tags: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        resp = ddb.list_tags_of_resource(**kwargs)
        tags.extend(resp.get("Tags", []))
        if not resp.get("NextToken"):
            return tag_dict(tags)
        kwargs["NextToken"] = resp["NextToken"]


def _read_source(backend: Backend, cfg: MigrationConfig, spec: TableSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    ddb = backend.client("dynamodb", cfg.sourceRegion)
    desc = _describe(ddb, spec.name)
    if desc is None:
        raise PreflightError(
            f"dynamodbTables[{_spec_index(cfg, spec)}] ({spec.name}): no such table in {cfg.sourceRegion}; "
            "fix the name or the sourceRegion"
        )
    ttl = dict(ddb.describe_time_to_live(TableName=spec.name))
    ttl.pop("ResponseMetadata", None)
    return desc, ttl


def _enable_stream(ddb: Any, name: str, spec: dict[str, Any]) -> str | None:
    """Turn the stream on; None when done, else the backend's refusal (moto 5.2 will not re-enable a stream
    that was switched off: 'Cannot enable stream'). Transient ResourceInUse on AWS gets a few retries."""
    for attempt in range(3):
        try:
            ddb.update_table(TableName=name, StreamSpecification=spec)
            return None
        except Exception as err:
            if error_code(err) != "ResourceInUseException":
                raise
            if attempt == 2:
                return f"UpdateTable refused to enable the stream ({error_code(err)}: {err})"
            _wait_active(ddb, name)
            time.sleep(0.2 * attempt)
    return None


def _converge(
    ddb: Any,
    name: str,
    desc: dict[str, Any],
    req: dict[str, Any],
    ttl_attr: str | None,
    tags: dict[str, str],
    unsupported: dict[str, str],
    ttl_drift: list[str],
) -> list[str]:
    """Put back whatever differs from the request; each UpdateTable is one change (AWS allows no more)."""
    fixed: list[str] = []
    arn = desc["TableArn"]

    missing = {k: v for k, v in tag_dict(req["Tags"]).items() if tags.get(k) != v}
    if missing:
        ddb.tag_resource(ResourceArn=arn, Tags=tag_list(missing))
        fixed.append("tags")

    stream = desc.get("StreamSpecification", {})
    if not stream.get("StreamEnabled") or stream.get("StreamViewType") != STREAM_VIEW:
        if stream.get("StreamEnabled"):  # a stream of another view type must be switched off first
            ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
            _wait_active(ddb, name)
        refused = _enable_stream(ddb, name, req["StreamSpecification"])
        desc = _wait_active(ddb, name)
        if refused:
            unsupported["stream"] = refused
        else:
            fixed.append("stream")

    want_mode = req["BillingMode"]
    if billing_mode(desc) != want_mode:
        kwargs: dict[str, Any] = {"TableName": name, "BillingMode": want_mode}
        if want_mode == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = req["ProvisionedThroughput"]
            gsi_updates = [
                {"Update": {"IndexName": g["IndexName"], "ProvisionedThroughput": g["ProvisionedThroughput"]}}
                for g in req.get("GlobalSecondaryIndexes", [])
            ]
            if gsi_updates:
                kwargs["GlobalSecondaryIndexUpdates"] = gsi_updates
        ddb.update_table(**kwargs)
        desc = _wait_active(ddb, name)
        fixed.append("billingMode")
    elif want_mode == "PROVISIONED":
        have = desc.get("ProvisionedThroughput", {})
        want = req["ProvisionedThroughput"]
        if any(have.get(k) != v for k, v in want.items()):
            ddb.update_table(TableName=name, ProvisionedThroughput=want)
            desc = _wait_active(ddb, name)
            fixed.append("capacity")
        have_gsis = {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes", []) or []}
        for g in req.get("GlobalSecondaryIndexes", []):
            cur = have_gsis.get(g["IndexName"], {}).get("ProvisionedThroughput", {})
            if g["IndexName"] in have_gsis and any(cur.get(k) != v for k, v in g["ProvisionedThroughput"].items()):
                ddb.update_table(
                    TableName=name,
                    GlobalSecondaryIndexUpdates=[
                        {
                            "Update": {
                                "IndexName": g["IndexName"],
                                "ProvisionedThroughput": g["ProvisionedThroughput"],
                            }
                        }
                    ],
                )
                desc = _wait_active(ddb, name)
                fixed.append(f"capacity:{g['IndexName']}")

    sse = desc.get("SSEDescription") or {}
    if sse.get("SSEType") != "KMS" or sse.get("KMSMasterKeyArn") != req["SSESpecification"]["KMSMasterKeyId"]:
        ddb.update_table(TableName=name, SSESpecification=req["SSESpecification"])
        desc = _wait_active(ddb, name)
        fixed.append("sse")

    ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    change, drift = ttl_plan(ttl, ttl_attr)
    if change is not None:
        try:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=change)
            if drift is None:
                fixed.append("ttl")
        except Exception as err:
            # The once-an-hour rule (or any refusal of this change): report it, never fail the run on it.
            if error_code(err) != "ValidationException":
                raise
            drift = f"UpdateTimeToLive {change} refused ({err}); a later run retries it"
    if drift:
        ttl_drift.append(drift)

    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    if pitr != "ENABLED":
        _enable_pitr(ddb, name)
        fixed.append("pitr")
    return fixed


def _enable_pitr(ddb: Any, name: str) -> None:
    """Right after CreateTable, AWS answers ContinuousBackupsUnavailableException for a while: retry."""
    for attempt in range(30):
        try:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
            return
        except Exception as err:
            if error_code(err) != "ContinuousBackupsUnavailableException" or attempt == 29:
                raise
            time.sleep(min(2 + attempt, 10))


def _ttl_summary(source_ttl: dict[str, Any]) -> str:
    d = source_ttl.get("TimeToLiveDescription", source_ttl)
    status = d.get("TimeToLiveStatus", "DISABLED")
    return f"{status} on {d['AttributeName']}" if d.get("AttributeName") else str(status)


@step("provision-table", run_name="provision-table-{spec.name}")
def ensure_table(backend: Backend, cfg: MigrationConfig, spec: TableSpec, kms_key_arn: str) -> dict[str, Any]:
    """Create or converge one target table from its source's description; return it read back."""
    source_desc, source_ttl = _read_source(backend, cfg, spec)
    req = target_table_request(source_desc, source_ttl, spec, cfg, kms_key_arn)
    name = req["TableName"]
    ddb = backend.client("dynamodb", cfg.targetRegion)
    created = False

    desc = _describe(ddb, name)
    if desc is None:
        try:
            ddb.create_table(**req)
            created = True
        except Exception as err:
            if error_code(err) != "ResourceInUseException":  # a parallel run created it first
                raise
    desc = _wait_active(ddb, name)
    tags = _tags(ddb, desc["TableArn"])
    if not created and not cfg.owns(tags):
        raise CollisionError(
            f"DynamoDB table {name} already exists in {cfg.targetRegion} but this migration did not "
            "create it (tags lack ManagedBy/MigrationBatch/Environment); delete it or change "
            "timestamp/environmentSuffix"
        )
    unsupported: dict[str, str] = {}
    drift: list[str] = []
    want_ttl = ttl_attribute(source_ttl, spec.ttlAttribute)
    fixed = _converge(ddb, name, desc, req, want_ttl, tags, unsupported, drift)

    source_throughput = source_desc.get("ProvisionedThroughput", {})
    source_mode = billing_mode(source_desc)
    out = describe_table(backend, cfg.targetRegion, name)
    # A repair the backend accepted but did not apply is reported as measured, not claimed as done.
    for f in fixed:
        if not _applied(f, out, req, want_ttl):
            unsupported[f] = "the backend accepted the change but the read-back does not show it"
    return {
        "source": spec.name,
        **out,
        "capacityFrom": {
            "billingMode": source_mode,
            "readCapacity": source_throughput.get("ReadCapacityUnits") if source_mode == "PROVISIONED" else None,
            "writeCapacity": source_throughput.get("WriteCapacityUnits") if source_mode == "PROVISIONED" else None,
            "scalingFactor": spec.scalingFactor,
        },
        "sourceTtl": _ttl_summary(source_ttl),
        "ttlFrom": "config ttlAttribute" if spec.ttlAttribute else "source",
        "ttlDrift": _ttl_drift(drift, out["ttl"], want_ttl),
        "created": created,
        "repaired": [] if created else [f for f in fixed if f not in unsupported],
        "notSupportedByBackend": unsupported,
    }


def _ttl_drift(messages: list[str], ttl: dict[str, Any], want: str | None) -> dict[str, Any] | None:
    """What is left to change on the target's TTL; `targetMayDelete` when the target may expire items that
    the source (or the config) keeps: TTL on where none is wanted, or on another attribute."""
    if not messages:
        return None
    on = ttl.get("status") in ("ENABLED", "ENABLING")
    return {"message": "; ".join(messages), "targetMayDelete": on and ttl.get("attribute") != want}


def _applied(fix: str, out: dict[str, Any], req: dict[str, Any], want_ttl: str | None = None) -> bool:
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


def describe_table(backend: Backend, region: str, name: str) -> dict[str, Any]:
    """The table's settings as the backend reports them (read-only; reused by the report)."""
    ddb = backend.client("dynamodb", region)
    desc = dict(ddb.describe_table(TableName=name)["Table"])
    mode = billing_mode(desc)
    throughput = desc.get("ProvisionedThroughput", {})
    ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    sse = desc.get("SSEDescription", {})
    stream = desc.get("StreamSpecification", {})
    return {
        "name": name,
        "arn": desc["TableArn"],
        "region": region,
        "status": desc.get("TableStatus"),
        "keySchema": [{"name": k["AttributeName"], "type": k["KeyType"]} for k in desc["KeySchema"]],
        "attributeTypes": {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])},
        "gsis": sorted(g["IndexName"] for g in desc.get("GlobalSecondaryIndexes", []) or []),
        "gsiCapacity": {
            g["IndexName"]: {
                "readCapacity": g.get("ProvisionedThroughput", {}).get("ReadCapacityUnits"),
                "writeCapacity": g.get("ProvisionedThroughput", {}).get("WriteCapacityUnits"),
            }
            for g in desc.get("GlobalSecondaryIndexes", []) or []
        },
        "lsis": sorted(li["IndexName"] for li in desc.get("LocalSecondaryIndexes", []) or []),
        "indexProjections": {
            i["IndexName"]: _projection(i.get("Projection", {}))
            for i in [*(desc.get("GlobalSecondaryIndexes") or []), *(desc.get("LocalSecondaryIndexes") or [])]
        },
        "billingMode": mode,
        "readCapacity": throughput.get("ReadCapacityUnits") if mode == "PROVISIONED" else None,
        "writeCapacity": throughput.get("WriteCapacityUnits") if mode == "PROVISIONED" else None,
        "streamArn": desc.get("LatestStreamArn") if stream.get("StreamEnabled") else None,
        "streamViewType": stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
        "ttl": {"attribute": ttl.get("AttributeName"), "status": ttl.get("TimeToLiveStatus")},
        "pitr": backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus"),
        "sse": {
            "type": sse.get("SSEType"),
            "status": sse.get("Status"),
            "kmsKeyArn": sse.get("KMSMasterKeyArn"),
        },
        "tags": _tags(ddb, desc["TableArn"]),
    }
