"""digest.py: pure, no AWS. Equal digests exactly when DynamoDB holds the same typed data."""

from __future__ import annotations

import base64

import pytest

from tasks.validate.digest import (
    attribute_diff,
    canonical_number,
    digest_int,
    item_digest,
    key_string,
    parse_key_string,
)


def test_digest_is_blake2b_128_hex() -> None:
    d = item_digest({"id": {"S": "x"}})
    assert len(d) == 32 and int(d, 16) >= 0
    assert digest_int(d) == int(d[:16], 16) < 2**64


def test_type_exact_number_vs_string() -> None:
    assert item_digest({"a": {"N": "1"}}) != item_digest({"a": {"S": "1"}})
    assert item_digest({"a": {"B": b"1"}}) != item_digest({"a": {"S": "1"}})
    assert item_digest({"a": {"BOOL": True}}) != item_digest({"a": {"N": "1"}})
    assert item_digest({"a": {"NULL": True}}) != item_digest({"a": {"BOOL": True}})
    assert item_digest({"a": {"SS": ["1"]}}) != item_digest({"a": {"NS": ["1"]}})
    assert item_digest({"a": {"L": [{"S": "x"}]}}) != item_digest({"a": {"SS": ["x"]}})


@pytest.mark.parametrize("spelling", ["1", "1.0", "1E0", "1e0", "01", "1.000", "0.1E1", "10E-1"])
def test_number_spellings_are_one_number(spelling: str) -> None:
    assert canonical_number(spelling) == "1"
    assert item_digest({"n": {"N": spelling}}) == item_digest({"n": {"N": "1"}})


def test_number_canonical_forms() -> None:
    assert canonical_number("-0") == canonical_number("0.000") == "0"
    assert canonical_number("1E+2") == "100"
    assert canonical_number("-1.50") == "-1.5"
    # 38 significant digits (DynamoDB's precision) stay distinct: no rounding at Python's default 28.
    a = "1.0000000000000000000000000000000000001"
    assert canonical_number(a) != canonical_number("1")
    assert item_digest({"n": {"N": a}}) != item_digest({"n": {"N": "1"}})


def test_set_order_irrelevant_list_order_relevant() -> None:
    assert item_digest({"s": {"SS": ["a", "b"]}}) == item_digest({"s": {"SS": ["b", "a"]}})
    assert item_digest({"s": {"NS": ["1", "2.0"]}}) == item_digest({"s": {"NS": ["2", "1.00"]}})
    assert item_digest({"s": {"BS": [b"\x01", b"\x02"]}}) == item_digest({"s": {"BS": [b"\x02", b"\x01"]}})
    assert item_digest({"l": {"L": [{"S": "a"}, {"S": "b"}]}}) != item_digest({"l": {"L": [{"S": "b"}, {"S": "a"}]}})


def test_maps_key_order_irrelevant_nested() -> None:
    a = {"m": {"M": {"x": {"N": "1"}, "y": {"M": {"z": {"S": "q"}, "w": {"NS": ["3", "2"]}}}}}, "id": {"S": "1"}}
    b = {"id": {"S": "1"}, "m": {"M": {"y": {"M": {"w": {"NS": ["2", "3.0"]}, "z": {"S": "q"}}}, "x": {"N": "1.0"}}}}
    assert item_digest(a) == item_digest(b)
    c = {"id": {"S": "1"}, "m": {"M": {"y": {"M": {"w": {"NS": ["2", "3"]}, "z": {"S": "Q"}}}, "x": {"N": "1"}}}}
    assert item_digest(a) != item_digest(c)


def test_binary_by_bytes_whatever_the_encoding() -> None:
    raw = b"\x00\xffdata"
    assert item_digest({"b": {"B": raw}}) == item_digest({"b": {"B": base64.b64encode(raw).decode()}})
    assert item_digest({"b": {"B": raw}}) != item_digest({"b": {"B": raw + b"\x00"}})


def test_attribute_names_matter() -> None:
    assert item_digest({"a": {"S": "x"}}) != item_digest({"b": {"S": "x"}})
    assert item_digest({"a": {"S": "x"}}) != item_digest({"a": {"S": "x"}, "b": {"NULL": True}})


def test_key_string_canonical_and_round_trip() -> None:
    item = {"pk": {"S": "user#1"}, "sk": {"N": "1.50"}, "bin": {"B": b"\x01\x02"}, "other": {"S": "x"}}
    ks = key_string(item, ["pk", "sk"])
    assert ks == key_string({"sk": {"N": "1.5"}, "pk": {"S": "user#1"}}, ["pk", "sk"])
    assert parse_key_string(ks) == {"pk": {"S": "user#1"}, "sk": {"N": "1.5"}}
    kb = key_string(item, ["bin"])
    assert parse_key_string(kb) == {"bin": {"B": b"\x01\x02"}}
    # Type-tagged: a number key and a string key with the same text are different keys.
    assert key_string({"k": {"N": "1"}}, ["k"]) != key_string({"k": {"S": "1"}}, ["k"])
    with pytest.raises(ValueError):
        key_string({"k": {"BOOL": True}}, ["k"])


def test_attribute_diff_names_top_level_and_nested_paths() -> None:
    a = {
        "id": {"S": "1"},
        "qty": {"N": "1"},
        "same": {"N": "2.0"},
        "tags": {"SS": ["a", "b"]},
        "gone": {"S": "x"},
        "profile": {"M": {"address": {"M": {"city": {"S": "Paris"}, "zip": {"S": "75001"}}}, "age": {"N": "3"}}},
    }
    b = {
        "id": {"S": "1"},
        "qty": {"S": "1"},
        "same": {"N": "2"},
        "tags": {"SS": ["b", "a"]},
        "new": {"BOOL": False},
        "profile": {"M": {"address": {"M": {"zip": {"S": "75001"}, "city": {"S": "Lyon"}}}, "age": {"N": "3"}}},
    }
    assert attribute_diff(a, b) == ["gone", "new", "profile.address.city", "qty"]
    assert attribute_diff(a, a) == []
    # A map on one side and something else on the other is a top-level difference.
    assert attribute_diff({"p": {"M": {}}}, {"p": {"L": []}}) == ["p"]
