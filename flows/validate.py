"""Validation: source against target, every key, every mismatch listed; also a flow of its own.

`python -m flows.validate` (same options as migrate, plus --level) can run on a schedule between the
backfill and cutover; the migrate flow calls `run_validation` itself before writing its report.
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
    finish,
    pipeline_flow,
    prepare,
    run_flow,
)
from flows.parts import begin, mismatch_path_for, run_validation
from tasks import alerts
from tasks.names import report_path as report_path_for
from tasks.report.models import Mismatches
from tasks.report.publish import write_report
from tasks.report.render import validation_markdown


@pipeline_flow(
    "validate",
    workers=SETTINGS.flow_task_workers,
    level="quick: keys and sizes; full: also every content (default).",
    report_path="Where to write the JSON result (default: reports/validation-{batch}-{suffix}.json).",
)
def validate(
    options: RunOptions = RunOptions(),  # noqa: B008 - an immutable default, validated by Prefect
    level: Literal["quick", "full"] = "full",
    report_path: str | None = None,
) -> dict[str, Any]:
    """Compare every source bucket/table with its target; a markdown artifact and a CSV of every mismatch."""
    logger = get_run_logger()
    cfg, backend, _ = begin(options)
    path = report_path_for("validation", cfg, report_path)
    result = run_validation(backend, cfg, level, mismatch_path_for(path))
    result.update(
        migrationBatch=cfg.migration_batch,
        environmentSuffix=cfg.environment_suffix,
        sourceRegion=cfg.source_region,
        targetRegion=cfg.target_region,
        backend=backend.describe(),
        finishedAt=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    result["reportPath"] = str(write_report(result, path))
    create_markdown_artifact(
        key=f"migration-validation-{cfg.migration_batch}-{cfg.environment_suffix}",
        markdown=validation_markdown(result),
        description="Validation result",
    )
    counts = Mismatches.model_validate(result["mismatches"]).text()
    logger.info("validation %s: %s", "passed" if result["passed"] else "FAILED", counts)
    if not result["passed"]:
        alerts.publish(
            f"region-migration {cfg.migration_batch}: validation failed",
            f"Mismatches: {counts}; every one is listed in {result['mismatchFile']}.",
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser("validate", __doc__, level=("--level", "full"))
    args = parser.parse_args(argv)
    ready = prepare(args)
    if isinstance(ready, int):
        return ready
    result = finish(
        run_flow(validate, args, level=args.level, report_path=args.report),
        "validation",
    )
    if isinstance(result, int):
        return result
    counts = Mismatches.model_validate(result["mismatches"]).text()
    print(f"validation: {'passed' if result['passed'] else 'FAILED'} ({counts})")
    print(f"report: {result['reportPath']}\nmismatches: {result['mismatchFile']}")
    return EXIT_OK if result["passed"] else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
