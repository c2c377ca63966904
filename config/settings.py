"""Tuning settings: one object, each setting overridable by an environment variable REGION_MIGRATION_<NAME>.

As aws-sdk-pandas' `_config.py` does: a documented default per setting, read once from the environment when
the project is imported. The worker counts are what the pipeline was measured with (benchmarks/, FACTS.md);
they change how fast the pipeline runs, never what it does. The lag threshold is the GO rule's one number.
A bad value is one line naming the variable (exit 2).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.model import ConfigError
from config.options import runner_problem

ENV_PREFIX = "REGION_MIGRATION_"


def off_or_count(value: Any) -> Any:
    """`off` (any case) or an empty value disables a size threshold (None); anything else is parsed as a count."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "")):
        return None
    return value


# A size threshold of a bulk path: at or above it the store takes the server-side path; 0 forces it, off disables it.
Threshold = Annotated[Annotated[int, Field(ge=0)] | None, BeforeValidator(off_or_count)]
THRESHOLD: TypeAdapter[int | None] = TypeAdapter(Threshold)  # the CLI flags parse with it too


class Settings(BaseSettings):
    """Worker counts (how many things run side by side, per flow, per task and per copy pool) and the GO rule's
    lag threshold."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    migrate_task_workers: int = Field(
        default=6, ge=1, description="Task runs side by side in the migrate flow (partitions, segments, steps)."
    )
    flow_task_workers: int = Field(default=4, ge=1, description="Task runs side by side in sync, cutover, validate.")
    s3_copy_workers: int = Field(
        default=8, ge=1, description="Copies in flight per S3 partition task (the flows run several such tasks)."
    )
    s3_validate_workers: int = Field(default=16, ge=1, description="Reads in flight per bucket validation.")
    ddb_writers: int = Field(default=4, ge=1, description="BatchWriteItem calls in flight per DynamoDB segment/replay.")
    ddb_backfill_tasks: int = Field(
        default=32,
        ge=1,
        le=256,
        description="Task runs per DynamoDB table backfill, at most (each scans its segments one after the other); "
        "the table's read budget and the target's write capacity are split across them.",
    )
    max_lag_seconds: float = Field(
        default=60.0,
        gt=0,
        description="GO needs every table's stream lag at or under this many seconds (migrate's verdict, "
        "cutover's default for --max-lag-seconds).",
    )
    s3_batch_min_objects: Threshold = Field(
        default=10_000_000,
        description="Buckets with at least this many objects are backfilled by an S3 Batch Replication job "
        "(0: every bucket; off: never; migrate's --s3-batch-min-objects).",
    )
    dynamodb_import_min_bytes: Threshold = Field(
        default=10 * 1024**3,
        description="Tables of at least this many bytes are backfilled by export to S3 and ImportTable "
        "(0: every table; off: never; migrate's --dynamodb-import-min-bytes).",
    )
    plan_list_max_objects: Threshold = Field(
        default=1_000_000,
        description="migrate --plan takes a bucket's objects and bytes from CloudWatch's daily NumberOfObjects and "
        "BucketSizeBytes instead of listing it when CloudWatch counts more than this many (0: whenever CloudWatch "
        "has a count; off: list every bucket; migrate's --plan-list-max-objects). The run itself always lists.",
    )
    task_runner: Literal["thread", "dask"] = Field(
        default="thread",
        description="Where task runs execute: thread (this process) or dask (Dask workers; the CLIs' --task-runner, "
        "a deployment's job variables).",
    )
    dask_workers: int | None = Field(
        default=None, description="Worker processes of the local Dask cluster (none: one per core; --dask-workers)."
    )
    dask_address: str | None = Field(
        default=None, description="An existing Dask cluster's scheduler, e.g. tcp://host:8786 (--dask-address)."
    )


def load_settings() -> Settings:
    """The environment's settings, or a ConfigError with one line per bad variable (name, problem, fix)."""
    try:
        settings = Settings()
    except ValidationError as err:
        problems = []
        for e in err.errors():
            name = f"{ENV_PREFIX}{'.'.join(str(p) for p in e['loc'])}".upper()
            field = Settings.model_fields[str(e["loc"][0])]
            problems.append(f"{name}: {e['msg']}; set {expected(field)}, or unset it for the default {field.default}")
        raise ConfigError(*problems) from None
    variables = tuple(f"{ENV_PREFIX}{n.upper()}" for n in ("task_runner", "dask_workers", "dask_address"))
    problem = runner_problem(settings.task_runner, settings.dask_workers, settings.dask_address, variables)  # type: ignore[arg-type]
    if problem:
        raise ConfigError(problem)
    return settings


def expected(field: FieldInfo) -> str:
    """What a field accepts, in words, from its type and bound: 'a whole number >= 1', 'a number > 0'."""
    if get_origin(field.annotation) is Literal:
        return "one of " + ", ".join(get_args(field.annotation))
    if field.annotation == str | None:
        return "text"
    if any(isinstance(m, BeforeValidator) and m.func is off_or_count for m in field.metadata):
        return "a whole number >= 0, or off"
    kind = "a whole number" if field.annotation in (int, int | None) else "a number"
    bounds = [
        f"{op} {getattr(bound, attr)}"
        for bound in field.metadata
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="))
        if getattr(bound, attr, None) is not None
    ]
    return " ".join([kind, " and ".join(bounds)]) if bounds else kind


def settings_table() -> str:
    """The README's table of every REGION_MIGRATION_* variable, from the fields themselves (a test keeps the
    README equal to it: `python -m config.settings` prints it)."""
    rows = ["| Variable | Default | What it sets |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {field.default} ({expected(field)}) | {field.description} |")
    return "\n".join(rows)


SETTINGS = load_settings()

if __name__ == "__main__":
    print(settings_table())
