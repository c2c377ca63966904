"""Continuous sync until cutover: S3 catch-up + DynamoDB stream replay, then a quick validation.

Scheduled on an interval by the `sync` deployment, it keeps the target current between the backfill and
cutover. Two runs of one migration never overlap (a lease lock in the checkpoint table, plus the
deployment's concurrency limit); a run with nothing to do costs a few reads per bucket and table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from config.settings import SETTINGS
from flows.common import (
    EXIT_FAILED,
    EXIT_OK,
    RunOptions,
    cli_parser,
    fail,
    finish,
    jsonable,
    pipeline_flow,
    prepare,
    run_flow,
)
from flows.parts import begin, sync_once
from tasks import alerts
from tasks.errors import UserError
from tasks.move import lock
from tasks.names import report_path as report_path_for
from tasks.provision import kms
from tasks.report.models import Mismatches
from tasks.report.publish import write_report
from tasks.report.render import sync_markdown


@pipeline_flow(
    "sync",
    workers=SETTINGS.flow_task_workers,
    validation_level="Validation after the catch-up: quick (keys and sizes, default) or full.",
    report_path="Where to write the JSON result (default: reports/sync-{batch}-{suffix}.json).",
)
def sync(
    options: RunOptions = RunOptions(),  # noqa: B008 - an immutable default, validated by Prefect
    validation_level: Literal["quick", "full"] = "quick",
    report_path: str | None = None,
) -> dict[str, Any]:
    """Catch the target up with the source and check it; skipped at once if another sync is running."""
    logger = get_run_logger()
    cfg, backend, _ = begin(options)
    path = report_path_for("sync", cfg, report_path)
    base = {
        "migrationBatch": cfg.migration_batch,
        "environmentSuffix": cfg.environment_suffix,
        "backend": backend.describe(),
        "finishedAt": None,
    }
    try:
        result: dict[str, Any] = {**base, "skipped": None, **sync_once(backend, cfg, validation_level, path)}
    except lock.LockHeld as held:
        logger.info("skipped: %s", held)
        return {**base, "skipped": str(held)}
    result["finishedAt"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["ok"] = not result["errors"] and result["validation"]["passed"]
    result = jsonable(result)
    result["reportPath"] = str(write_report(result, path))
    create_markdown_artifact(
        key=f"migration-sync-{cfg.migration_batch}-{cfg.environment_suffix}",
        markdown=sync_markdown(result),
        description="Latest sync (catch-up + validation)",
    )
    logger.info(
        "sync: copied %s objects, applied %s stream records, lag %s; validation %s",
        result["copied"],
        result["streamRecordsApplied"],
        result["lagSeconds"],
        "passed" if result["ok"] else "FAILED",
    )
    if not result["ok"]:
        counts = Mismatches.model_validate(result["validation"]["mismatches"]).text()
        alerts.publish(
            f"region-migration {cfg.migration_batch}: sync found problems",
            "\n".join(result["errors"]) or f"validation mismatches: {counts}",
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("sync", __doc__, level=("--validation-level", "quick"))
    args = parser.parse_args(argv)
    ready = prepare(args)
    if isinstance(ready, int):
        return ready
    try:
        kms.migration_key_arn(ready[1], ready[0])
    except UserError as err:
        return fail(str(err))
    result = finish(
        run_flow(sync, args, validation_level=args.validation_level, report_path=args.report),
        "sync",
    )
    if isinstance(result, int):
        return result
    if result.get("skipped"):
        print(f"skipped: {result['skipped']}")
        return EXIT_OK
    print(
        f"sync: {result['copied']} objects copied, {result['streamRecordsApplied']} stream records applied, "
        f"lag {result['lagSeconds']}; validation {'passed' if result['ok'] else 'FAILED'}"
    )
    print(f"report: {result['reportPath']}")
    return EXIT_OK if result["ok"] else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
