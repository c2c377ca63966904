"""digest.compare_keys / digest.is_expired (shared with the validation Lambda) agree with the flow's pandas path."""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from tasks.validate import dynamodb as flow_ddb
from tasks.validate.compare import STRING, compare_frames
from tasks.validate.digest import compare_keys, is_expired, key_string


def _frame(values: Mapping[str, int | None]) -> pd.DataFrame:
    return pd.DataFrame({"key": pd.array(list(values), dtype=STRING), "size": np.array(list(values.values()))})


def _by_kind(mismatches: pd.DataFrame) -> dict[str, list[str]]:
    kinds = {"missing_in_target": "missing", "extra_in_target": "extra", "different": "different"}
    out: dict[str, list[str]] = {"missing": [], "extra": [], "different": []}
    for key, kind in zip(mismatches["key"], mismatches["kind"], strict=True):
        out[kinds[kind]].append(str(key))
    return out


def test_compare_keys_basic() -> None:
    src: dict[str, int | None] = {"a": 1, "b": 2, "c": None, "d": None}
    dst: dict[str, int | None] = {"b": 3, "c": None, "d": 0, "e": 9}
    assert compare_keys(src, dst) == {"missing": ["a"], "extra": ["e"], "different": ["b", "d"]}
    assert compare_keys({}, {}) == {"missing": [], "extra": [], "different": []}


@pytest.mark.parametrize("seed", range(5))
def test_compare_keys_agrees_with_compare_frames(seed: int) -> None:
    """Same verdicts and order as the pandas merge the flow uses, on S3-like (key -> size) inputs."""
    rng = random.Random(seed)
    keys = [f"dir{rng.randrange(5)}/obj-{i:04d}" for i in range(400)]
    src = {k: rng.randrange(1, 4) for k in keys if rng.random() < 0.9}
    dst = {k: (src[k] if rng.random() < 0.9 else src[k] + 1) for k in src if rng.random() < 0.9}
    dst |= {k: 1 for k in keys if k not in src and rng.random() < 0.5}
    expected = _by_kind(compare_frames(_frame(src), _frame(dst), "key", ["size"]))
    got = compare_keys(src, dst)
    assert got == expected
    assert all(got.values()), "the random case should exercise every kind"


def test_compare_keys_agrees_on_table_keys() -> None:
    """DynamoDB key strings (key only, no value) compare the same way on both paths."""
    names = ["pk", "sk"]
    src_items = [{"pk": {"S": f"u{i}"}, "sk": {"N": str(i)}} for i in range(50)]
    # The target spells numbers differently ("1.0"): key_string makes them equal, as DynamoDB does.
    dst_items = [{"pk": {"S": f"u{i}"}, "sk": {"N": f"{i}.0"}} for i in range(3, 53)]
    src = {key_string(i, names): None for i in src_items}
    dst = {key_string(i, names): None for i in dst_items}
    got = compare_keys(src, dst)
    assert len(got["missing"]) == 3 and len(got["extra"]) == 3 and got["different"] == []
    frames = compare_frames(
        pd.DataFrame({"key": pd.array(list(src), dtype=STRING)}),
        pd.DataFrame({"key": pd.array(list(dst), dtype=STRING)}),
        "key",
        [],
    )
    assert got == _by_kind(frames)


@pytest.mark.parametrize(
    ("item", "attr", "expired"),
    [
        ({"ttl": {"N": "99"}}, "ttl", True),
        ({"ttl": {"N": "100"}}, "ttl", True),  # at `now` counts as expired, as DynamoDB's read filter does
        ({"ttl": {"N": "100.5"}}, "ttl", False),
        ({"ttl": {"N": "1e2"}}, "ttl", True),
        ({"ttl": {"S": "50"}}, "ttl", False),  # a non-number TTL never expires
        ({"ttl": {"N": "oops"}}, "ttl", False),
        ({}, "ttl", False),
        ({"ttl": {"N": "1"}}, None, False),
    ],
)
def test_is_expired_rule(item: dict[str, dict[str, str]], attr: str | None, expired: bool) -> None:
    """One rule for the flow and the Lambda: the flow's validator imports this very function."""
    assert is_expired(item, attr, 100.0) is expired
    assert flow_ddb.is_expired is is_expired
