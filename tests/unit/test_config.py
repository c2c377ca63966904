"""Config validation: every bad value gets one line naming the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.model import EXAMPLE_CONFIG, ConfigError, load_config, parse_config


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
    assert cfg.dynamodbTables[0].scaled(5) == 8  # ceil(5 x 1.5)
    assert cfg.dynamodbTables[1].scaled(5) == 10


def test_environment_suffix_flag_beats_env_beats_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_SUFFIX", "staging")
    assert parse_config(example()).environmentSuffix == "staging"
    assert parse_config(example(), environment_suffix="pr42").environmentSuffix == "pr42"


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
    defaults = parse_config(example()).dynamodbTables[0]
    assert (defaults.ttlAttribute, defaults.sourceReadShare, defaults.onDemandReadRate) == (None, 0.5, 1000.0)
    assert parse_config(mutate("dynamodbTables.0.ttlAttribute", "expiresAt")).dynamodbTables[0].ttlAttribute == (
        "expiresAt"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(mutate(path, value))
    assert expected in str(info.value) and "\n" not in str(info.value)
