"""Cutover: a final catch-up, a full validation, and GO only when both say so.

GO needs: validation passed (every key, every content) and every table's stream lag under the threshold.
The decision and its moment are recorded in the checkpoint table and the report. The temporary source
changes (replication rules, versioning we enabled, streams) are removed only when asked, and only on GO.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from config.settings import SETTINGS
from flows.common import (
    EXIT_FAILED,
    RunOptions,
    cli_parser,
    fail,
    finish,
    jsonable,
    pipeline_flow,
    prepare,
    print_verdict,
    run_flow,
)
from flows.parts import begin, sync_once
from tasks import alerts, teardown
from tasks.errors import UserError
from tasks.move.checkpoints import record_cutover
from tasks.move.lock import LockHeld
from tasks.names import report_path as report_path_for
from tasks.names import resource_names
from tasks.provision import kms
from tasks.report.build import go_no_go
from tasks.report.publish import write_report
from tasks.report.render import cutover_markdown


def decide(synced: dict[str, Any], max_lag_seconds: float) -> dict[str, Any]:
    """Pure: GO only when validation passed, nothing failed and every lag is under the threshold."""
    return go_no_go(synced.get("errors", []), synced["validation"], synced.get("lagSeconds", {}), max_lag_seconds)


@pipeline_flow(
    "cutover",
    workers=SETTINGS.flow_task_workers,
    max_lag_seconds="GO needs every table's stream lag at or under this many seconds.",
    remove_source_changes_on_go="On GO, remove the replication rules, versioning and streams this migration added.",
    report_path="Where to write the JSON result (default: reports/cutover-{batch}-{suffix}.json).",
)
def cutover(
    options: RunOptions = RunOptions(),  # noqa: B008 - an immutable default, validated by Prefect
    max_lag_seconds: float = SETTINGS.max_lag_seconds,
    remove_source_changes_on_go: bool = False,
    report_path: str | None = None,
) -> dict[str, Any]:
    """Final catch-up + full validation -> GO / NO-GO, recorded; source changes removed only if asked."""
    logger = get_run_logger()
    cfg, backend, _ = begin(options)
    path = report_path_for("cutover", cfg, report_path)
    synced = sync_once(backend, cfg, "full", path)
    decision = decide(synced, max_lag_seconds)
    at = datetime.now(UTC).isoformat(timespec="seconds")
    record_cutover(backend, cfg.target_region, resource_names(cfg).checkpoint_table, at, decision)
    removed: list[dict[str, Any]] = []
    if decision["decision"] == "GO" and remove_source_changes_on_go:
        removed = teardown.undo_source_changes(backend, cfg)
    result: dict[str, Any] = jsonable(
        {
            "migrationBatch": cfg.migration_batch,
            "environmentSuffix": cfg.environment_suffix,
            "backend": backend.describe(),
            "decidedAt": at,
            "verdict": decision,
            **synced,
            "sourceChangesRemoved": removed,
        }
    )
    result["reportPath"] = str(write_report(result, path))
    create_markdown_artifact(
        key=f"migration-cutover-{cfg.migration_batch}-{cfg.environment_suffix}",
        markdown=cutover_markdown(result),
        description="Cutover decision",
    )
    logger.info("cutover verdict %s at %s", decision["decision"], at)
    alerts.publish(
        f"region-migration {cfg.migration_batch}: cutover {decision['decision']}",
        "\n".join(decision["reasons"]) or f"GO at {at}: validation passed, lag under threshold.",
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("cutover", __doc__)
    parser.add_argument(
        "--max-lag-seconds",
        type=float,
        default=SETTINGS.max_lag_seconds,
        help="GO needs every table's stream lag at or under this (default %(default)s, "
        "from REGION_MIGRATION_MAX_LAG_SECONDS)",
    )
    parser.add_argument(
        "--remove-source-changes",
        action="store_true",
        help="on GO, remove the replication rules, versioning and streams this migration added",
    )
    args = parser.parse_args(argv)
    ready = prepare(args)
    if isinstance(ready, int):
        return ready
    cfg, backend = ready
    try:
        kms.migration_key_arn(backend, cfg)
    except UserError as err:
        return fail(str(err))
    state = run_flow(
        cutover,
        args,
        max_lag_seconds=args.max_lag_seconds,
        remove_source_changes_on_go=args.remove_source_changes,
        report_path=args.report,
    )
    if not state.is_completed() and isinstance(state.result(raise_on_failure=False), LockHeld):
        return fail("a sync of this migration is running; run cutover again when it has finished", EXIT_FAILED)
    result = finish(state, "cutover")
    if isinstance(result, int):
        return result
    return print_verdict(result["verdict"], f"report: {result['reportPath']}")


if __name__ == "__main__":
    raise SystemExit(main())
