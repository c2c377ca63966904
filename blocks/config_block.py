"""The migration config as a Prefect block, so a run started from the UI can pick a saved migration.

The block stores the seed's camelCase JSON as-is and validates it with `config.model.parse_config` when
it is used (`to_config`), so a bad config saved through the UI fails the run with the same one-line
message as a bad file, and nothing is created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from prefect.blocks.core import Block
from pydantic import Field

from config.model import EXAMPLE_CONFIG, ConfigError, MigrationConfig, load_config, parse_config


class MigrationConfigBlock(Block):
    """A saved migration batch: source and target regions, buckets and tables (config/migration.example.json)."""

    _block_type_name = "Region Migration Config"
    _block_type_slug = "region-migration-config"
    _description = (
        "A saved region-migration config (the seed's JSON: sourceRegion, targetRegion, migrationBatch, "
        "timestamp, environmentSuffix, s3Buckets, dynamodbTables). Flows validate it before touching AWS."
    )
    _code_example = """
    from blocks.config_block import MigrationConfigBlock

    # Save a config file as a block (validated first):
    MigrationConfigBlock.from_file("config/migration.example.json").save("my-migration", overwrite=True)

    # Use it in a flow; a bad config raises config.model.ConfigError with a one-line message:
    cfg = MigrationConfigBlock.load("my-migration").to_config(environment_suffix="staging")
    """

    config: dict[str, Any] = Field(
        default=...,
        title="Migration config",
        description=(
            "The migration config as a JSON object, in the format of config/migration.example.json "
            "(sourceRegion, targetRegion, migrationBatch, timestamp, environmentSuffix, s3Buckets, "
            "dynamodbTables). Validated when a run uses it."
        ),
        examples=[json.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))],
    )

    def to_config(self, environment_suffix: str | None = None) -> MigrationConfig:
        """The validated config; the suffix comes from the argument, then ENVIRONMENT_SUFFIX, then the block.

        Raises ConfigError with one line per problem, naming the block and the field, like a bad config file does.
        """
        name = getattr(self, "_block_document_name", None)
        source = f"config block {name!r}" if name else "config block"
        return parse_config(self.config, source=source, environment_suffix=environment_suffix)

    @classmethod
    def from_file(cls, path: str | Path) -> MigrationConfigBlock:
        """A block holding the file's JSON as written, after checking it is valid (ConfigError if not)."""
        load_config(path)  # one-line ConfigError for a missing, unreadable, malformed or invalid file
        return cls(config=json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def from_config(cls, cfg: MigrationConfig) -> MigrationConfigBlock:
        """A block holding an already validated config."""
        return cls(config=cfg.model_dump(mode="json"))


def load_config_block(name: str, *, environment_suffix: str | None = None) -> MigrationConfig:
    """Load a saved MigrationConfigBlock by name (from sync code) and validate it; missing = one-line ConfigError."""
    try:
        block = cast(MigrationConfigBlock, MigrationConfigBlock.load(name))
    except ValueError as err:
        if "Unable to find block document" in str(err):
            raise ConfigError(
                f"no config block named {name!r}; create it with `python -m blocks.register` or "
                "MigrationConfigBlock.from_file(path).save(name)"
            ) from None
        raise
    return block.to_config(environment_suffix=environment_suffix)
