"""Register the project's block types and create the example blocks for the embedded emulator.

    python -m blocks.register [--endpoint-url URL]

Creates (overwriting, so a re-run converges):
  - AWS Credentials `region-migration-source` / `region-migration-target`: one block per region (the
    example's source and target regions), emulator keys, AwsClientParameters.endpoint_url = the emulator;
  - Region Migration Config `region-migration-example`: config/migration.example.json;
  - Region Migration SNS Alert `region-migration-alerts`: the example migration's alert topic, published
    with the target-region credentials block.
Without --endpoint-url the embedded emulator is found (or started) as the flows do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.model import EXAMPLE_CONFIG, ConfigError, MigrationConfig, load_config
from config.options import EXIT_BAD_INPUT, EXIT_OK, fail, quiet_prefect_defaults
from tasks.aws import EMULATOR_ACCESS_KEY, EMULATOR_SECRET_KEY
from tasks.errors import UserError
from tasks.names import alert_topic_arn

SOURCE_BLOCK = "region-migration-source"
TARGET_BLOCK = "region-migration-target"
CONFIG_BLOCK = "region-migration-example"
ALERT_BLOCK = "region-migration-alerts"
EMULATOR_ACCOUNT = "123456789012"  # the account id moto answers with


def topic_arn(cfg: MigrationConfig, account_id: str = EMULATOR_ACCOUNT) -> str:
    """The migration's alert topic ARN (the one rule: tasks.names.alert_topic_arn), by default moto's account."""
    return alert_topic_arn(cfg, account_id)


def register_block_types() -> list[str]:
    """Register our block types and prefect-aws's AwsCredentials (idempotent); returns their slugs."""
    from prefect_aws import AwsCredentials

    from blocks.config_block import MigrationConfigBlock
    from blocks.sns_alert import SnsAlert

    classes = (AwsCredentials, MigrationConfigBlock, SnsAlert)
    for cls in classes:
        cls.register_type_and_schema()
    return [cls.get_block_type_slug() for cls in classes]


def create_example_blocks(endpoint_url: str, account_id: str = EMULATOR_ACCOUNT) -> dict[str, str]:
    """Save the four example blocks (overwrite=True); returns {block name: what it holds}."""
    from prefect_aws import AwsClientParameters, AwsCredentials

    from blocks.config_block import MigrationConfigBlock
    from blocks.sns_alert import SnsAlert

    cfg = load_config(EXAMPLE_CONFIG)
    created: dict[str, str] = {}
    credentials: dict[str, AwsCredentials] = {}
    for name, region in ((SOURCE_BLOCK, cfg.source_region), (TARGET_BLOCK, cfg.target_region)):
        block = AwsCredentials(
            aws_access_key_id=EMULATOR_ACCESS_KEY,
            aws_secret_access_key=EMULATOR_SECRET_KEY,  # pydantic coerces to SecretStr
            region_name=region,
            aws_client_parameters=AwsClientParameters(endpoint_url=endpoint_url),
        )
        block.save(name, overwrite=True)
        credentials[region] = block
        created[name] = f"{AwsCredentials.get_block_type_slug()} ({region}, endpoint {endpoint_url})"

    MigrationConfigBlock.from_file(EXAMPLE_CONFIG).save(CONFIG_BLOCK, overwrite=True)
    created[CONFIG_BLOCK] = (
        f"{MigrationConfigBlock.get_block_type_slug()} ({EXAMPLE_CONFIG.name}: batch {cfg.migration_batch}, "
        f"{cfg.source_region} -> {cfg.target_region})"
    )

    alert_topic = topic_arn(cfg, account_id)
    # The saved target-region credentials block is stored as a reference, not a copy.
    SnsAlert(topic_arn=alert_topic, region=cfg.target_region, aws_credentials=credentials[cfg.target_region]).save(
        ALERT_BLOCK, overwrite=True
    )
    created[ALERT_BLOCK] = f"{SnsAlert.get_block_type_slug()} ({alert_topic}, credentials {TARGET_BLOCK})"
    return created


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blocks.register", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint-url", help="AWS-compatible endpoint for the example blocks (default: the embedded emulator)"
    )
    parser.add_argument(
        "--account-id", default=EMULATOR_ACCOUNT, help="account id in the example topic ARN (default: moto's)"
    )
    args = parser.parse_args(argv)
    quiet_prefect_defaults()
    try:
        endpoint = args.endpoint_url
        if endpoint is None:
            from tasks.emulator import ensure_emulator

            endpoint = ensure_emulator()
        if not endpoint.startswith(("http://", "https://")):
            raise UserError(f"--endpoint-url {endpoint!r} must start with http:// or https://")
        endpoint = endpoint.rstrip("/")
        for slug in register_block_types():
            print(f"registered block type {slug}")
        for name, what in create_example_blocks(endpoint, args.account_id).items():
            print(f"saved block {name}: {what}")
    except (ConfigError, UserError) as err:
        return fail(str(err), EXIT_BAD_INPUT)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
