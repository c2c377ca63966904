"""Run options shared by every flow and the tasks that read a run's parameters (the alert hooks).

Here, not in flows/, so that tasks/ and blocks/ never import a flow module: flows import tasks, and the
task hooks find the run's alert target from the same `RunOptions` the flow was called with.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from config.model import EXAMPLE_CONFIG, MigrationConfig, load_config
from tasks.aws import Backend
from tasks.errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def quiet_prefect_defaults() -> None:
    """Settings the project needs, set before Prefect is imported by a run (a user's profile can still win).

    The temporary local server's telemetry heartbeat logs a 'database is locked' traceback otherwise.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Print the message to stderr, one 'error:' line per problem (a ConfigError holds one per line), and
    return the exit code."""
    for line in message.splitlines() or [message]:
        print(f"error: {line}", file=sys.stderr)
    return code


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
            pairs = [(cfg.source_region, source_block), (cfg.target_region, target_block)]
            blocks = tuple((region, block) for region, block in pairs if block)
        return Backend(kind="aws", profile=profile, credentials_blocks=blocks)
    if endpoint_url:
        if not endpoint_url.startswith(("http://", "https://")):
            raise UserError(f"--endpoint-url {endpoint_url!r} must start with http:// or https://")
        return Backend(kind="endpoint", endpoint_url=endpoint_url.rstrip("/"))
    from tasks.emulator import ensure_emulator

    return Backend(kind="emulator", endpoint_url=ensure_emulator())


DASK_SCHEMES = ("tcp://", "tls://", "ucx://", "ws://", "wss://")


def runner_problem(
    kind: str,
    dask_workers: int | None,
    dask_address: str | None,
    names: tuple[str, str, str] = ("--task-runner", "--dask-workers", "--dask-address"),
) -> str | None:
    """What is wrong with a task runner choice (None: nothing), in one line naming the option (a flag, or the
    REGION_MIGRATION_* variable) and the fix."""
    runner, workers, address = names
    if kind not in ("thread", "dask"):
        return f"{runner} {kind!r}: choose thread or dask"
    if kind == "thread" and (dask_workers is not None or dask_address):
        used = workers if dask_workers is not None else address
        return f"{used} needs {runner} dask; add it, or drop {used} to run on threads"
    if dask_workers is not None and dask_workers < 1:
        return f"{workers} {dask_workers}: give a whole number >= 1, or drop it for one worker per core"
    if dask_workers is not None and dask_address:
        return f"{workers} starts a local cluster and {address} uses an existing one: give one of them"
    if dask_address and not dask_address.startswith(DASK_SCHEMES):
        return f"{address} {dask_address!r}: give the scheduler's address, e.g. tcp://host:8786"
    return None


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
