"""Config validation: every bad value gets one line naming the field and the fix."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from config.model import EXAMPLE_CONFIG, ConfigError, load_config, parse_config
from tasks.names import RULES, ResourceNames, fixed_name_budget, name_problem, resource_names


def example() -> dict[str, Any]:
    return json.loads(EXAMPLE_CONFIG.read_text())


def test_example_config_loads_and_names_targets() -> None:
    cfg = parse_config(example())
    assert cfg.region_prefix == "eu"
    assert cfg.target_name("analytics-raw-data") == "analytics-raw-data-eu-20261128-dev"
    assert cfg.tags() == {
        "Environment": "dev",
        "MigrationBatch": "batch-001",
        "SourceRegion": "us-east-1",
        "ManagedBy": "region-migration",
    }
    assert cfg.dynamodb_tables[0].scaled(5) == 8  # ceil(5 x 1.5)
    assert cfg.dynamodb_tables[1].scaled(5) == 10


def test_python_names_are_snake_case_and_the_json_stays_camel_case() -> None:
    """The seed's JSON keys in and out (a block stores model_dump), snake_case attributes in Python, and a
    config file may use only the JSON spelling."""
    data = example()
    cfg = parse_config(data)
    assert (cfg.source_region, cfg.target_region, cfg.migration_batch) == ("us-east-1", "eu-west-1", "batch-001")
    assert cfg.dynamodb_tables[0].hash_key == data["dynamodbTables"][0]["hashKey"]
    dumped = cfg.model_dump(mode="json", exclude_unset=True)
    assert dumped == data
    assert parse_config(dumped) == cfg
    with pytest.raises(ConfigError, match=r"^config: source_region: is not a known field"):
        parse_config({**data, "source_region": "us-west-2"})


def test_environment_suffix_flag_beats_env_beats_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_SUFFIX", "staging")
    assert parse_config(example()).environment_suffix == "staging"
    assert parse_config(example(), environment_suffix="pr42").environment_suffix == "pr42"


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = example()
    node: Any = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("sourceRegion", "us-east-9", "sourceRegion: unknown AWS region 'us-east-9'"),
        ("targetRegion", "us-east-1", "both 'us-east-1'; set targetRegion to another region"),
        ("s3Buckets.0.name", "Bad_Bucket", "s3Buckets[0].name: bucket name 'Bad_Bucket' may contain only"),
        ("s3Buckets.0.name", "a" * 60, "target bucket name"),
        ("dynamodbTables.0.name", "x", "dynamodbTables[0].name: table name 'x' must be 3 to 255"),
        ("dynamodbTables.0.scalingFactor", 0, "dynamodbTables[0].scalingFactor (analytics-events): must be a positive"),
        ("dynamodbTables.1.readCapacity", 0, "dynamodbTables[1].readCapacity (analytics-users): must be at least 1"),
        ("s3Buckets.1.lifecycleDays", 0, "s3Buckets[1].lifecycleDays (analytics-processed): must be at least 1 day"),
        ("dynamodbTables.0.hashKeyType", "X", "unknown key type 'X'; use 'S'"),
        ("s3Buckets.1.name", "analytics-raw-data", "s3Buckets lists 'analytics-raw-data' more than once"),
        ("migrationBatch", "Batch 1", "migrationBatch: 'Batch 1' must be 1 to 32 lowercase"),
        ("timestamp", _DELETE, "timestamp: is required"),
        ("s3Bucket", [], "s3Bucket: is not a known field"),
    ],
)
def test_bad_values_get_one_line(path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(path, value))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"sourceRegion": ')
    with pytest.raises(ConfigError, match=r"bad.json: invalid JSON at line 1"):
        load_config(bad)
    bad.write_text("[]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config(bad)


def test_integer_timestamp_is_accepted() -> None:
    assert parse_config(mutate("timestamp", 20261128)).timestamp == "20261128"


# ------------------------------------------------------------------ derived names and their AWS limits


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_long_suffix_is_refused_not_truncated() -> None:
    """Role names used to be cut at 64: these two environments got the same roles. Now both are refused."""
    lines = {suffix: problems(example() | {"environmentSuffix": suffix}) for suffix in ("a" * 31 + "1", "a" * 31 + "2")}
    for suffix, found in lines.items():
        assert len(found) == 2  # the fixed names (one line), and the one bucket whose target name is too long
        assert found[0].startswith("config: environmentSuffix: IAM role name 'migration-validator-role-eu-")
        assert f"-{suffix}' is 69 characters, over the AWS limit of 64" in found[0]
        assert "shorten timestamp and environmentSuffix to at most 35 characters together (now 40)" in found[0]
        assert found[1].startswith("config: s3Buckets[1].name: target bucket name 'analytics-processed-eu-")


def test_the_longer_of_timestamp_and_suffix_is_named() -> None:
    found = problems(example() | {"timestamp": "2" * 32, "environmentSuffix": "qa-team-4"})
    assert found[0].startswith("config: timestamp: Lambda function name")


def test_every_name_within_the_budget_fits_and_is_whole() -> None:
    budget = fixed_name_budget("eu-west-1")
    data = example() | {"timestamp": "20261128", "environmentSuffix": "x" * (budget - 8)}
    data["s3Buckets"] = [{"name": "bkt"}]
    data["dynamodbTables"] = [{"name": "t" * 200}]
    cfg = parse_config(data)
    names = resource_names(cfg)
    assert names.lambda_role.endswith(cfg.environment_suffix) and len(names.lambda_role) == 64
    for f in fields(ResourceNames):
        value = getattr(names, f.name)
        for name in value.values() if isinstance(value, dict) else [value]:
            if f.name != "buckets":
                assert name_problem(RULES[f.name], name) is None, name
    # One more character is refused.
    assert problems(data | {"environmentSuffix": "x" * (budget - 7)})[0].startswith("config: environmentSuffix: IAM")


def test_every_derived_name_has_an_aws_rule() -> None:
    """A new name in tasks.names must say which AWS limit it has (buckets: config.model.bucket_name_problem)."""
    assert {f.name for f in fields(ResourceNames)} - {"buckets"} <= set(RULES)


def test_target_table_name_over_255_names_the_table() -> None:
    data = example()
    data["dynamodbTables"][1]["name"] = "t" * 250
    assert problems(data) == [
        "config: dynamodbTables[1].name: target DynamoDB table name "
        f"'{'t' * 250}-eu-20261128-dev' is 266 characters, over the AWS limit of 255; "
        "shorten the table name, timestamp or environmentSuffix"
    ]


# ------------------------------------------------------------------ every problem at once


def test_three_bad_values_give_three_lines() -> None:
    data = example() | {"sourceRegion": "mars-north-1", "environmentSuffix": "Dev!"}
    data["dynamodbTables"][0]["scalingFactor"] = 0
    assert problems(data) == [
        "config: sourceRegion: unknown AWS region 'mars-north-1'; use a region code such as 'us-east-1' or 'eu-west-1'",
        "config: environmentSuffix: 'Dev!' must be 1 to 32 lowercase letters, digits or '-' (it becomes part of "
        "resource names)",
        "config: dynamodbTables[0].scalingFactor (analytics-events): must be a positive number (got 0.0); "
        "1 keeps the source capacity",
    ]


def test_field_errors_and_cross_field_checks_together() -> None:
    """pydantic skips model checks once a field fails; they still run on the values that passed."""
    data = example() | {"migrationBatch": "Batch 1"}
    data["s3Buckets"][1]["name"] = "analytics-raw-data"  # a duplicate
    data["dynamodbTables"][0]["name"] = "e" * 250  # target name too long
    found = problems(data)
    assert len(found) == 3
    assert found[0].startswith("config: migrationBatch: 'Batch 1' must be")
    assert found[1] == "config: s3Buckets lists 'analytics-raw-data' more than once; list each name once"
    assert found[2].startswith("config: dynamodbTables[0].name: target DynamoDB table name 'eeee")


def test_a_bad_value_does_not_cascade() -> None:
    """A bad targetRegion or suffix gives its own line, not also a line for every name derived from it."""
    assert len(problems(example() | {"targetRegion": "nowhere-1"})) == 1
    assert len(problems(example() | {"environmentSuffix": "x" * 40})) == 1
    bad_bucket = example()
    bad_bucket["s3Buckets"][0]["name"] = "Bad_Bucket"
    assert len(problems(bad_bucket)) == 1


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("dynamodbTables.0.ttlAttribute", "", "dynamodbTables[0].ttlAttribute (analytics-events): must be 1 to 255"),
        (
            "dynamodbTables.0.sourceReadShare",
            0,
            "dynamodbTables[0].sourceReadShare (analytics-events): must be above 0",
        ),
        ("dynamodbTables.1.sourceReadShare", 1.5, "sourceReadShare (analytics-users): must be above 0 and at most 1"),
        ("dynamodbTables.1.onDemandReadRate", -5, "onDemandReadRate (analytics-users): must be a positive number"),
    ],
)
def test_table_ttl_and_read_budget_fields(path: str, value: Any, expected: str) -> None:
    defaults = parse_config(example()).dynamodb_tables[0]
    assert (defaults.ttl_attribute, defaults.source_read_share, defaults.on_demand_read_rate) == (None, 0.5, 1000.0)
    assert parse_config(mutate("dynamodbTables.0.ttlAttribute", "expiresAt")).dynamodb_tables[0].ttl_attribute == (
        "expiresAt"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(path, value))
    assert expected in str(info.value) and "\n" not in str(info.value)
