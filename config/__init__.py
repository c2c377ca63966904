"""Migration configuration: the seed's JSON format, validated with pydantic."""

from config.model import (
    BucketSpec,
    ConfigError,
    MigrationConfig,
    TableSpec,
    load_config,
)

__all__ = ["BucketSpec", "ConfigError", "MigrationConfig", "TableSpec", "load_config"]
