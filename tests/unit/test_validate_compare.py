"""compare.py: pure pandas, no AWS. Every mismatch listed, exact whatever the hash does."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tasks.validate import compare
from tasks.validate.compare import compare_frames, hash_strings, write_mismatches


def frame(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": pd.array([r[0] for r in rows], dtype="string[pyarrow]"),
            "digest": np.array([r[1] for r in rows], dtype=np.uint64),
            "size": np.array([r[2] for r in rows], dtype=np.int64),
        }
    )


def as_set(out: pd.DataFrame) -> set[tuple[str, str]]:
    return {(str(k), str(kind)) for k, kind in zip(out["key"], out["kind"], strict=True)}


def test_each_kind_with_detail_and_compact_dtypes() -> None:
    src = frame([("a", 1, 10), ("b", 2, 20), ("c", 3, 30), ("d", 4, 40)])
    dst = frame([("d", 4, 41), ("b", 2, 20), ("c", 9, 30), ("e", 5, 50)])
    out = compare_frames(src, dst, "key", ["digest", "size"])
    assert list(out.columns) == ["key", "kind", "detail"]
    assert out.to_dict("records") == [
        {"key": "a", "kind": "missing_in_target", "detail": ""},
        {"key": "c", "kind": "different", "detail": "digest: 3 != 9"},
        {"key": "d", "kind": "different", "detail": "size: 40 != 41"},
        {"key": "e", "kind": "extra_in_target", "detail": ""},
    ]
    assert out["key"].dtype == pd.StringDtype("pyarrow")
    assert isinstance(out["kind"].dtype, pd.CategoricalDtype)
    assert list(out["kind"].cat.categories) == [
        "missing_in_target",
        "extra_in_target",
        "different",
        "encryption",
        "extra_foreign",
    ]


def test_both_columns_differ_in_one_detail() -> None:
    out = compare_frames(frame([("k", 1, 1)]), frame([("k", 2, 2)]), "key", ["digest", "size"])
    assert out["detail"].tolist() == ["digest: 1 != 2; size: 1 != 2"]


def test_identical_frames_give_an_empty_typed_frame() -> None:
    src = frame([(f"k{i}", i, i) for i in range(100)])
    out = compare_frames(src, src.sample(frac=1.0, random_state=1), "key", ["digest", "size"])
    assert out.empty and list(out.columns) == ["key", "kind", "detail"]
    assert compare_frames(frame([]), frame([]), "key", ["digest"]).empty


def test_empty_sides() -> None:
    src = frame([("a", 1, 1), ("b", 2, 2)])
    assert as_set(compare_frames(src, frame([]), "key", ["digest"])) == {
        ("a", "missing_in_target"),
        ("b", "missing_in_target"),
    }
    assert as_set(compare_frames(frame([]), src, "key", ["digest"])) == {
        ("a", "extra_in_target"),
        ("b", "extra_in_target"),
    }


@pytest.mark.parametrize(("n_src", "n_dst"), [(8, 9), (1, 1000), (1000, 3), (5000, 70)])
def test_sides_of_very_different_sizes(n_src: int, n_dst: int) -> None:
    src = frame([(f"k{i}", i, 1) for i in range(n_src)])
    dst = frame([(f"k{i}", i, 1) for i in range(n_dst)])
    out = compare_frames(src, dst, "key", ["digest"])
    kind = "missing_in_target" if n_src > n_dst else "extra_in_target"
    assert as_set(out) == {(f"k{i}", kind) for i in range(min(n_src, n_dst), max(n_src, n_dst))}


def test_uint64_digests_never_pass_through_float() -> None:
    # Near 2**64 a float64 cannot tell these apart; unmatched rows in the same frame used to force float.
    big = 2**64 - 2
    src = frame([("a", big, 1), ("only-src", 1, 1)])
    dst = frame([("a", big - 1, 1), ("only-dst", 1, 1)])
    out = compare_frames(src, dst, "key", ["digest"])
    assert as_set(out) == {("a", "different"), ("only-src", "missing_in_target"), ("only-dst", "extra_in_target")}


def test_missing_values_equal_only_to_missing() -> None:
    src = pd.DataFrame({"key": ["a", "b", "c"], "fp": pd.array(["x", None, None], dtype="string[pyarrow]")})
    dst = pd.DataFrame({"key": ["a", "b", "c"], "fp": pd.array(["x", None, "y"], dtype="string[pyarrow]")})
    out = compare_frames(src, dst, "key", ["fp"])
    assert out["key"].tolist() == ["c"] and out["kind"].tolist() == ["different"]


def test_duplicate_keys_raise() -> None:
    with pytest.raises(ValueError, match="duplicate keys"):
        compare_frames(frame([("a", 1, 1), ("a", 2, 2)]), frame([("a", 1, 1)]), "key", ["digest"])


def test_missing_column_or_null_key_raise() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        compare_frames(frame([("a", 1, 1)]), frame([("a", 1, 1)]), "key", ["nope"])
    nulls = pd.DataFrame({"key": pd.array(["a", None], dtype="string[pyarrow]"), "digest": [1, 2]})
    with pytest.raises(ValueError, match="null"):
        compare_frames(nulls, nulls, "key", ["digest"])


def random_frames(seed: int, n: int = 4000) -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, str]]]:
    rng = random.Random(seed)
    alphabet = "ab/é_0😀"
    keys = list({"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(n)})
    src_rows = [(k, rng.getrandbits(64), rng.randint(0, 10)) for k in keys]
    expected: set[tuple[str, str]] = set()
    dst_rows = []
    for k, d, s in src_rows:
        r = rng.random()
        if r < 0.05:
            expected.add((k, "missing_in_target"))
            continue
        if r < 0.10:
            d ^= 1
            expected.add((k, "different"))
        dst_rows.append((k, d, s))
    for i in range(150):
        k = f"extra-{i}"
        dst_rows.append((k, i, i))
        expected.add((k, "extra_in_target"))
    rng.shuffle(dst_rows)
    return frame(src_rows), frame(dst_rows), expected


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_a_naive_set_comparison(seed: int) -> None:
    src, dst, expected = random_frames(seed)
    assert as_set(compare_frames(src, dst, "key", ["digest", "size"])) == expected


def test_hash_collisions_fall_back_to_the_exact_join(monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst, expected = random_frames(3, 1000)

    def terrible(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        lens = np.array([len(v.as_py()) for v in arr], dtype=np.uint64)
        return lens, lens  # many collisions within and across sides

    monkeypatch.setattr(compare, "hash_strings", terrible)
    assert as_set(compare_frames(src, dst, "key", ["digest", "size"])) == expected


def test_cross_side_collision_is_caught_by_the_second_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    real = compare.hash_strings

    def first_collides(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        h1, h2 = real(arr)
        # "x" (source only) and "y" (target only) share a first hash: only the second tells them apart.
        vals = arr.to_pylist()
        for i, v in enumerate(vals):
            if v in ("x", "y"):
                h1[i] = 42
        return h1, h2

    monkeypatch.setattr(compare, "hash_strings", first_collides)
    out = compare_frames(frame([("x", 1, 1), ("k", 1, 1)]), frame([("y", 1, 1), ("k", 1, 1)]), "key", ["digest"])
    assert as_set(out) == {("x", "missing_in_target"), ("y", "extra_in_target")}


def test_integer_and_object_keys() -> None:
    src = pd.DataFrame({"id": [1, 2, 3], "v": [1, 1, 1]})
    dst = pd.DataFrame({"id": [3, 2, 4], "v": [1, 2, 1]})
    out = compare_frames(src, dst, "id", ["v"])
    assert list(zip(out["id"], out["kind"], strict=True)) == [
        (1, "missing_in_target"),
        (2, "different"),
        (4, "extra_in_target"),
    ]
    obj = pd.DataFrame({"key": pd.Series(["a", "b"], dtype=object), "v": [1, 2]})
    assert as_set(compare_frames(obj, obj.iloc[:1], "key", ["v"])) == {("b", "missing_in_target")}


def test_hash_strings_is_stable_across_layouts() -> None:
    vals = ["", "a", "abcdefgh", "abcdefghi", "ü" * 9, "x" * 100] + [f"k{i}" for i in range(50)]
    h1, h2 = hash_strings(pa.array(vals))
    for arr in (pa.array(vals, pa.large_string()), pa.array(["pad", *vals]).slice(1)):
        g1, g2 = hash_strings(arr)
        assert (g1 == h1).all() and (g2 == h2).all()
    for i, v in enumerate(vals):
        one1, one2 = hash_strings(pa.array([v]))
        assert one1[0] == h1[i] and one2[0] == h2[i]
    assert len(set(h1.tolist())) == len(vals) and len(set(h2.tolist())) == len(vals)
    # Trailing zero bytes are content, not padding.
    z1, _ = hash_strings(pa.array([b"a", b"a\x00", b"a" + b"\x00" * 7, b"a" + b"\x00" * 8], pa.binary()))
    assert len(set(z1.tolist())) == 4


def test_write_mismatches_one_csv_for_all_stores(tmp_path: Path) -> None:
    bucket = compare_frames(frame([("a", 1, 1)]), frame([("b", 1, 1)]), "key", ["digest"])
    table = compare_frames(frame([('{"id":{"S":"1"}}', 1, 1)]), frame([('{"id":{"S":"1"}}', 2, 1)]), "key", ["digest"])
    path = write_mismatches(
        {"my-bucket": bucket, "my-table": table, "clean": bucket.iloc[:0]}, tmp_path / "r" / "m.csv"
    )
    rows = list(csv.DictReader(path.open()))
    assert [r["store"] for r in rows] == ["my-bucket", "my-bucket", "my-table"]
    assert rows[2] == {"store": "my-table", "key": '{"id":{"S":"1"}}', "kind": "different", "detail": "digest: 1 != 2"}
    empty = write_mismatches({}, tmp_path / "empty.csv")
    assert empty.read_text().strip() == "store,key,kind,detail"
