"""Tuning settings: one object, each setting overridable by an environment variable REGION_MIGRATION_<NAME>.

As aws-sdk-pandas' `_config.py` does: a documented default per setting, read once from the environment when
the project is imported. The defaults are what the pipeline was measured with (benchmarks/, FACTS.md); they
change how fast the pipeline runs, never what it does. A bad value is one line naming the variable (exit 2).
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.model import ConfigError

ENV_PREFIX = "REGION_MIGRATION_"


class Settings(BaseSettings):
    """Worker counts: how many things run side by side, per flow, per task and per copy pool."""

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


def load_settings() -> Settings:
    """The environment's settings, or a ConfigError with one line per bad variable (name, problem, fix)."""
    try:
        return Settings()
    except ValidationError as err:
        problems = []
        for e in err.errors():
            name = f"{ENV_PREFIX}{'.'.join(str(p) for p in e['loc'])}".upper()
            default = Settings.model_fields[str(e["loc"][0])].default
            problems.append(f"{name}: {e['msg']}; set a whole number >= 1, or unset it for the default {default}")
        raise ConfigError(*problems) from None


SETTINGS = load_settings()
