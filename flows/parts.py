"""The parts every flow composes (Prefect futures and task submission, no AWS logic of their own):
start, provision, move, catch-up, validate, and one sync pass. Flows import these, never each other."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from prefect import get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import as_completed

from config.model import MigrationConfig
from config.settings import SETTINGS
from flows.common import RunOptions, jsonable, result_of
from flows.table_validation import finish_table_validation, start_table_validation
from tasks import compound
from tasks.aws import Backend
from tasks.move import dynamodb as move_ddb
from tasks.move import dynamodb_import, lock, s3_batch, s3_batch_reencrypt
from tasks.move import s3 as move_s3
from tasks.move.checkpoints import ensure_checkpoint_table
from tasks.move.dynamodb_plan import segment_groups
from tasks.move.keys import SYNC_LOCK
from tasks.move.s3_batch import REPORT_PREFIX
from tasks.move.s3_plan import plan_summary
from tasks.move.s3_replication import ensure_replication
from tasks.names import resource_names
from tasks.paths import DDB_EXPORT_IMPORT, S3_BATCH_REPLICATION, PathChoice, s3_path
from tasks.preflight import check as preflight_check
from tasks.provision import dynamodb, dynamodb_capacity, iam, kms, lambda_, s3, s3_reports, sns
from tasks.report.build import summarize_copies, summarize_import, summarize_segments, with_path
from tasks.report.render import s3_catchup_lines
from tasks.steps import S3_COPY_WORKERS
from tasks.validate import s3 as validate_s3
from tasks.validate import s3_partition
from tasks.validate.compare import write_mismatches
from tasks.validate.invoke import invoke_validator


class Progress:
    """One Prefect progress artifact per bucket/table, updated as its partitions finish."""

    def __init__(self) -> None:
        self.ids: dict[str, Any] = {}
        self.done: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def start(self, name: str, total: int, what: str) -> None:
        self.total[name] = max(total, 1)
        self.done[name] = 0
        self.ids[name] = create_progress_artifact(progress=0.0, description=f"{what} {name}")

    def step(self, name: str) -> float:
        self.done[name] += 1
        pct = round(100.0 * self.done[name] / self.total[name], 1)
        if self.ids.get(name):
            update_progress_artifact(artifact_id=self.ids[name], progress=pct)
        return pct


def catch_up_all(
    backend: Backend, cfg: MigrationConfig, kms_arn: str, skip: frozenset[str] = frozenset()
) -> dict[str, dict[str, Any]]:
    """S3 catch-up (what replication has not delivered: objects written after the listing, FAILED or
    long-PENDING statuses) and DynamoDB stream replay, every bucket and table side by side.

    Tables in `skip` (a failed backfill) are not replayed: replay onto a partial copy would hide the gap.
    """
    names = resource_names(cfg)
    ckpt = names.checkpoint_table
    b, c = unmapped(backend), unmapped(cfg)
    parts = {s: move_s3.plan_partitions.submit(backend, cfg.source_region, s) for s in names.buckets if s not in skip}
    tables = {s: compound.catch_up.submit(backend, cfg, s, t, ckpt) for s, t in names.tables.items() if s not in skip}
    copies: dict[str, list[Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    for s, fut in parts.items():
        ranges = result_of(fut)
        if isinstance(ranges, dict):
            out[s] = {"catchUp": {"error": ranges["error"]}}
            continue
        t = names.buckets[s]
        copies[s] = list(
            move_s3.copy_partition.map(b, c, s, t, ranges, kms_arn, ckpt, "catchup", workers=unmapped(S3_COPY_WORKERS))
        )
    for s, futs in copies.items():
        out[s] = {"catchUp": summarize_copies([result_of(f) for f in futs])}
        # Re-encryptions, mirrored deletes and objects we did not write belong in the run's log too.
        for line in s3_catchup_lines([{"name": names.buckets[s], "catchUp": out[s]["catchUp"]}]):
            get_run_logger().info("%s", line)
    for s, table_fut in tables.items():
        out[s] = {"catchUp": result_of(table_fut)}
    return out


def begin(
    options: RunOptions, *, preflight: bool = True, warnings: list[str] | None = None
) -> tuple[MigrationConfig, Backend, str]:
    """Every flow's start: config, backend, the preflight task, and alerts pointed at the topic.

    Returns (config, backend, account id); account is '' without preflight (teardown, which must run
    even when some of the sources it would check are already gone). Preflight's warnings are logged and,
    when `warnings` is given, appended to it (for the report).
    """
    from tasks import alerts
    from tasks.errors import PreflightError

    cfg = options.config()
    backend = options.backend(cfg)
    get_run_logger().info("backend: %s; %s -> %s", backend.describe(), cfg.source_region, cfg.target_region)
    if not preflight:
        return cfg, backend, ""
    if backend.kind == "emulator":
        from tasks.emulator import seed_demo  # the demo's sources, not part of the data path

        seed_demo(backend, cfg)
    pf = preflight_check(backend, cfg)
    if pf.errors:
        raise PreflightError("; ".join(pf.errors))
    for warning in pf.warnings:
        get_run_logger().warning("preflight: %s", warning)
    if warnings is not None:
        warnings.extend(pf.warnings)
    alerts.configure(backend, cfg, pf.account_id)
    return cfg, backend, pf.account_id


def provision(
    backend: Backend, cfg: MigrationConfig, account_id: str, dynamodb_import_min_bytes: int | None = None
) -> dict[str, Any]:
    """KMS first (everything is encrypted with it), then the rest side by side. A table whose path is export +
    ImportTable is not created here: the import creates it (the move step), then provisioning converges it."""
    key = kms.ensure_key(backend, cfg, account_id)
    arn = key["arn"]
    topic_f = sns.ensure_topic.submit(backend, cfg, arn)
    # Only S3 replication alarms live in the source region: no buckets, no source-region topic or key.
    source_f = compound.source_alerts.submit(backend, cfg, account_id) if cfg.s3_buckets else None
    ckpt_table = resource_names(cfg).checkpoint_table
    ckpt_f = ensure_checkpoint_table.submit(backend, cfg.target_region, ckpt_table, cfg.tags(), arn)
    repl_role_f = iam.ensure_replication_role.submit(backend, cfg, arn)
    bucket_fs = [s3.ensure_bucket.submit(backend, cfg, spec, arn) for spec in cfg.s3_buckets]
    paths = {
        t.name: dynamodb_import.choose_path.submit(
            backend, cfg, t.name, dynamodb_import_min_bytes, ckpt_table, return_state=False, wait_for=[ckpt_f]
        )
        for t in cfg.dynamodb_tables
    }
    chosen = {name: result_of(fut) for name, fut in paths.items()}
    table_fs = [
        dynamodb.ensure_table.submit(backend, cfg, spec, arn)
        for spec in cfg.dynamodb_tables
        if chosen[spec.name].get("path") != DDB_EXPORT_IMPORT
    ]
    topic = topic_f.result()
    lambda_role = iam.ensure_lambda_role(backend, cfg, arn, topic["arn"])
    lam_f = lambda_.ensure_validator.submit(backend, cfg, lambda_role["arn"], topic["arn"], arn)
    source = source_f.result() if source_f else {}
    alarms_f = compound.alarms.submit(backend, cfg, topic["arn"], (source.get("sns") or {}).get("arn"))
    watch = alarms_f.result()
    return {
        "kms": key,
        "sns": topic,
        "sourceRegion": source,
        "checkpoints": ckpt_f.result(),
        "iam": {"replicationRole": repl_role_f.result(), "validatorRole": lambda_role},
        "s3Buckets": [f.result() for f in bucket_fs],
        "dynamodbTables": [f.result() for f in table_fs],
        "dynamodbPaths": chosen,
        "lambda": lam_f.result(),
        "alarms": watch["alarms"],
        "dashboard": watch["dashboard"],
    }


def move(
    backend: Backend, cfg: MigrationConfig, res: dict[str, Any], s3_batch_min_objects: int | None = None
) -> dict[str, dict[str, Any]]:
    """S3 replication + backfill and DynamoDB stream + backfill, all submitted at once, then catch-up.

    A bucket of at least `s3_batch_min_objects` objects (None: never) is backfilled by S3 Batch Replication where
    the backend has S3 Batch Operations (probed once), else by the client copy; a table on the export/import path
    (chosen at provisioning) by its import. Each store's backfill says which path and why."""
    moves = _Moves(backend, cfg, res, s3_batch_min_objects)
    moves.start_buckets()
    moves.start_tables()
    moves.wait()
    skip = moves.summarize()
    for s, caught in catch_up_all(backend, cfg, moves.kms_arn, skip).items():
        moves.out[s].update(caught)
    return moves.out


class _Moves:
    """One run's backfill futures, store by store: what `move` submits, waits for and summarizes."""

    def __init__(
        self, backend: Backend, cfg: MigrationConfig, res: dict[str, Any], s3_batch_min_objects: int | None
    ) -> None:
        self.backend, self.cfg, self.res, self.min_objects = backend, cfg, res, s3_batch_min_objects
        self.names = names = resource_names(cfg)
        self.kms_arn, self.ckpt = res["kms"]["arn"], names.checkpoint_table
        self.out: dict[str, dict[str, Any]] = {}
        self.progress = Progress()
        self.running: dict[Any, str] = {}
        self.bucket_paths: dict[str, PathChoice] = {}
        self.batch: dict[str, Any] = {}
        self.unsupported: dict[str, str] = {}  # bucket -> why Batch Replication could not serve it
        self.jobs: dict[str, Any] = {}
        self.copies: dict[str, list[Any]] = {}
        self.fills: dict[str, list[Any]] = {}
        ckpt, role_arn = self.ckpt, res["iam"]["replicationRole"]["arn"]
        # Streams must be on before the scans start, so writes during the backfill are captured.
        self.repl = {
            s: ensure_replication.submit(backend, cfg, s, t, role_arn, self.kms_arn, checkpoint_table=ckpt)
            for s, t in names.buckets.items()
        }
        self.streams = {s: move_ddb.ensure_source_stream.submit(backend, cfg, s, ckpt) for s in names.tables}
        # (Prefect's typed overload for wait_for is the one that also names return_state)
        self.parts = {
            s: move_s3.plan_partitions.submit(
                backend, cfg.source_region, s, return_state=False, wait_for=[self.repl[s]]
            )
            for s in names.buckets
        }
        self.table_paths = res.pop("dynamodbPaths", None) or {}
        self.imports = {  # the source stream on before the export time: replaying it converges the imported table
            s: dynamodb_import.backfill_by_import.submit(
                backend, cfg, s, self.kms_arn, ckpt, self.table_paths[s], return_state=False, wait_for=[self.streams[s]]
            )
            for s in names.tables
            if (self.table_paths.get(s) or {}).get("path") == DDB_EXPORT_IMPORT
        }
        self.segs = {s: self._plan(s) for s in names.tables if s not in self.imports}

    def _plan(self, s: str) -> Any:
        return move_ddb.plan_segments.submit(
            self.backend, self.cfg, s, self.ckpt, return_state=False, wait_for=[self.streams[s]]
        )

    def start_buckets(self) -> None:
        """Each bucket's backfill once its listing is planned: a Batch Replication job or the partitioned copy."""
        b, c = unmapped(self.backend), unmapped(self.cfg)
        for s, t in self.names.buckets.items():
            self.out[s] = {"replication": result_of(self.repl[s])}
            ranges = result_of(self.parts[s])
            if isinstance(ranges, dict):  # listing failed
                self.out[s]["error"] = ranges["error"]
                continue
            self.out[s]["plan"] = plan_summary(ranges)  # the count planning measured, in parallel: no second listing
            if self._bucket_path(s).path == S3_BATCH_REPLICATION:
                self._start_job(s)
                continue
            self.progress.start(s, len(ranges), "S3 backfill")
            self.copies[s] = list(
                move_s3.copy_partition.map(
                    b, c, s, t, ranges, self.kms_arn, self.ckpt, "backfill", workers=unmapped(S3_COPY_WORKERS)
                )
            )
            self.running.update({f: s for f in self.copies[s]})

    def _bucket_path(self, s: str) -> PathChoice:
        objects = self.out[s]["plan"]["objects"]
        choice = s3_path(objects, self.min_objects)
        if choice.path == S3_BATCH_REPLICATION:
            if "blocked" not in self.batch:  # one probe per run, and only once a bucket is big enough to need it
                self.batch["blocked"] = s3_batch.probe(self.backend, self.cfg.source_region)
            if self.batch["blocked"]:  # big enough, but the backend has no Batch Operations: the report says so
                choice = s3_path(objects, self.min_objects, self.batch["blocked"])
                self.unsupported[s] = self.batch["blocked"]
        self.bucket_paths[s] = choice
        return choice

    def _start_job(self, s: str) -> None:
        if "role" not in self.batch:  # the reports bucket and the Batch role exist only once a bucket needs them
            self.res["sourceRegion"]["reportsBucket"] = s3_reports.ensure_reports_bucket(self.backend, self.cfg)
            role = iam.ensure_batch_role(self.backend, self.cfg, REPORT_PREFIX, self.kms_arn)
            self.batch["role"] = self.res["iam"]["batchRole"] = role
        # Its progress artifact is the job's own (s3_batch.batch_backfill follows DescribeJob); summarize waits for it.
        self.jobs[s] = s3_batch.batch_backfill.submit(
            self.backend, self.cfg, s, self.batch["role"]["arn"], self.kms_arn
        )

    def start_tables(self) -> None:
        """Each table's segment groups; an imported table's scan starts only where its import fell back to one."""
        for s in self.names.tables:
            self.out[s] = {"stream": result_of(self.streams[s])}
            if s in self.segs:
                self._scan(s, self.segs[s])
        for s, fut in self.imports.items():
            got = result_of(fut)
            if "error" in got:
                self.out[s]["error"] = got["error"]
                continue
            self.res["dynamodbTables"].append(got.pop("provisioned"))
            (self.out[s]["stream"].setdefault("sourceChanged", [])).extend(got.get("sourceChanged") or [])
            self.out[s]["backfill"] = summarize_import(got)
            if got.get("fallback"):
                self._scan(s, self._plan(s))

    def _scan(self, s: str, planned: Any) -> None:
        total = result_of(planned)
        if isinstance(total, dict):
            self.out[s]["error"] = total["error"]
            return
        groups = segment_groups(total, SETTINGS.ddb_backfill_tasks)  # a bounded number of task runs per table
        self.progress.start(s, len(groups), "DynamoDB backfill")
        b, c = unmapped(self.backend), unmapped(self.cfg)
        self.fills[s] = list(move_ddb.backfill_segments.map(b, c, s, self.names.tables[s], groups, total, self.ckpt))
        self.running.update({f: s for f in self.fills[s]})

    def wait(self) -> None:
        """Every partition and segment group to its end, the progress artifacts updated as each ends (a Batch job
        publishes its own progress, and summarize waits for it)."""
        for fut in as_completed(list(self.running)):
            name = self.running[fut]
            get_run_logger().info("%s: %s%% of partitions done", name, self.progress.step(name))

    def summarize(self) -> frozenset[str]:
        """Each store's backfill summary (and path); settles the backfilled tables' capacity. Returns the stores
        the catch-up must skip: a failed backfill (replaying onto a partial copy would hide the gap) or none."""
        out, failed = self.out, set()
        for s in self.copies:
            out[s]["backfill"] = summarize_copies([result_of(f) for f in self.copies[s]])
        fixes = self._reencrypt()
        for s, fut in self.jobs.items():
            done, fix = result_of(fut), result_of(fixes[s]) if s in fixes else {}
            copies = [c for c in (done.get("copy"), fix.get("copy")) if c]  # both jobs' failed keys, client-copied
            out[s]["backfill"] = {"error": done["error"]} if "error" in done else summarize_copies(copies)
            out[s]["backfill"]["job"] = done.get("job")
            if fix:
                out[s]["backfill"]["reencryptJob"] = fix.get("job") or {"error": fix.get("error")}
        for s, choice in self.bucket_paths.items():
            out[s]["backfill"] |= {"path": choice.path, "pathReason": choice.reason}
            if s in self.unsupported:
                out[s]["backfill"].setdefault("notSupportedByBackend", {})["s3BatchOperations"] = self.unsupported[s]
        for s in self.fills:  # the path and its reason: the choice's, or the refused import's (a fallback)
            chosen = self.table_paths.get(s) or {}
            route = out[s].get("backfill") or {"path": chosen.get("path"), "pathReason": chosen.get("reason")}
            out[s]["backfill"] = with_path(summarize_segments([result_of(f) for f in self.fills[s]]), route)
            if out[s]["backfill"]["failedSegments"]:
                failed.add(s)
        settled = [s for s in self.fills if s not in failed]
        settle_capacities(self.backend, self.cfg, self.res, self.kms_arn, settled, out)
        started = (
            set(self.copies) | set(self.fills) | set(self.jobs) | {s for s in self.imports if "backfill" in out[s]}
        )
        return frozenset(failed | (set(out) - started))

    def _reencrypt(self) -> dict[str, Any]:
        """Each Batch-replicated bucket's re-encryption job, once its replication job replicated anything."""
        role, jobs = str((self.batch.get("role") or {}).get("arn")), {s: result_of(f) for s, f in self.jobs.items()}
        return {
            s: s3_batch_reencrypt.reencrypt_replicas.submit(self.backend, self.cfg, s, role, self.kms_arn)
            for s, done in jobs.items()
            if "error" not in done and s3_batch_reencrypt.replicated_any(done.get("job") or {})
        }


def settle_capacities(
    backend: Backend, cfg: MigrationConfig, res: dict[str, Any], kms_arn: str, tables: list[str], out: dict[str, Any]
) -> None:
    """Each backfilled target gets its steady capacity (it was on-demand for the backfill); its provisioning
    read-back in `res` then shows the capacity the table has now, which the report compares with the source's."""
    specs = {spec.name: spec for spec in cfg.dynamodb_tables}
    futs = {s: dynamodb_capacity.settle_capacity.submit(backend, cfg, specs[s], kms_arn) for s in tables}
    provisioned = {t.get("source"): t for t in res.get("dynamodbTables", [])}
    for s, fut in futs.items():
        out[s]["capacity"] = result_of(fut)
        if s in provisioned and "billingMode" in out[s]["capacity"]:
            provisioned[s].update({k: out[s]["capacity"][k] for k in dynamodb_capacity.CAPACITY_KEYS})


MISMATCH_ROWS_IN_ARTIFACT = 50
COUNT_KEYS = ("missing", "extra", "different", "encryption")


def run_validation(
    backend: Backend, cfg: MigrationConfig, level: str, mismatch_path: Path, invoke_lambda: bool = True
) -> dict[str, Any]:
    """Validate every pair side by side; write every mismatch to CSV; return JSON-able counts + verdict input."""
    names = resource_names(cfg)
    s3_level: validate_s3.Level = "keys" if level == "quick" else "full"
    plans = {s: move_s3.plan_partitions.submit(backend, cfg.source_region, s) for s in names.buckets}
    run_id = uuid.uuid4().hex[:16]
    scanning = start_table_validation(backend, cfg, run_id)  # the tables' scans run while the buckets validate
    frames: dict[str, Any] = {}
    buckets = validate_buckets(backend, cfg, s3_level, plans, frames)
    tables = finish_table_validation(backend, cfg, run_id, scanning, frames)
    path = write_mismatches(frames, mismatch_path)
    lam = result_of(invoke_validator.submit(backend, cfg)) if invoke_lambda else None
    total = {k: sum(int(r.get(k, 0) or 0) for r in buckets + tables) for k in COUNT_KEYS}
    errors = [f"{r['source']}: {r['error']}" for r in buckets + tables if r.get("error")]
    passed = not errors and not any(total.values())
    _publish_mismatches(cfg, frames)
    return jsonable(
        {
            "level": level,
            "passed": passed,
            "mismatches": total,
            "errors": errors,
            "mismatchFile": str(path),
            "buckets": buckets,
            "tables": tables,
            "lambda": lam,
        }
    )


def validate_buckets(
    backend: Backend, cfg: MigrationConfig, level: str, plans: dict[str, Any], frames: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every bucket validated range by range (the copy's key ranges) on the flow's task runner; the ranges
    write their mismatches to the checkpoint table and return counts, read back here once per bucket."""
    names = resource_names(cfg)
    run_id = uuid.uuid4().hex[:16]
    b, c = unmapped(backend), unmapped(cfg)
    futs: dict[str, list[Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for s, plan in plans.items():
        ranges = result_of(plan)
        if isinstance(ranges, dict):  # the listing failed
            rows[s] = {"source": s, "target": names.buckets[s], "error": ranges["error"]}
            continue
        key_ranges = s3_partition.whole_bucket(ranges)
        futs[s] = list(
            s3_partition.validate_partition.map(b, c, s, names.buckets[s], key_ranges, run_id, level=unmapped(level))
        )
    for s, parts in futs.items():
        rows[s] = s3_partition.add_counts(s, names.buckets[s], level, [result_of(f) for f in parts])
        frames[s] = s3_partition.collect_mismatches(backend, cfg, names.buckets[s], run_id)
    return [rows[s] for s in plans]


def _publish_mismatches(cfg: MigrationConfig, frames: dict[str, Any]) -> None:
    """The first rows of every mismatch as a table artifact (the CSV has them all)."""
    rows: list[dict[str, str]] = []
    for store, frame in sorted(frames.items()):
        if frame is None or frame.empty:
            continue
        for rec in frame.head(MISMATCH_ROWS_IN_ARTIFACT - len(rows)).itertuples(index=False):
            rows.append({"store": store, "key": str(rec[0]), "kind": str(rec[1]), "detail": str(rec[2])})
        if len(rows) >= MISMATCH_ROWS_IN_ARTIFACT:
            break
    create_table_artifact(
        key=f"migration-mismatches-{cfg.migration_batch}-{cfg.environment_suffix}",
        table=rows or [{"store": "", "key": "", "kind": "none", "detail": "no mismatches"}],
        description=f"First {MISMATCH_ROWS_IN_ARTIFACT} mismatches (all of them are in the CSV next to the report)",
    )


def mismatch_path_for(report_path: Path) -> Path:
    return report_path.with_name(report_path.stem + "-mismatches.csv")


def lag_of(caught: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Measured stream lag per table (seconds); buckets have none."""
    return {
        s: float(c["catchUp"].get("lag_seconds", 0) or 0)
        for s, c in caught.items()
        if "lag_seconds" in (c.get("catchUp") or {})
    }


def sync_once(backend: Backend, cfg: MigrationConfig, level: str, out_path: Path) -> dict[str, Any]:
    """One catch-up pass and a validation, under the migration's sync lock."""
    names = resource_names(cfg)
    kms_arn = kms.migration_key_arn(backend, cfg)
    t0 = time.monotonic()
    with lock.held(backend, cfg.target_region, names.checkpoint_table, SYNC_LOCK):
        caught = catch_up_all(backend, cfg, kms_arn)
        validation = run_validation(backend, cfg, level, mismatch_path_for(out_path), invoke_lambda=False)
    errors = [f"{s}: {c['catchUp']['error']}" for s, c in caught.items() if (c.get("catchUp") or {}).get("error")]
    return {
        "caughtUp": caught,
        "lagSeconds": lag_of(caught),
        "copied": sum(int(c["catchUp"].get("copied", 0) or 0) for c in caught.values()),
        "streamRecordsApplied": sum(int(c["catchUp"].get("records", 0) or 0) for c in caught.values()),
        "errors": errors,
        "validation": validation,
        "durationSeconds": round(time.monotonic() - t0, 2),
    }
