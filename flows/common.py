"""What every entry point shares: backend choice, CLI options, Prefect settings and exit codes."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from config.model import EXAMPLE_CONFIG, ConfigError, MigrationConfig, load_config
from tasks.aws import Backend
from tasks.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

try:  # the tuning settings are read once, at import: a bad REGION_MIGRATION_* variable is one line each, exit 2
    import config.settings  # noqa: F401
except ConfigError as bad_setting:
    for problem in bad_setting.problems:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT) from None
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def quiet_prefect_defaults() -> None:
    """Settings the project needs, set before Prefect is imported by a run (a user's profile can still win).

    The temporary local server's telemetry heartbeat logs a 'database is locked' traceback otherwise.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


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


def backend_from(
    *,
    endpoint_url: str | None = None,
    use_aws: bool = False,
    profile: str | None = None,
    cfg: MigrationConfig | None = None,
    source_block: str | None = None,
    target_block: str | None = None,
) -> Backend:
    """The backend named by the options; with none, the embedded emulator (started if needed)."""
    if (profile or source_block or target_block) and not use_aws:
        raise UserError("--profile and credentials blocks choose real AWS credentials; add --aws to use them")
    if use_aws:
        blocks: tuple[tuple[str, str], ...] = ()
        if cfg and (source_block or target_block):
            pairs = [(cfg.sourceRegion, source_block), (cfg.targetRegion, target_block)]
            blocks = tuple((region, block) for region, block in pairs if block)
        return Backend(kind="aws", profile=profile, credentials_blocks=blocks)
    if endpoint_url:
        if not endpoint_url.startswith(("http://", "https://")):
            raise UserError(f"--endpoint-url {endpoint_url!r} must start with http:// or https://")
        return Backend(kind="endpoint", endpoint_url=endpoint_url.rstrip("/"))
    from tasks.emulator import ensure_emulator

    return Backend(kind="emulator", endpoint_url=ensure_emulator())


def options_from(args: argparse.Namespace) -> RunOptions:
    """The CLI's common options as the flows' RunOptions."""
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


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print the message to stderr, one 'error:' line per problem (a ConfigError holds one per line), and
    return the exit code."""
    for line in message.splitlines() or [message]:
        print(f"error: {line}", file=sys.stderr)
    return code


def user_errors() -> tuple[type[BaseException], ...]:
    return (ConfigError, UserError)


def jsonable(obj: Any) -> Any:
    """Make dataclasses/sets/Decimals JSON-friendly for reports."""
    from dataclasses import asdict, is_dataclass
    from decimal import Decimal

    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    return obj


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


def finish(state: Any, what: str) -> dict[str, Any] | int:
    """The flow's result, or exit code 1 with one line when the run did not complete."""
    if not state.is_completed():
        return fail(f"{what} run {str(state.name).lower()}: {state.message}", EXIT_FAILED)
    result: dict[str, Any] = state.result()
    return result


def flow_config(config_path: str, config_block: str | None, environment_suffix: str | None) -> MigrationConfig:
    """The run's config: a saved MigrationConfigBlock when named (a UI run picks a saved migration), else the file."""
    if config_block:
        from blocks.config_block import load_config_block

        return load_config_block(config_block, environment_suffix=environment_suffix)
    return load_config(config_path, environment_suffix=environment_suffix)


class RunOptions(BaseModel):
    """Which migration, and where its AWS is: the first parameter of every flow (one form section in the UI)."""

    model_config = ConfigDict(extra="forbid")

    config_path: str = Field(
        default=str(EXAMPLE_CONFIG),
        description="Migration config JSON in the seed's format (default: the shipped example).",
    )
    config_block: str | None = Field(
        default=None, description="Name of a saved Region Migration Config block; used instead of config_path when set."
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Any AWS-compatible endpoint (a moto server, LocalStack) for every service and region; "
        "leave empty for the embedded emulator.",
    )
    use_aws: bool = Field(
        default=False,
        description="Use real AWS (standard credential chain, profile or credentials blocks). Never the default.",
    )
    profile: str | None = Field(default=None, description="AWS profile name, with use_aws.")
    environment_suffix: str | None = Field(
        default=None, description="Overrides the config's environmentSuffix (part of every resource name)."
    )
    source_credentials_block: str | None = Field(
        default=None, description="prefect-aws AwsCredentials block for the source region (with use_aws)."
    )
    target_credentials_block: str | None = Field(
        default=None, description="prefect-aws AwsCredentials block for the target region (with use_aws)."
    )

    def config(self) -> MigrationConfig:
        """The run's config: the saved block when named, else the file."""
        return flow_config(self.config_path, self.config_block, self.environment_suffix)

    def backend(self, cfg: MigrationConfig) -> Backend:
        """The backend these options name (the embedded emulator when none)."""
        return backend_from(
            endpoint_url=self.endpoint_url,
            use_aws=self.use_aws,
            profile=self.profile,
            cfg=cfg,
            source_block=self.source_credentials_block,
            target_block=self.target_credentials_block,
        )


C = TypeVar("C", bound=Callable[..., Any])


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
