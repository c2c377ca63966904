"""Teardown flow: remove exactly what one migration (batch + environment suffix) created, and undo its source
changes (our replication rule, source versioning and streams we enabled). Source data is never touched.

    python -m flows.teardown --plan                      # print what would be removed; change nothing
    python -m flows.teardown                             # remove; target buckets/tables with data are kept
    python -m flows.teardown --delete-target-data        # remove the migrated data too

Same backend options as flows.migrate (embedded emulator by default, --endpoint-url, or --aws).
"""

from __future__ import annotations

import argparse
from typing import Any

from prefect import get_run_logger

from config.model import MigrationConfig
from flows.common import (
    EXIT_FAILED,
    EXIT_OK,
    RunOptions,
    add_common_args,
    fail,
    jsonable,
    load,
    pipeline_flow,
    run_flow,
    user_errors,
)
from flows.parts import begin
from tasks import teardown as td
from tasks.names import report_path as report_path_for
from tasks.preflight import probe_credentials
from tasks.report.render import teardown_markdown, teardown_plan_text, teardown_results_text


def _report_path(cfg: MigrationConfig, report_path: str | None) -> str | None:
    """The migration report (second source of evidence for source versioning), if there is one."""
    path = report_path_for("migration-report", cfg, report_path)
    return str(path) if path.exists() else None


@pipeline_flow(
    "teardown",
    delete_target_data="Also delete target buckets and tables that hold data (and then the KMS key).",
    plan_only="Only list what would be removed or undone; change nothing.",
    report_path="The migration's JSON report, read for evidence of source versioning it enabled.",
)
def teardown(
    options: RunOptions = RunOptions(),  # noqa: B008 - an immutable default, validated by Prefect
    delete_target_data: bool = False,
    plan_only: bool = False,
    report_path: str | None = None,
) -> dict[str, Any]:
    """Discover, plan, then undo source changes, remove target resources, and finally the checkpoint table
    and the KMS key. Returns {plan, results, ok}; results are measured after each deletion."""
    logger = get_run_logger()
    cfg, backend, _ = begin(options, preflight=False)
    logger.info("backend: %s; teardown of %s (%s)", backend.describe(), cfg.migration_batch, cfg.environment_suffix)
    found = td.discover(backend, cfg, report_path=_report_path(cfg, report_path))
    plan = td.teardown_plan(cfg, found)
    logger.info("plan:\n%s", teardown_plan_text(plan, found))
    if plan_only:
        return {"plan": plan, "found": jsonable(found), "results": [], "ok": True}
    results: list[dict[str, Any]] = []
    for phase in td.PHASES:
        if any(a["phase"] == phase for a in plan):
            results += td.run_phase(backend, cfg, phase, plan, delete_target_data, list(results))
    ok = td.succeeded(results)
    logger.info("results:\n%s", teardown_results_text(results))
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=teardown_markdown(cfg.migration_batch, cfg.environment_suffix, results),
            key=f"teardown-{cfg.migration_batch}-{cfg.environment_suffix}".lower(),
            description="what teardown removed, kept and skipped",
        )
    except Exception as err:  # the artifact is a convenience; the results are returned either way
        logger.warning("could not publish the teardown artifact: %s", err)
    return {"plan": plan, "results": jsonable(results), "ok": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.teardown", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser)
    parser.add_argument("--plan", action="store_true", help="print what would be removed or undone; change nothing")
    parser.add_argument(
        "--delete-target-data",
        action="store_true",
        help="also delete target buckets and tables that hold data (and then the KMS key)",
    )
    parser.add_argument(
        "--report",
        help="the migration's JSON report (default: reports/), read for evidence of "
        "source versioning this migration enabled",
    )
    args = parser.parse_args(argv)
    try:
        cfg, backend = load(args)
        print(f"backend: {backend.describe()}", flush=True)
        probe_credentials(backend, cfg.target_region)
        if args.plan:
            found = td.discover.fn(backend, cfg, report_path=_report_path(cfg, args.report))
            print(teardown_plan_text(td.teardown_plan(cfg, found), found))
            return EXIT_OK
    except user_errors() as err:
        return fail(str(err))
    state = run_flow(teardown, args, delete_target_data=args.delete_target_data, report_path=args.report)
    if not state.is_completed():
        return fail(f"teardown run {(state.name or 'unknown').lower()}: {state.message}", EXIT_FAILED)
    out = state.result()
    print(teardown_results_text(out["results"]))
    kept = [r for r in out["results"] if str(r["status"]).startswith("kept (pass")]
    if kept:
        print(
            f"{len(kept)} target bucket(s)/table(s) hold data and were kept (and the KMS key with them); "
            "pass --delete-target-data to remove them"
        )
    print("status: " + ("done" if out["ok"] else "some actions failed; re-run teardown (it is idempotent)"))
    return EXIT_OK if out["ok"] else EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
