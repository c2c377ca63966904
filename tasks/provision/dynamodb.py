"""Target DynamoDB tables, built from the SOURCE table's own description (the config only confirms it).

The key schema, indexes and capacity come from describe_table in the source region, because a config
that disagrees with the live table is a mistake we must report, not a schema we should invent.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError, WaiterError
from botocore.waiter import WaiterModel, create_waiter_with_client

from config.model import MigrationConfig, TableSpec
from tasks.aws import Backend, error_code, is_not_found, tag_dict, tag_list
from tasks.errors import CollisionError, PreflightError
from tasks.provision.common import ALREADY_GONE, FAILED, REMOVED, lookup
from tasks.provision.dynamodb_request import (  # noqa: F401 (re-exported: the service's one home)
    STREAM_VIEW,
    _projection,
    _spec_index,
    applied,
    backfill_request,
    billing_mode,
    check_spec_against_source,
    target_table_request,
    ttl_attribute,
    ttl_drift,
    ttl_plan,
    ttl_summary,
)
from tasks.steps import step

_WAIT = {"Delay": 2, "MaxAttempts": 450}  # moto answers ACTIVE at once; AWS takes seconds to minutes
_STREAM_WAIT = {"Delay": 1, "MaxAttempts": 300}
# botocore's TableExists waiter looks at TableStatus only, and DynamoDB Streams has no waiter at all; the same
# botocore waiter machinery, with two more models: the table AND its GSIs ACTIVE (UpdateTable refuses to run
# while an index is CREATING/UPDATING), and a stream ENABLED. A GSI without an IndexStatus counts as ACTIVE.
_WAITERS = WaiterModel(
    {
        "version": 2,
        "waiters": {
            "TableAndIndexesActive": {
                "operation": "DescribeTable",
                "delay": _WAIT["Delay"],
                "maxAttempts": _WAIT["MaxAttempts"],
                "acceptors": [
                    {
                        "state": "success",
                        "matcher": "path",
                        "argument": "Table.TableStatus == 'ACTIVE' && "
                        "!(Table.GlobalSecondaryIndexes[?IndexStatus && IndexStatus != 'ACTIVE'])",
                        "expected": True,
                    },
                    {"state": "retry", "matcher": "error", "expected": "ResourceNotFoundException"},
                ],
            },
            "StreamEnabled": {
                "operation": "DescribeStream",
                "delay": _STREAM_WAIT["Delay"],
                "maxAttempts": _STREAM_WAIT["MaxAttempts"],
                "acceptors": [
                    {"state": "success", "matcher": "path", "argument": "StreamDescription.StreamStatus",
                     "expected": "ENABLED"},
                ],
            },
        },
    }
)  # fmt: skip


# ---------------------------------------------------------------- AWS calls


def _describe(ddb: Any, name: str) -> dict[str, Any] | None:
    resp = lookup(ddb.describe_table, TableName=name)
    return dict(resp["Table"]) if resp else None


def _wait(client: Any, waiter: str, what: str, config: dict[str, int], **kwargs: Any) -> None:
    """Run one of _WAITERS; running out of attempts is a TimeoutError naming `what` and its last state, any
    other error the call answered is raised as that ClientError."""
    try:
        create_waiter_with_client(waiter, _WAITERS, client).wait(WaiterConfig=config, **kwargs)
    except WaiterError as err:
        if err.last_response and "Error" in err.last_response and "Max attempts" not in str(err.kwargs["reason"]):
            raise ClientError(err.last_response, _WAITERS.get_waiter(waiter).operation) from None
        last: dict[str, Any] = dict(err.last_response or {})
        wait_s = config["Delay"] * config["MaxAttempts"]
        raise TimeoutError(
            f"{what} not ready after {config['MaxAttempts']} checks (~{wait_s} s); last seen: {_last_state(last)}"
        ) from None


def _last_state(resp: dict[str, Any]) -> str:
    """A waiter's last answer in a few words: the table's and its GSIs' status, the stream's, or the error."""
    if "Table" in resp:
        gsis = [f"{g['IndexName']} {g.get('IndexStatus')}" for g in resp["Table"].get("GlobalSecondaryIndexes") or []]
        return ", ".join([f"table {resp['Table'].get('TableStatus')}", *gsis])
    if "StreamDescription" in resp:
        return f"stream {resp['StreamDescription'].get('StreamStatus')}"
    return str(resp.get("Error", {}).get("Code", "no answer"))


def wait_active(ddb: Any, name: str) -> dict[str, Any]:
    """Wait until the table and all its GSIs are ACTIVE (UpdateTable refuses to run otherwise); raise
    TimeoutError if they are not within _WAIT, and return the table's description."""
    _wait(ddb, "TableAndIndexesActive", f"DynamoDB table {name} (or one of its GSIs)", _WAIT, TableName=name)
    return dict(ddb.describe_table(TableName=name)["Table"])


def wait_stream_enabled(streams: Any, arn: str) -> dict[str, Any]:
    """Wait until the stream is ENABLED (TimeoutError after _STREAM_WAIT); return its description."""
    _wait(streams, "StreamEnabled", f"stream {arn}", _STREAM_WAIT, StreamArn=arn, Limit=1)
    return dict(streams.describe_stream(StreamArn=arn, Limit=1)["StreamDescription"])


def table_tags(ddb: Any, arn: str) -> dict[str, str]:
    """All the table's tags (ListTagsOfResource pages by NextToken and has no paginator)."""
    tags: list[dict[str, str]] = []
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        resp = ddb.list_tags_of_resource(**kwargs)
        tags.extend(resp.get("Tags", []))
        if not resp.get("NextToken"):
            return tag_dict(tags)
        kwargs["NextToken"] = resp["NextToken"]


def read_source(backend: Backend, cfg: MigrationConfig, spec: TableSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source table and its TTL setting, read only (a missing table is a one-line PreflightError)."""
    ddb = backend.client("dynamodb", cfg.source_region)
    desc = _describe(ddb, spec.name)
    if desc is None:
        raise PreflightError(
            f"dynamodbTables[{_spec_index(cfg, spec)}] ({spec.name}): no such table in {cfg.source_region}; "
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
            wait_active(ddb, name)
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
    backfilling: bool = True,
) -> list[str]:
    """Put back whatever differs from the request; each UpdateTable is one change (AWS allows no more).

    An on-demand target whose steady state is provisioned is left on-demand while `backfilling`: its backfill writes
    it so, and `settle_capacity` switches it once, when the backfill is done.
    """
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
            wait_active(ddb, name)
        refused = _enable_stream(ddb, name, req["StreamSpecification"])
        desc = wait_active(ddb, name)
        if refused:
            unsupported["stream"] = refused
        else:
            fixed.append("stream")

    want_mode, have_mode = req["BillingMode"], billing_mode(desc)
    if have_mode != want_mode and not (want_mode == "PROVISIONED" and backfilling):
        desc = switch_billing(ddb, name, req)
        fixed.append("billingMode")
    elif want_mode == have_mode == "PROVISIONED":
        have = desc.get("ProvisionedThroughput", {})
        want = req["ProvisionedThroughput"]
        if any(have.get(k) != v for k, v in want.items()):
            ddb.update_table(TableName=name, ProvisionedThroughput=want)
            desc = wait_active(ddb, name)
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
                desc = wait_active(ddb, name)
                fixed.append(f"capacity:{g['IndexName']}")

    sse = desc.get("SSEDescription") or {}
    if sse.get("SSEType") != "KMS" or sse.get("KMSMasterKeyArn") != req["SSESpecification"]["KMSMasterKeyId"]:
        ddb.update_table(TableName=name, SSESpecification=req["SSESpecification"])
        desc = wait_active(ddb, name)
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


def switch_billing(ddb: Any, name: str, req: dict[str, Any]) -> dict[str, Any]:
    """One UpdateTable to the request's billing mode (with every GSI's capacity when provisioned); the table read
    back once ACTIVE again."""
    kwargs: dict[str, Any] = {"TableName": name, "BillingMode": req["BillingMode"]}
    if req["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = req["ProvisionedThroughput"]
        gsi_updates = [
            {"Update": {"IndexName": g["IndexName"], "ProvisionedThroughput": g["ProvisionedThroughput"]}}
            for g in req.get("GlobalSecondaryIndexes", [])
        ]
        if gsi_updates:
            kwargs["GlobalSecondaryIndexUpdates"] = gsi_updates
    ddb.update_table(**kwargs)
    return wait_active(ddb, name)


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


def target_request(backend: Backend, cfg: MigrationConfig, spec: TableSpec, kms_key_arn: str) -> dict[str, Any]:
    """ensure_table's CreateTable request (ImportTable's TableCreationParameters start from it)."""
    return target_table_request(*read_source(backend, cfg, spec), spec, cfg, kms_key_arn)


@step("provision-table", run_name="provision-table-{spec.name}")
def ensure_table(
    backend: Backend, cfg: MigrationConfig, spec: TableSpec, kms_key_arn: str, imported_arn: str | None = None
) -> dict[str, Any]:
    """Create or converge one target table from its source's description; return it read back. `imported_arn`:
    the table our recorded ImportTable created, ours though untagged (ImportTable cannot tag)."""
    source_desc, source_ttl = read_source(backend, cfg, spec)
    req = target_table_request(source_desc, source_ttl, spec, cfg, kms_key_arn)
    name = req["TableName"]
    ddb = backend.client("dynamodb", cfg.target_region)
    created = False

    desc = _describe(ddb, name)
    if desc is None:
        try:
            ddb.create_table(**backfill_request(req))
            created = True
        except Exception as err:
            if error_code(err) != "ResourceInUseException":  # a parallel run created it first
                raise
    desc = wait_active(ddb, name)
    tags = table_tags(ddb, desc["TableArn"])
    if not created and not cfg.owns(tags) and desc["TableArn"] != imported_arn:
        raise CollisionError(
            f"DynamoDB table {name} already exists in {cfg.target_region} but this migration did not "
            "create it (tags lack ManagedBy/MigrationBatch/Environment); delete it or change "
            "timestamp/environmentSuffix"
        )
    unsupported: dict[str, str] = {}
    drift: list[str] = []
    want_ttl = ttl_attribute(source_ttl, spec.ttl_attribute)
    fixed = _converge(ddb, name, desc, req, want_ttl, tags, unsupported, drift)

    source_throughput = source_desc.get("ProvisionedThroughput", {})
    source_mode = billing_mode(source_desc)
    out = describe_table(backend, cfg.target_region, name)
    # A repair the backend accepted but did not apply is reported as measured, not claimed as done.
    for f in fixed:
        if not applied(f, out, req, want_ttl):
            unsupported[f] = "the backend accepted the change but the read-back does not show it"
    return {
        "source": spec.name,
        **out,
        "capacityFrom": {
            "billingMode": source_mode,
            "readCapacity": source_throughput.get("ReadCapacityUnits") if source_mode == "PROVISIONED" else None,
            "writeCapacity": source_throughput.get("WriteCapacityUnits") if source_mode == "PROVISIONED" else None,
            "scalingFactor": spec.scaling_factor,
        },
        "sourceTtl": ttl_summary(source_ttl),
        "ttlFrom": "config ttlAttribute" if spec.ttl_attribute else "source",
        "ttlDrift": ttl_drift(drift, out["ttl"], want_ttl),
        "created": created,
        "repaired": [] if created else [f for f in fixed if f not in unsupported],
        "notSupportedByBackend": unsupported,
    }


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
        "tags": table_tags(ddb, desc["TableArn"]),
    }


# ---------------------------------------------------------------- find / delete (teardown, preflight)


def find_table(
    backend: Backend, cfg: MigrationConfig, name: str, source: str = "", *, with_data: bool = True
) -> dict[str, Any] | None:
    """A target-region table with one of our names, whether its tags say it is ours, and (if ours and
    `with_data`) whether it holds items."""
    region = cfg.target_region
    ddb = backend.client("dynamodb", region)
    desc = _describe(ddb, name)
    if desc is None:
        return None
    entry: dict[str, Any] = {
        "name": name,
        "region": region,
        "arn": desc["TableArn"],
        "owned": cfg.owns(table_tags(ddb, desc["TableArn"])),
    }
    if source:
        entry["source"] = source
    if entry["owned"] and with_data:
        entry["itemCount"] = int(desc.get("ItemCount", 0))  # approximate on AWS (refreshed ~6 h)
        entry["hasData"] = table_has_data(ddb, name)
    return entry


def table_has_data(ddb: Any, table: str) -> bool:
    """Whether the table holds any item; a Scan page may come back empty with a LastEvaluatedKey, so follow it."""
    pages = ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT", PaginationConfig={"PageSize": 1})
    return any(int(page.get("Count", 0)) > 0 for page in pages)


def delete_table(backend: Backend, region: str, name: str, *, keep_data: bool) -> dict[str, Any]:
    """Delete the table (kept when `keep_data` and it holds items), measured by describe_table afterwards."""
    ddb = backend.client("dynamodb", region)
    if _describe(ddb, name) is None:
        return {"status": ALREADY_GONE, "measured": "not found before deletion"}
    if keep_data and table_has_data(ddb, name):
        return {"status": "kept (pass --delete-target-data)", "measured": "table holds items"}
    try:
        ddb.delete_table(TableName=name)
    except Exception as err:
        if not is_not_found(err):
            raise
    ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    if _describe(ddb, name) is not None:
        return {"status": FAILED, "error": "still present after deletion"}
    return {"status": REMOVED, "measured": "describe_table: not found after deletion"}


def enabled_stream(backend: Backend, region: str, table: str) -> str | None:
    """The table's current stream ARN when its stream is enabled (None: no table or no stream)."""
    desc = _describe(backend.client("dynamodb", region), table)
    if not desc or not (desc.get("StreamSpecification") or {}).get("StreamEnabled"):
        return None
    return str(desc.get("LatestStreamArn") or "")


def stream_created(backend: Backend, region: str, stream_arn: str) -> Any:
    """When the stream was requested (a datetime), or None when the backend does not say."""
    streams = backend.client("dynamodbstreams", region)
    return streams.describe_stream(StreamArn=stream_arn, Limit=1)["StreamDescription"].get("CreationRequestDateTime")


def disable_stream(backend: Backend, region: str, table: str, stream_arn: str) -> dict[str, Any]:
    """Only the very stream we enabled (a stream re-created since by someone else is theirs)."""
    ddb = backend.client("dynamodb", region)
    current = _describe(ddb, table)
    if not current or not (current.get("StreamSpecification") or {}).get("StreamEnabled"):
        return {"status": ALREADY_GONE, "measured": "stream not enabled"}
    if current.get("LatestStreamArn") != stream_arn:
        return {"status": f"kept (the stream changed since the plan: {current.get('LatestStreamArn')})"}
    wait_active(ddb, table)
    ddb.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    after = wait_active(ddb, table)
    if (after.get("StreamSpecification") or {}).get("StreamEnabled"):
        return {"status": FAILED, "error": "stream still enabled after disabling"}
    return {"status": "disabled", "measured": "describe_table: StreamEnabled false"}
