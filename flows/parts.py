"""Pieces of flow composition shared by migrate, sync and cutover (Prefect futures, no AWS logic)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture

from config.model import MigrationConfig
from flows.common import RunOptions
from tasks import compound
from tasks.aws import Backend
from tasks.move import s3 as move_s3
from tasks.names import resource_names
from tasks.preflight import check as preflight_check
from tasks.report.build import s3_catchup_lines, summarize_copies
from tasks.steps import S3_COPY_WORKERS


def result_of(fut: PrefectFuture[Any]) -> Any:
    """A task's result, or {'error': ...} when it failed for good (its hook has sent the alert)."""
    value = fut.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        return {"error": f"{type(value).__name__}: {value}"}
    return value


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
    parts = {s: move_s3.plan_partitions.submit(backend, cfg.sourceRegion, s) for s in names.buckets if s not in skip}
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
    get_run_logger().info("backend: %s; %s -> %s", backend.describe(), cfg.sourceRegion, cfg.targetRegion)
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
