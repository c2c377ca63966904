"""The migration flow: preflight -> provision -> move (S3 and DynamoDB at once) -> catch-up -> validate -> report.

Run it as `python -m flows.migrate` (embedded emulator by default), from the Prefect UI through the
`migrate` deployment, or import `migrate` and call it. The flow is a thin composition: every step is a
task (a work function under `@step`, see tasks/steps.py), partitioned by key range (S3) or scan segment (DynamoDB).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import get_run_logger

from config.prices import load_prices
from config.settings import SETTINGS
from flows.common import (
    EXIT_OK,
    RunOptions,
    add_threshold_args,
    cli_parser,
    fail,
    finish,
    jsonable,
    pipeline_flow,
    prepare,
    print_verdict,
    run_flow,
    threshold,
)
from flows.parts import begin, mismatch_path_for, move, provision, result_of, run_validation
from tasks import alerts
from tasks.errors import UserError
from tasks.names import report_path as report_path_for
from tasks.plan_estimate import source_estimates
from tasks.report.assemble import assemble
from tasks.report.build import estimate_vs_measured
from tasks.report.publish import publish_artifacts, write_report

# Partition tasks run side by side; each S3 partition also runs its own bounded copy pool.
TASK_WORKERS = SETTINGS.migrate_task_workers


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@pipeline_flow(
    "migrate",
    workers=TASK_WORKERS,
    report_path="Where to write the JSON report (default: reports/migration-report-{batch}-{suffix}.json).",
    validation_level="quick: keys and sizes; full: also every content (default).",
    s3_batch_min_objects="Buckets with at least this many objects take S3 Batch Replication (0: all; empty: never).",
    dynamodb_import_min_bytes="Tables of at least this many bytes take export + ImportTable (0: all; empty: never).",
    prices="A JSON file of prices overriding the shipped table (config/prices-us-east-1.json), for the estimate.",
)
def migrate(
    options: RunOptions = RunOptions(),  # noqa: B008 - an immutable default, validated by Prefect
    report_path: str | None = None,
    validation_level: Literal["quick", "full"] = "full",
    s3_batch_min_objects: int | None = SETTINGS.s3_batch_min_objects,
    dynamodb_import_min_bytes: int | None = SETTINGS.dynamodb_import_min_bytes,
    prices: str | None = None,
) -> dict[str, Any]:
    """Migrate the config's buckets and tables, validate, and report (JSON + artifacts) with a GO/NO-GO."""
    logger = get_run_logger()
    t0, started = time.monotonic(), _now()
    preflight_warnings: list[str] = []
    cfg, backend, account = begin(options, warnings=preflight_warnings)
    # Table sizes before anything moves; a failed estimate leaves the report without one, never fails the run.
    estimates_f = source_estimates.submit(backend, cfg, prices, dynamodb_import_min_bytes)
    res = provision(backend, cfg, account, dynamodb_import_min_bytes)
    moved = move(backend, cfg, res, s3_batch_min_objects)
    estimates = result_of(estimates_f)
    path = report_path_for("migration-report", cfg, report_path)
    validation = run_validation(backend, cfg, validation_level, mismatch_path_for(path))
    report: dict[str, Any] = jsonable(
        assemble(
            cfg, backend.describe(), account, res, moved, validation, started, _now(), round(time.monotonic() - t0, 1)
        )
    )
    report["preflightWarnings"] = preflight_warnings
    sizes = {k: v for k, v in estimates.items() if isinstance(v, dict)}  # {"error": ...} when the step failed
    report["estimate"] = estimate_vs_measured(report, sizes, load_prices(prices), s3_batch_min_objects)
    report["reportPath"] = str(write_report(report, path))
    publish_artifacts(report)
    decision = report["verdict"]
    logger.info("report: %s; verdict %s", path, decision["decision"])
    if decision["decision"] != "GO":
        alerts.publish(f"region-migration {cfg.migration_batch}: NO-GO", "\n".join(decision["reasons"]))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        "migrate", __doc__, "where to write the JSON report (default: reports/)", ("--validation-level", "full")
    )
    parser.add_argument("--plan", action="store_true", help="print what would be created or changed; change nothing")
    add_threshold_args(parser)
    parser.add_argument(
        "--plan-list-max-objects",
        type=threshold,
        default=SETTINGS.plan_list_max_objects,
        metavar="N|off",
        help="--plan takes a bucket's counts from CloudWatch instead of listing it when CloudWatch counts more than N "
        "objects; 0: whenever it has a count, off: list every bucket (default: %(default)s, from "
        "REGION_MIGRATION_PLAN_LIST_MAX_OBJECTS)",
    )
    parser.add_argument(
        "--prices", metavar="FILE", help="JSON prices overriding the shipped table (config/prices-us-east-1.json)"
    )
    args = parser.parse_args(argv)
    try:
        prices = load_prices(args.prices)  # a bad file is refused before anything starts
    except UserError as err:
        return fail(str(err))
    ready = prepare(args)
    if isinstance(ready, int):
        return ready
    cfg, backend = ready
    if args.plan:
        from tasks import preflight

        if backend.kind == "aws":  # real AWS's own prices for the source region, where its Price List answers
            from tasks.price_list import from_price_list

            prices = from_price_list(backend, prices, cfg.source_region)
        thresholds = {"s3_batch_min_objects": args.s3_batch_min_objects}
        thresholds["dynamodb_import_min_bytes"] = args.dynamodb_import_min_bytes
        thresholds["plan_list_max_objects"] = args.plan_list_max_objects
        print(preflight.format_plan(preflight.plan(backend, cfg, prices=prices, **thresholds)))
        return EXIT_OK
    state = run_flow(
        migrate,
        args,
        report_path=args.report,
        validation_level=args.validation_level,
        s3_batch_min_objects=args.s3_batch_min_objects,
        dynamodb_import_min_bytes=args.dynamodb_import_min_bytes,
        prices=args.prices,
    )
    report = finish(state, "migration")
    if isinstance(report, int):
        return report
    return print_verdict(
        report["verdict"], f"report: {report['reportPath']}", f"mismatches: {report['validation']['mismatchFile']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
