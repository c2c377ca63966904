"""The migration config: the seed's camelCase JSON, validated before anything touches AWS.

Every rule here produces a one-line message that names the field and says how to fix it, because a
platform engineer reads these in a terminal or a Prefect log, not in a stack trace.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasks import names as naming

PROJECT_TAG = "region-migration"
KeyType = Literal["S", "N", "B"]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_TOKEN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


# Python attributes in snake_case; the JSON is the seed's camelCase, the only spelling a config file may use.
_JSON_KEYS = ConfigDict(
    extra="forbid", alias_generator=to_camel, validate_by_alias=True, validate_by_name=False, serialize_by_alias=True
)


class ConfigError(ValueError):
    """User mistakes in the config: one line per problem (each naming its field), fit to print as-is."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@cache
def known_regions() -> frozenset[str]:
    """Regions botocore knows in any partition, read from its bundled endpoint data (no network)."""
    import boto3

    session = boto3.session.Session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("s3", partition_name=partition))
        regions.update(session.get_available_regions("dynamodb", partition_name=partition))
    return frozenset(regions)


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name (general purpose bucket rules), or None."""
    if not 3 <= len(name) <= 63:
        return f"is {len(name)} characters; S3 bucket names must be 3 to 63"
    if not _BUCKET_RE.match(name):
        return "may contain only lowercase letters, digits, '-' and '.', and must start and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "must not contain '..', '.-' or '-.'"
    if _IP_RE.match(name):
        return "must not look like an IP address"
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        return "uses a prefix or suffix that S3 reserves"
    return None


class BucketSpec(BaseModel):
    """One source bucket to migrate."""

    model_config = _JSON_KEYS

    name: str
    versioning: bool = True
    lifecycle_days: int = 90

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        problem = bucket_name_problem(v)
        if problem:
            raise ValueError(f"bucket name {v!r} {problem}")
        return v

    @field_validator("lifecycle_days")
    @classmethod
    def _days(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be at least 1 day (got {v}); set the days after which objects expire")
        return v


class TableSpec(BaseModel):
    """One source table to migrate; schema fields are optional because describe_table is the truth."""

    model_config = _JSON_KEYS

    name: str
    hash_key: str | None = None
    hash_key_type: KeyType | None = None
    range_key: str | None = None
    range_key_type: KeyType | None = None
    read_capacity: int | None = None
    write_capacity: int | None = None
    scaling_factor: float = 1.0
    # TTL on the target only when asked: by default the target mirrors the source's TTL exactly.
    ttl_attribute: str | None = None
    # Read budget of the backfill and validation scans: a share of the table's provisioned read capacity,
    # or, for an on-demand table without a maximum, this many read capacity units per second.
    source_read_share: float = 0.5
    on_demand_read_rate: float = 1000.0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TABLE_RE.match(v):
            raise ValueError(f"table name {v!r} must be 3 to 255 characters of letters, digits, '_', '-' and '.'")
        return v

    @field_validator("hash_key_type", "range_key_type", mode="before")
    @classmethod
    def _key_type(cls, v: Any) -> Any:
        if v is not None and v not in ("S", "N", "B"):
            raise ValueError(f"unknown key type {v!r}; use 'S' (string), 'N' (number) or 'B' (binary)")
        return v

    @field_validator("read_capacity", "write_capacity")
    @classmethod
    def _capacity(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be at least 1 capacity unit (got {v})")
        return v

    @field_validator("scaling_factor")
    @classmethod
    def _factor(cls, v: float) -> float:
        if not v > 0 or math.isinf(v):
            raise ValueError(f"must be a positive number (got {v}); 1 keeps the source capacity")
        return v

    @field_validator("ttl_attribute")
    @classmethod
    def _ttl_attribute(cls, v: str | None) -> str | None:
        if v is not None and not 1 <= len(v.encode("utf-8")) <= 255:
            raise ValueError("must be 1 to 255 bytes (a DynamoDB attribute name), or left out to mirror the source")
        return v

    @field_validator("source_read_share")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"must be above 0 and at most 1 (got {v}); 0.5 reads at half the provisioned capacity")
        return v

    @field_validator("on_demand_read_rate")
    @classmethod
    def _rate(cls, v: float) -> float:
        if not v > 0 or math.isinf(v):
            raise ValueError(f"must be a positive number of read capacity units per second (got {v})")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> TableSpec:
        if self.range_key_type and not self.range_key:
            raise ValueError("rangeKeyType is set but rangeKey is not; add rangeKey or remove rangeKeyType")
        if self.hash_key_type and not self.hash_key:
            raise ValueError("hashKeyType is set but hashKey is not; add hashKey or remove hashKeyType")
        return self

    def scaled(self, capacity: int) -> int:
        """Target capacity: ceil(source capacity x scalingFactor), at least 1."""
        return max(1, math.ceil(capacity * self.scaling_factor - 1e-9))


Loc = tuple[int | str, ...]


def cross_field_problems(values: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Checks that need several fields, on plain values; a value that failed its own check is None and every
    check that needs it is skipped, so one bad value gives one line, not a cascade.

    `s3Buckets` / `dynamodbTables` are lists of names (None for an entry whose name is invalid).
    """
    out: list[tuple[Loc, str]] = []
    source, target = values.get("sourceRegion"), values.get("targetRegion")
    timestamp, suffix = values.get("timestamp"), values.get("environmentSuffix")
    buckets: list[str | None] | None = values.get("s3Buckets")
    tables: list[str | None] | None = values.get("dynamodbTables")
    if source and source == target:
        out.append(((), f"sourceRegion and targetRegion are both {source!r}; set targetRegion to another region"))
    if buckets is not None and tables is not None and not buckets and not tables:
        out.append(((), "nothing to migrate; list at least one entry in s3Buckets or dynamodbTables"))
    for field, entries in (("s3Buckets", buckets), ("dynamodbTables", tables)):
        listed = [n for n in entries or [] if n]
        for dupe in sorted({n for n in listed if listed.count(n) > 1}):
            out.append(((), f"{field} lists {dupe!r} more than once; list each name once"))
    if not (target and timestamp and suffix):
        return out  # the derived names need all three
    names = naming.derived_names(
        target, timestamp, suffix, [b for b in buckets or [] if b], [t for t in tables or [] if t]
    )
    fixed = naming.fixed_name_problems(names)
    if fixed:
        # One line for all of them: they share the cause (timestamp + environmentSuffix are too long).
        field = "timestamp" if len(timestamp) > len(suffix) else "environmentSuffix"
        budget = naming.fixed_name_budget(target)
        out.append(
            (
                (field,),
                f"{'; '.join(fixed)}; shorten timestamp and environmentSuffix to at most {budget} characters "
                f"together (now {len(timestamp) + len(suffix)})",
            )
        )
    for i, bucket in enumerate(buckets or []):
        if bucket:
            problem = bucket_name_problem(names.buckets[bucket])
            if problem:
                out.append(
                    (
                        ("s3Buckets", i, "name"),
                        f"target bucket name {names.buckets[bucket]!r} {problem}; "
                        "shorten the bucket name, timestamp or environmentSuffix",
                    )
                )
    for i, table in enumerate(tables or []):
        if table:
            problem = naming.name_problem(naming.RULES["tables"], names.tables[table])
            if problem:
                out.append(
                    (
                        ("dynamodbTables", i, "name"),
                        f"target {problem}; shorten the table name, timestamp or environmentSuffix",
                    )
                )
    return out


class MigrationConfig(BaseModel):
    """A whole migration batch: where from, where to, and which buckets and tables."""

    model_config = _JSON_KEYS

    source_region: str
    target_region: str
    migration_batch: str
    timestamp: str
    environment_suffix: str
    s3_buckets: list[BucketSpec] = Field(default_factory=list)
    dynamodb_tables: list[TableSpec] = Field(default_factory=list)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("source_region", "target_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in known_regions():
            raise ValueError(f"unknown AWS region {v!r}; use a region code such as 'us-east-1' or 'eu-west-1'")
        return v

    @field_validator("migration_batch", "timestamp", "environment_suffix")
    @classmethod
    def _token(cls, v: str) -> str:
        if not v or not _TOKEN_RE.match(v) or len(v) > 32:
            raise ValueError(
                f"{v!r} must be 1 to 32 lowercase letters, digits or '-' (it becomes part of resource names)"
            )
        return v

    @model_validator(mode="after")
    def _whole(self) -> MigrationConfig:
        problems = cross_field_problems(
            {
                "sourceRegion": self.source_region,
                "targetRegion": self.target_region,
                "timestamp": self.timestamp,
                "environmentSuffix": self.environment_suffix,
                "s3Buckets": [b.name for b in self.s3_buckets],
                "dynamodbTables": [t.name for t in self.dynamodb_tables],
            }
        )
        if problems:
            # A ValidationError raised here keeps one error per problem, each with its own field.
            raise ValidationError.from_exception_data(
                "MigrationConfig",
                [
                    InitErrorDetails(type=PydanticCustomError("config", "{msg}", {"msg": msg}), loc=loc, input=None)
                    for loc, msg in problems
                ],
            )
        return self

    @property
    def region_prefix(self) -> str:
        """First part of the target region: 'eu' for eu-west-1."""
        return naming.region_prefix(self.target_region)

    def target_name(self, name: str) -> str:
        """`{name}-{regionprefix}-{timestamp}-{environmentSuffix}`, the seed's naming rule (tasks.names)."""
        return naming.target_name(name, self.target_region, self.timestamp, self.environment_suffix)

    def tags(self) -> dict[str, str]:
        """Tags on every resource we create; ManagedBy + batch + suffix is how we recognise our own."""
        return {
            "Environment": self.environment_suffix,
            "MigrationBatch": self.migration_batch,
            "SourceRegion": self.source_region,
            "ManagedBy": PROJECT_TAG,
        }

    def owns(self, tags: Mapping[str, str]) -> bool:
        """True when a resource's tags say this very migration (batch + environment) created it."""
        return (
            tags.get("ManagedBy") == PROJECT_TAG
            and tags.get("MigrationBatch") == self.migration_batch
            and tags.get("Environment") == self.environment_suffix
        )


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """One pydantic error as 'field: what is wrong and how to fix it'."""
    loc = tuple(error["loc"])
    msg = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "missing":
        msg = "is required; add it to the config"
    elif kind == "extra_forbidden":
        msg = "is not a known field; check its spelling against config/migration.example.json"
    # Name the entry, not just its index, so the user finds it in a long list.
    if len(loc) >= 2 and loc[0] in ("s3Buckets", "dynamodbTables") and isinstance(loc[1], int):
        try:
            name = data[str(loc[0])][loc[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        if name and loc[2:] != ("name",):
            return f"{_where(loc)} ({name}): {msg}"
    return f"{_where(loc)}: {msg}" if loc else msg


def _valid_values(data: Mapping[str, Any], errors: list[Any]) -> dict[str, Any]:
    """The raw values cross_field_problems needs, None where pydantic already refused the value."""
    bad = {tuple(e["loc"]) for e in errors}
    out: dict[str, Any] = {}
    for field in ("sourceRegion", "targetRegion", "timestamp", "environmentSuffix"):
        value = data.get(field)
        out[field] = None if value is None or any(b[:1] == (field,) for b in bad) else str(value)
    for field in ("s3Buckets", "dynamodbTables"):
        entries = data.get(field, [])
        if not isinstance(entries, list) or (field,) in bad:
            out[field] = None
            continue
        out[field] = [
            e.get("name") if isinstance(e, dict) and not {(field, i), (field, i, "name")} & bad else None
            for i, e in enumerate(entries)
        ]
    return out


def config_problems(data: Mapping[str, Any], err: ValidationError) -> list[str]:
    """Every problem of a refused config, one line each: pydantic's, then the cross-field and name checks
    on the values that passed their own (pydantic skips model validators once a field fails)."""
    errors = err.errors()
    lines = [_line(e, data) for e in errors]
    if all(e["type"] != "config" for e in errors):  # the model validator did not run: run its checks here
        for loc, msg in cross_field_problems(_valid_values(data, errors)):
            lines.append(_line({"loc": loc, "msg": msg, "type": "config"}, data))
    return lines


def parse_config(data: Any, *, source: str = "config", environment_suffix: str | None = None) -> MigrationConfig:
    """Validate a decoded config; the environment suffix comes from the flag, then ENVIRONMENT_SUFFIX, then the file.

    A refused config raises one ConfigError holding every problem (one line each), not only the first.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a JSON object like config/migration.example.json")
    data = dict(data)
    suffix = environment_suffix or os.environ.get("ENVIRONMENT_SUFFIX")
    if suffix:
        data["environmentSuffix"] = suffix
    try:
        return MigrationConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(*(f"{source}: {line}" for line in config_problems(data, err))) from None


def load_config(path: str | Path, *, environment_suffix: str | None = None) -> MigrationConfig:
    """Read and validate a config file, turning every problem into a ConfigError (one line per problem)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file; pass --config with the path to your migration JSON") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot read the config ({err.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{p}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    return parse_config(data, source=str(p), environment_suffix=environment_suffix)


EXAMPLE_CONFIG = Path(__file__).with_name("migration.example.json")
