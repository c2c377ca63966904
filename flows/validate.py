"""Validation: source against target, every key, every mismatch listed; also a flow of its own.

`python -m flows.validate` (same options as migrate, plus --level) can run on a schedule between the
backfill and cutover; the migrate flow calls `run_validation` itself before writing its report.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from flows.common import (
    EXIT_FAILED,
    EXIT_OK,
    RunOptions,
    add_common_args,
    finish,
    flow_params,
    jsonable,
    prepare,
    quiet_prefect_defaults,
    with_parameter_docs,
)

quiet_prefect_defaults()

from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from config.model import MigrationConfig  # noqa: E402
from config.settings import SETTINGS  # noqa: E402
from flows.parts import begin, result_of  # noqa: E402
from tasks import alerts  # noqa: E402
from tasks.aws import Backend  # noqa: E402
from tasks.names import resource_names  # noqa: E402
from tasks.report.build import validation_markdown  # noqa: E402
from tasks.report.publish import write_report  # noqa: E402
from tasks.validate import dynamodb as validate_ddb  # noqa: E402
from tasks.validate import s3 as validate_s3  # noqa: E402
from tasks.validate.compare import write_mismatches  # noqa: E402
from tasks.validate.invoke import invoke_validator  # noqa: E402

MISMATCH_ROWS_IN_ARTIFACT = 50
COUNT_KEYS = ("missing", "extra", "different", "encryption")


def run_validation(
    backend: Backend, cfg: MigrationConfig, level: str, mismatch_path: Path, invoke_lambda: bool = True
) -> dict[str, Any]:
    """Validate every pair side by side; write every mismatch to CSV; return JSON-able counts + verdict input."""
    names = resource_names(cfg)
    spill = Path(tempfile.mkdtemp(prefix="validate-"))
    s3_level: validate_s3.Level = "keys" if level == "quick" else "full"
    bucket_fs = {
        s: validate_s3.validate_bucket.submit(backend, cfg, s, t, level=s3_level) for s, t in names.buckets.items()
    }
    table_fs = {
        s: validate_ddb.validate_table.submit(backend, cfg, s, t, spill_dir=spill) for s, t in names.tables.items()
    }
    frames: dict[str, Any] = {}
    buckets: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for rows, futs in ((buckets, bucket_fs), (tables, table_fs)):
        for source, fut in futs.items():
            res = result_of(fut)
            frame = res.pop("mismatches", None)
            if frame is not None:
                frames[source] = frame
            rows.append({"source": source, **res})
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
        key=f"migration-mismatches-{cfg.migrationBatch}-{cfg.environmentSuffix}",
        table=rows or [{"store": "", "key": "", "kind": "none", "detail": "no mismatches"}],
        description=f"First {MISMATCH_ROWS_IN_ARTIFACT} mismatches (all of them are in the CSV next to the report)",
    )


def mismatch_path_for(report_path: Path) -> Path:
    return report_path.with_name(report_path.stem + "-mismatches.csv")


@flow(
    name="validate",
    task_runner=ThreadPoolTaskRunner(max_workers=SETTINGS.flow_task_workers),  # type: ignore[arg-type]
    on_failure=[alerts.on_flow_failure],
    on_crashed=[alerts.on_flow_failure],
)
@with_parameter_docs(
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
    path = Path(report_path or f"reports/validation-{cfg.migrationBatch}-{cfg.environmentSuffix}.json")
    result = run_validation(backend, cfg, level, mismatch_path_for(path))
    result.update(
        migrationBatch=cfg.migrationBatch,
        environmentSuffix=cfg.environmentSuffix,
        sourceRegion=cfg.sourceRegion,
        targetRegion=cfg.targetRegion,
        backend=backend.describe(),
        finishedAt=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    result["reportPath"] = str(write_report(result, path))
    create_markdown_artifact(
        key=f"migration-validation-{cfg.migrationBatch}-{cfg.environmentSuffix}",
        markdown=validation_markdown(result),
        description="Validation result",
    )
    logger.info("validation %s: %s", "passed" if result["passed"] else "FAILED", result["mismatches"])
    if not result["passed"]:
        alerts.publish(
            f"region-migration {cfg.migrationBatch}: validation failed",
            f"Mismatches {result['mismatches']}; every one is listed in {result['mismatchFile']}.",
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.validate", description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        "--level",
        choices=("quick", "full"),
        default="full",
        help="quick: keys and sizes; full: also contents (default)",
    )
    parser.add_argument("--report", help="where to write the JSON result (default: reports/)")
    args = parser.parse_args(argv)
    ready = prepare(args)
    if isinstance(ready, int):
        return ready
    result = finish(
        validate(**flow_params(args), level=args.level, report_path=args.report, return_state=True),
        "validation",
    )
    if isinstance(result, int):
        return result
    print(f"validation: {'passed' if result['passed'] else 'FAILED'} {result['mismatches']}")
    print(f"report: {result['reportPath']}\nmismatches: {result['mismatchFile']}")
    return EXIT_OK if result["passed"] else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
