"""A big table's backfill done by DynamoDB itself: ExportTableToPointInTime of the source into a migration-owned
staging bucket, then ImportTable in the target region, then the stream replay (tasks/move/dynamodb_stream.py).

Order is the whole trick, as for the scan: the source stream is on BEFORE the export time, so every write after
that moment is in the stream and replaying it from its start converges the imported table. The export needs PITR on
the source: enabled only for this, recorded as a source change (teardown turns it off again). Neither DescribeExport
nor DescribeImport can be found again by client token (and moto has no ListImports), so the ExportArn and ImportArn go
to the checkpoint table before anything waits on them: a re-run reads them back and never exports or imports twice.
ImportTable creates the table untagged; provisioning's converge step (tasks/provision/dynamodb.ensure_table) then
adds the stream, PITR, TTL, tags and capacity, accepting the untagged table as ours by the ImportArn we recorded.

AWS facts relied on (API reference, checked 2026-12): "A client token is valid for 8 hours after the first request
that uses it is completed" (ExportTableToPointInTime, ImportTable); the export writes
`prefix/AWSDynamoDB/{ExportId}/manifest-summary.json` and its data under `.../data/` (DescribeExport's ExportManifest
names the summary); ImportTable: a new table only, no LSIs, per import at most 15 TB of compressed source in
us-east-1, us-west-2 and eu-west-1, 1 TB elsewhere; incremental exports cover 15 minutes to 24 hours each;
a stream keeps records for 24 hours.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend, error_code, is_not_found
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb import describe_source
from tasks.move.dynamodb_import_plan import (
    IMPORT_MAX_OBJECTS,
    PITR_LAG,
    export_request,
    import_blocked,
    import_request,
    incremental_request,
    incremental_windows,
    incremental_writes,
    needs_bridge,
)
from tasks.move.dynamodb_plan import table_pk
from tasks.move.dynamodb_write import write_all
from tasks.move.keys import IMPORT_SK, PITR_SK
from tasks.names import staging_bucket
from tasks.paths import DDB_EXPORT_IMPORT, DDB_SCAN, table_path
from tasks.provision import dynamodb, s3
from tasks.provision.common import ALREADY_GONE, FAILED, lookup
from tasks.steps import step

WAIT_LIMIT_S = 48 * 3600.0  # an export or import of a table at the quota takes hours, never days
_REFUSED = {"UnknownOperationException", "NotImplemented", "NotImplementedException", "InvalidAction", "501"}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _store(backend: Backend, cfg: MigrationConfig, checkpoint_table: str) -> CheckpointStore:
    return CheckpointStore(backend, cfg.target_region, checkpoint_table)


def _status(desc: dict[str, Any], kind: str) -> str:
    return str(desc.get(f"{kind}Status", ""))


# ---------------------------------------------------------------- AWS calls


def _wait(call: Any, kind: str, arn: str, limit_s: float = WAIT_LIMIT_S) -> dict[str, Any]:
    """Poll DescribeExport/DescribeImport until the job ends (bounded backoff: 0.25 s doubling to 60 s)."""
    started, delay = time.monotonic(), 0.25
    while True:
        desc = dict(call(**{f"{kind}Arn": arn})[f"{kind}Description" if kind == "Export" else "ImportTableDescription"])
        if _status(desc, kind) not in ("IN_PROGRESS", "CANCELLING"):
            return desc
        if time.monotonic() - started > limit_s:
            raise TimeoutError(f"{kind.lower()} {arn} still {_status(desc, kind)} after {limit_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 60.0)


def wait_export(ddb: Any, arn: str) -> dict[str, Any]:
    return _wait(ddb.describe_export, "Export", arn)


def wait_import(ddb: Any, arn: str) -> dict[str, Any]:
    return _wait(ddb.describe_import, "Import", arn)


def _ended(desc: dict[str, Any], kind: str, arn: str) -> None:
    if _status(desc, kind) != "COMPLETED":
        raise RuntimeError(
            f"{kind.lower()} {arn} ended {_status(desc, kind)}: {desc.get('FailureCode')} {desc.get('FailureMessage')}"
        )


def ensure_source_pitr(backend: Backend, cfg: MigrationConfig, source: str, checkpoint_table: str) -> dict[str, Any]:
    """PITR on the source (the export needs it); an intent record goes in before we turn it on, so teardown turns
    off only what this migration turned on."""
    ddb = backend.client("dynamodb", cfg.source_region)
    store, pk = _store(backend, cfg, checkpoint_table), table_pk(source)
    record = store.get(pk, PITR_SK)
    backups = ddb.describe_continuous_backups(TableName=source)["ContinuousBackupsDescription"]
    on = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    if not on:
        record = {"enabledByUs": True, "enabledAt": _iso(datetime.now(UTC))}
        store.put(pk, PITR_SK, record)
        ddb.update_continuous_backups(
            TableName=source, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    elif record is None:
        record = {"enabledByUs": False}
        store.put(pk, PITR_SK, record)
    changed = (
        [
            f"point-in-time recovery enabled on source table {source} in {cfg.source_region} at "
            f"{record.get('enabledAt')} by this migration (for the export); teardown disables it"
        ]
        if record.get("enabledByUs")
        else []
    )
    earliest = (
        ddb.describe_continuous_backups(TableName=source)["ContinuousBackupsDescription"]
        .get("PointInTimeRecoveryDescription", {})
        .get("EarliestRestorableDateTime")
    )
    return {"enabledByUs": bool(record.get("enabledByUs")), "sourceChanged": changed, "earliest": earliest}


def disable_pitr(backend: Backend, region: str, table: str) -> dict[str, Any]:
    """Teardown's undo of ensure_source_pitr: PITR off again, measured by reading it back."""
    ddb = backend.client("dynamodb", region)
    if _pitr(ddb, table) != "ENABLED":
        return {"status": ALREADY_GONE, "measured": "point-in-time recovery not enabled"}
    spec = {"PointInTimeRecoveryEnabled": False}
    ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification=spec)
    ok = _pitr(ddb, table) != "ENABLED"
    return {"status": "disabled", "measured": "PITR DISABLED"} if ok else {"status": FAILED, "error": "PITR still on"}


def _pitr(ddb: Any, table: str) -> str | None:
    resp = lookup(ddb.describe_continuous_backups, TableName=table) or {}
    return (
        resp.get("ContinuousBackupsDescription", {})
        .get("PointInTimeRecoveryDescription", {})
        .get("PointInTimeRecoveryStatus")
    )


def find_pitr(
    backend: Backend, cfg: MigrationConfig, sources: Iterable[str], store: CheckpointStore | None
) -> list[dict[str, Any]]:
    """Source tables whose PITR this migration turned on (its record says so) and that still have it: teardown's."""
    if store is None:
        return []
    ddb = backend.client("dynamodb", cfg.source_region)
    out = []
    for source in sources:
        rec = store.get(table_pk(source), PITR_SK) or {}
        if rec.get("enabledByUs") and _pitr(ddb, source) == "ENABLED":
            out.append({"name": source, "region": cfg.source_region, "enabledAt": rec.get("enabledAt")})
    return out


def _export_moment(earliest: datetime | None) -> datetime:
    """The export time: now (the stream is on already), but not before PITR's earliest restorable moment; the
    export time must be in the past, so wait until it is."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    if isinstance(earliest, datetime) and earliest > now:
        now = earliest.replace(microsecond=0) + timedelta(seconds=1)
        time.sleep(max(0.0, (now - datetime.now(UTC)).total_seconds() + 0.5))
    return now


def recorded(backend: Backend, cfg: MigrationConfig, source: str, checkpoint_table: str) -> dict[str, Any]:
    """The table's export/import record ({} when none, or when the checkpoint table does not exist yet)."""
    try:
        return _store(backend, cfg, checkpoint_table).get(table_pk(source), IMPORT_SK) or {}
    except Exception as err:
        if is_not_found(err):
            return {}
        raise


def imported_table_arn(backend: Backend, cfg: MigrationConfig, source: str, checkpoint_table: str) -> str | None:
    """The ARN of the table our recorded import created (DescribeImport's TableArn), or None."""
    rec = recorded(backend, cfg, source, checkpoint_table)
    ddb = backend.client("dynamodb", cfg.target_region)
    if not rec.get("importArn"):
        return _unrecorded_import(ddb, rec)
    desc = ddb.describe_import(ImportArn=rec["importArn"])["ImportTableDescription"]
    return str(desc.get("TableArn") or "") or None


def _unrecorded_import(ddb: Any, rec: dict[str, Any]) -> str | None:
    """The target table an ImportTable we requested created when a kill came before its ImportArn was recorded:
    created at or after the request (recorded first). Only our import can create a table of our name after it."""
    if not rec.get("importRequestedAt"):
        return None
    desc = (lookup(ddb.describe_table, TableName=rec["targetTable"]) or {}).get("Table") or {}
    created, asked = desc.get("CreationDateTime"), datetime.fromisoformat(rec["importRequestedAt"])
    ours = isinstance(created, datetime) and created >= asked - timedelta(seconds=5)
    return str(desc["TableArn"]) if ours else None


@step("ddb-path", run_name="ddb-path-{source_table}")
def choose_path(
    backend: Backend, cfg: MigrationConfig, source_table: str, threshold: int | None, checkpoint_table: str
) -> dict[str, Any]:
    """This table's backfill path (tasks/paths.py) and why; a started export/import keeps its path."""
    desc = describe_source(backend.client("dynamodb", cfg.source_region), cfg, source_table)
    size, items = int(desc.get("TableSizeBytes", 0) or 0), int(desc.get("ItemCount", 0) or 0)
    base = {"table": source_table, "sizeBytes": size, "items": items}
    rec = recorded(backend, cfg, source_table, checkpoint_table)
    if rec.get("path") == DDB_EXPORT_IMPORT:
        return base | {"path": DDB_EXPORT_IMPORT, "reason": "export to S3 + ImportTable: resumed (recorded)"}
    blocked = rec.get("refused") or import_blocked(desc, cfg.target_region)
    target = cfg.target_name(source_table)
    if blocked is None and dynamodb.find_table(backend, cfg, target, with_data=False) is not None:
        blocked = f"the target table {target} exists already (ImportTable creates new tables only)"
    choice = table_path(size, threshold, blocked)
    return base | {"path": choice.path, "reason": choice.reason}


def _data_prefix(backend: Backend, cfg: MigrationConfig, bucket: str, prefix: str, desc: dict[str, Any]) -> str:
    """The export's data/ folder: next to the summary DescribeExport names, else (a backend that does not name
    it) the one AWSDynamoDB/{id}/ folder under our per-export prefix."""
    manifest = desc.get("ExportManifest")
    if manifest:
        return str(manifest).rsplit("/", 1)[0] + "/data/"
    s3c = backend.client("s3", cfg.target_region)
    listed = s3c.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/AWSDynamoDB/", Delimiter="/")
    folders = [p["Prefix"] for p in listed.get("CommonPrefixes", [])]
    if len(folders) != 1:
        raise RuntimeError(f"expected one export folder under s3://{bucket}/{prefix}/AWSDynamoDB/, found {folders}")
    return f"{folders[0]}data/"


def _count_files(backend: Backend, cfg: MigrationConfig, bucket: str, prefix: str) -> int:
    """Objects under the export's data/ folder, counted up to just past ImportTable's limit."""
    pages = (
        backend.client("s3", cfg.target_region).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    count = 0
    for page in pages:
        count += int(page.get("KeyCount", 0))
        if count > IMPORT_MAX_OBJECTS:
            break
    return count


def apply_incremental(
    backend: Backend, cfg: MigrationConfig, bucket: str, manifest_key: str, target_table: str
) -> dict[str, int]:
    """Apply one finished incremental export to the target: its manifest-files.json (next to the summary) lists
    the data files; each is gzipped DYNAMODB_JSON lines."""
    s3c = backend.client("s3", cfg.target_region)
    folder = manifest_key.rsplit("/", 1)[0]
    files = s3c.get_object(Bucket=bucket, Key=f"{folder}/manifest-files.json")["Body"].read().decode()
    lines: list[str] = []
    for entry in (json.loads(x) for x in files.splitlines() if x.strip()):
        body = s3c.get_object(Bucket=bucket, Key=entry["dataFileS3Key"])["Body"].read()
        lines.extend(gzip.decompress(body).decode().splitlines())
    writes = incremental_writes(lines)
    stats = write_all(backend.client("dynamodb", cfg.target_region), target_table, writes)
    return {"records": len(lines), "written": stats.written}


def _bridge(
    backend: Backend, cfg: MigrationConfig, store: CheckpointStore, pk: str, rec: dict[str, Any], full: dict[str, Any]
) -> list[dict[str, Any]]:
    """Incremental exports from the export time to (nearly) now, applied in order, each recorded before waiting."""
    ddb = backend.client("dynamodb", cfg.source_region)
    start = datetime.fromisoformat(rec["exportTime"])
    end = datetime.fromisoformat(rec["bridgeTo"]) if rec.get("bridgeTo") else datetime.now(UTC) - PITR_LAG
    rec["bridgeTo"] = _iso(end)
    done: list[dict[str, Any]] = list(rec.get("bridges") or [])
    for i, (t0, t1) in enumerate(incremental_windows(start, end)):
        if i < len(done) and done[i].get("applied"):
            continue
        if i >= len(done):
            req = incremental_request(full, f"{rec['clientToken']}-i{i}", t0, t1)
            done.append({"from": _iso(t0), "to": _iso(t1), "exportArn": ddb.export_table_to_point_in_time(**req)[
                "ExportDescription"]["ExportArn"]})  # fmt: skip
            store.put(pk, IMPORT_SK, rec | {"bridges": done})
        desc = wait_export(ddb, done[i]["exportArn"])
        _ended(desc, "Export", done[i]["exportArn"])
        applied = apply_incremental(backend, cfg, rec["s3Bucket"], str(desc["ExportManifest"]), rec["targetTable"])
        done[i] |= {"applied": True, **applied}
        store.put(pk, IMPORT_SK, rec | {"bridges": done})
    return done


@step("ddb-export-import", retries=2, run_name="ddb-export-import-{source_table}")
def backfill_by_import(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    kms_arn: str,
    checkpoint_table: str,
    choice: dict[str, Any],
) -> dict[str, Any]:
    """Export the source at a recorded moment, import it as the target table, bridge the stream's window if the
    two took too long, and converge the new table with provisioning. Where the backend refuses the export, the
    target is provisioned as usual and the answer says the scan must backfill it (`fallback`)."""
    spec = next(t for t in cfg.dynamodb_tables if t.name == source_table)
    src, dst = backend.client("dynamodb", cfg.source_region), backend.client("dynamodb", cfg.target_region)
    store, pk = _store(backend, cfg, checkpoint_table), table_pk(source_table)
    account = backend.account_id(cfg.target_region)
    desc = describe_source(src, cfg, source_table)
    pitr = ensure_source_pitr(backend, cfg, source_table, checkpoint_table)

    def fall_back(why: str, gaps: dict[str, str]) -> dict[str, Any]:
        """The export cannot be imported (the backend refuses it, too many files): record the scan path (a re-run
        does not try again) and provision the table for it; `gaps`: what the backend lacks, if that is why."""
        store.put(pk, IMPORT_SK, {"path": DDB_SCAN, "refused": why})
        return {
            "table": spec.name,
            "path": DDB_SCAN,
            "pathReason": f"parallel scan: {why}",
            "fallback": True,
            "notSupportedByBackend": gaps,
            "sourceChanged": [],
            "provisioned": dynamodb.ensure_table.fn(backend, cfg, spec, kms_arn),
        }

    rec = store.get(pk, IMPORT_SK) or {}
    if not rec:  # the intent: moment, token and place, fixed before the first request so a retry repeats it
        token = uuid.uuid4().hex
        rec = {
            "path": DDB_EXPORT_IMPORT,
            "clientToken": token,
            "exportTime": _iso(_export_moment(pitr.get("earliest"))),
            "s3Bucket": staging_bucket(cfg),
            "s3Prefix": f"{source_table}/{token}",
            "targetTable": cfg.target_name(source_table),
        }
        store.put(pk, IMPORT_SK, rec)
    s3.ensure_staging_bucket.fn(backend, cfg, kms_arn)
    full = export_request(
        desc["TableArn"], rec["s3Bucket"], account, rec["s3Prefix"], kms_arn, rec["clientToken"],
        datetime.fromisoformat(rec["exportTime"]),
    )  # fmt: skip
    if not rec.get("exportArn"):
        try:
            rec["exportArn"] = src.export_table_to_point_in_time(**full)["ExportDescription"]["ExportArn"]
        except Exception as err:
            if error_code(err) not in _REFUSED:
                raise
            why = f"the backend refuses the export ({err})"
            return fall_back(why, {"exportTableToPointInTime": why})
        store.put(pk, IMPORT_SK, rec)
    exported = wait_export(src, rec["exportArn"])
    _ended(exported, "Export", rec["exportArn"])
    adopted = None if rec.get("importArn") else _unrecorded_import(dst, rec)
    if not rec.get("importArn") and adopted is None:
        data = _data_prefix(backend, cfg, rec["s3Bucket"], rec["s3Prefix"], exported)
        files = _count_files(backend, cfg, rec["s3Bucket"], data)
        if files > IMPORT_MAX_OBJECTS:
            why = f"the export wrote over {IMPORT_MAX_OBJECTS:,} files, more than ImportTable reads"
            return fall_back(why, {})
        create = dynamodb.target_request(backend, cfg, spec, kms_arn)  # the lead's billing rule included
        req = import_request(create, rec["s3Bucket"], account, data, rec["clientToken"])
        rec["importRequestedAt"] = _iso(datetime.now(UTC))
        store.put(pk, IMPORT_SK, rec)
        rec["importArn"] = dst.import_table(**req)["ImportTableDescription"]["ImportArn"]
        store.put(pk, IMPORT_SK, rec)
    if adopted:  # the import's ARN was never recorded: its table is CREATING until the import ends
        desc = dynamodb.wait_active(dst, rec["targetTable"])
        imported: dict[str, Any] = {"TableArn": adopted, "ImportedItemCount": desc.get("ItemCount")}
    else:
        imported = wait_import(dst, rec["importArn"])
        _ended(imported, "Import", rec["importArn"])
    bridges: list[dict[str, Any]] = []
    if rec.get("bridges") or needs_bridge(datetime.fromisoformat(rec["exportTime"]), datetime.now(UTC)):
        bridges = _bridge(backend, cfg, store, pk, rec, full)
    provisioned = dynamodb.ensure_table.fn(backend, cfg, spec, kms_arn, imported_arn=str(imported.get("TableArn")))
    return {
        "table": source_table,
        "path": DDB_EXPORT_IMPORT,
        "pathReason": choice.get("reason"),
        "exportArn": rec["exportArn"],
        "exportTime": rec["exportTime"],
        "exportedItems": int(exported.get("ItemCount", 0) or 0),
        "exportedBytes": int(exported.get("BilledSizeBytes", 0) or 0),
        "importArn": rec.get("importArn"),
        "importedItems": int(imported.get("ImportedItemCount", 0) or 0),
        "importedBytes": int(imported.get("ProcessedSizeBytes", 0) or 0),
        "importErrors": int(imported.get("ErrorCount", 0) or 0),
        "staging": f"s3://{rec['s3Bucket']}/{rec['s3Prefix']}",
        "incrementalExports": bridges,
        "durationSeconds": _span(exported, imported),
        "sourceChanged": pitr["sourceChanged"],
        "provisioned": provisioned,
    }


def _span(exported: dict[str, Any], imported: dict[str, Any]) -> float:
    """Export start to import end as the jobs report them (0 when a backend does not say)."""
    start, end = exported.get("StartTime"), imported.get("EndTime")
    return round((end - start).total_seconds(), 1) if isinstance(start, datetime) and isinstance(end, datetime) else 0.0
