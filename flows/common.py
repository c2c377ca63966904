"""What every entry point shares: backend choice, CLI options, Prefect settings and exit codes."""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError

from config.model import EXAMPLE_CONFIG, ConfigError, MigrationConfig
from config.options import (  # noqa: F401 - re-exported: the flows' CLIs import them from here
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    RunOptions,
    backend_from,
    fail,
    flow_config,
    jsonable,
    quiet_prefect_defaults,
    runner_problem,
)
from config.settings import SETTINGS, THRESHOLD
from tasks.aws import Backend
from tasks.errors import UserError

quiet_prefect_defaults()  # flows/__init__.py did already, unless this file was loaded on its own

from prefect import Flow, flow  # noqa: E402
from prefect.futures import PrefectFuture  # noqa: E402
from prefect.settings import get_current_settings  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from tasks import alerts  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def result_of(fut: PrefectFuture[Any]) -> Any:
    """A task's result, or {'error': ...} when it failed for good (its hook has sent the alert)."""
    value = fut.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        return {"error": f"{type(value).__name__}: {value}"}
    return value


def cli_parser(
    flow: str, doc: str | None, report_help: str | None = None, level: tuple[str, str] | None = None
) -> argparse.ArgumentParser:
    """A flow's CLI: `python -m flows.<flow>`, the options every flow shares, --report (where the JSON goes) and,
    with `level` = (flag, default), the validation level."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{flow}", description=doc)
    add_common_args(parser)
    parser.add_argument("--report", help=report_help or "where to write the JSON result (default: reports/)")
    if level:
        flag, default = level
        parser.add_argument(
            flag,
            choices=("quick", "full"),
            default=default,
            help=f"quick: keys and sizes; full: also contents (default: {default})",
        )
    return parser


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--config, the backend choice and the environment suffix, shared by every flow's CLI."""
    parser.add_argument(
        "--config", default=str(EXAMPLE_CONFIG), help="migration config JSON (default: the shipped example)"
    )
    parser.add_argument("--config-block", help="a saved MigrationConfigBlock to use instead of --config")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint-url",
        help="any AWS-compatible endpoint (a moto server, LocalStack) "
        "for every service and region; credentials from the usual AWS variables",
    )
    where.add_argument(
        "--aws", action="store_true", help="use real AWS through the standard credential chain (never the default)"
    )
    parser.add_argument("--profile", help="AWS profile for --aws")
    parser.add_argument("--source-credentials-block", help="prefect-aws AwsCredentials block for the source region")
    parser.add_argument("--target-credentials-block", help="prefect-aws AwsCredentials block for the target region")
    parser.add_argument("--environment-suffix", help="overrides environmentSuffix (and ENVIRONMENT_SUFFIX)")
    parser.add_argument(
        "--task-runner",
        choices=("thread", "dask"),
        default=SETTINGS.task_runner,
        help="thread: threads in this process; dask: Dask workers, a local cluster or --dask-address "
        "(default: %(default)s, from REGION_MIGRATION_TASK_RUNNER)",
    )
    parser.add_argument(
        "--dask-workers",
        type=int,
        default=SETTINGS.dask_workers,
        help="with --task-runner dask: worker processes of the local cluster (default: one per core)",
    )
    parser.add_argument(
        "--dask-address",
        default=SETTINGS.dask_address,
        help="with --task-runner dask: an existing cluster's scheduler, e.g. tcp://host:8786 (workers need the "
        "project installed and the Prefect API reachable)",
    )


def threshold(text: str) -> int | None:
    """A bulk path's size threshold on the command line: a whole number >= 0, or `off` (argparse's type)."""
    try:  # the settings' own type: the flag and REGION_MIGRATION_* accept exactly the same values
        return THRESHOLD.validate_python(text)
    except ValidationError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 0, or off") from None


def add_threshold_args(parser: argparse.ArgumentParser) -> None:
    """migrate's (and its plan's) choice of the server-side backfill paths by store size (tasks/paths.py)."""
    for flag, field, unit in (
        ("--s3-batch-min-objects", "s3_batch_min_objects", "objects"),
        ("--dynamodb-import-min-bytes", "dynamodb_import_min_bytes", "bytes"),
    ):
        parser.add_argument(
            flag,
            type=threshold,
            default=getattr(SETTINGS, field),
            metavar="N|off",
            help=f"stores of at least N {unit} take the server-side path; 0: all, off: none "
            f"(default: %(default)s, from REGION_MIGRATION_{field.upper()})",
        )


def options_from(args: argparse.Namespace) -> RunOptions:
    """The CLI's common options as the flows' RunOptions (a bad task runner choice is a UserError here, the first
    thing every CLI does with its arguments: before anything is created)."""
    problem = runner_problem(args.task_runner, args.dask_workers, args.dask_address)
    if problem:
        raise UserError(problem)
    if args.task_runner == "dask" and not get_current_settings().api.url:
        # Each Dask worker would start a temporary Prefect server of its own, and every task run fail to reach it.
        raise UserError(
            "--task-runner dask needs a Prefect server its workers reach: set PREFECT_API_URL (e.g. `make server`)"
        )
    return RunOptions(
        config_path=args.config,
        config_block=args.config_block,
        endpoint_url=args.endpoint_url,
        use_aws=args.aws,
        profile=args.profile,
        environment_suffix=args.environment_suffix,
        source_credentials_block=args.source_credentials_block,
        target_credentials_block=args.target_credentials_block,
    )


def load(args: argparse.Namespace) -> tuple[MigrationConfig, Backend]:
    """Config then backend, each failing as a UserError/ConfigError (one line per problem)."""
    options = options_from(args)
    cfg = options.config()
    return cfg, options.backend(cfg)


def user_errors() -> tuple[type[BaseException], ...]:
    return (ConfigError, UserError)


def prepare(args: argparse.Namespace) -> tuple[MigrationConfig, Backend] | int:
    """Config, backend and the cheap preflight, before any Prefect run: bad input exits 2 in a second."""
    from tasks import preflight

    try:
        cfg, backend = load(args)
        if backend.kind == "emulator":
            from tasks.emulator import seed_demo  # the demo's sources, not part of the data path

            seed_demo(backend, cfg)
        print(f"backend: {backend.describe()}", flush=True)
        if backend.kind == "emulator":
            print("  (the embedded emulator keeps its state between runs; `make emulator-stop` ends it)", flush=True)
        pf = preflight.check.fn(backend, cfg)
    except user_errors() as err:
        return fail(str(err))
    if pf.errors:
        for line in pf.errors:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for line in pf.warnings:
        print(f"warning: {line}", flush=True)
    return cfg, backend


def flow_params(args: argparse.Namespace) -> dict[str, Any]:
    """The flow parameters every CLI passes on (with no endpoint the flow finds the embedded emulator again)."""
    return {"options": options_from(args)}


def run_flow(fn: Flow[..., Any], args: argparse.Namespace, **parameters: Any) -> Any:
    """Call a flow from its CLI on the task runner the arguments chose (the runner is fixed in `@flow`, so it is
    applied with `with_options`); returns the run's final state."""
    runner = task_runner(args.task_runner, args.dask_workers, args.dask_address, _THREADS.get(fn.name))
    return fn.with_options(task_runner=runner)(**flow_params(args), **parameters, return_state=True)


def task_runner(kind: str, dask_workers: int | None, dask_address: str | None, threads: int | None) -> Any:
    """The task runner of a choice: `threads` threads here, a LocalCluster of `dask_workers` processes (one per core
    by default) sharing those threads between them, or the Dask cluster at `dask_address`."""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=threads)
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    n = dask_workers or os.cpu_count() or 1
    # As many task runs side by side as the thread runner allows, spread over n processes (every core busy).
    cluster: dict[str, Any] = {"n_workers": n, "processes": True}
    if threads:
        cluster["threads_per_worker"] = math.ceil(threads / n)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=cluster)


def finish(state: Any, what: str) -> dict[str, Any] | int:
    """The flow's result, or exit code 1 with one line when the run did not complete."""
    if not state.is_completed():
        return fail(f"{what} run {str(state.name).lower()}: {state.message}", EXIT_FAILED)
    result: dict[str, Any] = state.result()
    return result


C = TypeVar("C", bound=Callable[..., Any])
# Each pipeline flow's thread count (its name -> `workers`), so the CLI's runner keeps it (run_flow).
_THREADS: dict[str, int | None] = {}


P = ParamSpec("P")
R = TypeVar("R")


def pipeline_flow(
    name: str, *, workers: int | None = None, **parameter_docs: str
) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """The pipeline's @flow, the same for every flow: its task runner (`workers` threads side by side, none: Prefect's
    default; or Dask, as REGION_MIGRATION_TASK_RUNNER says: how a deployment's job variables choose it), the SNS
    alert when the run fails or crashes, and a documented parameter for each of `parameter_docs`."""

    def wrap(fn: Callable[P, R]) -> Flow[P, R]:
        _THREADS[name] = workers
        runner: Any = task_runner(SETTINGS.task_runner, SETTINGS.dask_workers, SETTINGS.dask_address, workers)
        return flow(
            name=name, task_runner=runner, on_failure=[alerts.on_flow_failure], on_crashed=[alerts.on_flow_failure]
        )(with_parameter_docs(**parameter_docs)(fn))

    return wrap


def with_parameter_docs(**specific: str) -> Callable[[C], C]:
    """Append a Google-style Args section, so the Prefect UI's run form explains every parameter."""

    def wrap(fn: C) -> C:
        docs = {
            "options": "Which migration (config file or block) and which backend (emulator, endpoint or AWS).",
            **specific,
        }
        names = [n for n in inspect.signature(fn).parameters if n in docs]
        lines = "\n".join(f"    {n}: {docs[n]}" for n in names)
        fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{lines}\n"
        return fn

    return wrap


def print_verdict(decision: dict[str, Any], *paths: str) -> int:
    """The CLI's last lines for a GO/NO-GO run (migrate, cutover): the verdict, its reasons, where the files are;
    the exit code says the verdict (0 GO, 1 NO-GO)."""
    print(f"\nverdict: {decision['decision']}")
    for reason in decision["reasons"]:
        print(f"  - {reason}")
    for path in paths:
        print(path)
    return EXIT_OK if decision["decision"] == "GO" else EXIT_FAILED
