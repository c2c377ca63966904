"""Type-exact fingerprints of DynamoDB items in the low-level AttributeValue format.

Stdlib only, so the validation Lambda can ship this file as-is. Two items get the same digest exactly when
DynamoDB would consider them the same data: a number "1.0" equals "1" and "1E0" (DynamoDB stores numbers,
not strings), but N 1 never equals S "1"; set order is irrelevant, map key order is irrelevant, list order
matters, binary compares by bytes (boto3 gives bytes, stream events give base64 text: both accepted).

build_package ships this file next to the Lambda's handler.py, so the key comparison (compare_keys) and the
TTL rule (is_expired) below are shared by the Lambda's quick checks and the flow.
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import json
from collections.abc import Mapping
from typing import Any

# DynamoDB numbers carry up to 38 significant digits; the default context (28) would round them, and two
# different numbers could then share a digest.
_NUM_CONTEXT = decimal.Context(prec=60, Emax=999, Emin=-999)


def canonical_number(text: str) -> str:
    """One spelling per DynamoDB number: '1.0', '1' and '1E0' all give '1'; '-0' gives '0'."""
    try:
        value = decimal.Decimal(text.strip()).normalize(_NUM_CONTEXT)
    except decimal.InvalidOperation:
        return "NaN:" + text  # not a valid DynamoDB number; keep it distinct rather than crash validation
    if value.is_zero():
        return "0"
    return format(value, "f")


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):  # JSON / stream-event form: base64 text
        return base64.b64decode(value)
    raise TypeError(f"binary attribute value of unexpected type {type(value).__name__}")


def _canon(av: dict[str, Any]) -> Any:
    """A JSON-able, type-tagged, order-normalised form of one AttributeValue."""
    if len(av) != 1:
        raise ValueError(f"an AttributeValue has exactly one type key, got {sorted(av)}")
    ((tag, value),) = av.items()
    if tag == "S":
        return ["S", value]
    if tag == "N":
        return ["N", canonical_number(value)]
    if tag == "B":
        return ["B", _bytes(value).hex()]
    if tag == "BOOL":
        return ["BOOL", bool(value)]
    if tag == "NULL":
        return ["NULL", True]
    if tag == "SS":
        return ["SS", sorted(set(value))]
    if tag == "NS":
        return ["NS", sorted({canonical_number(v) for v in value})]
    if tag == "BS":
        return ["BS", sorted({_bytes(v).hex() for v in value})]
    if tag == "L":
        return ["L", [_canon(v) for v in value]]
    if tag == "M":
        return ["M", _canon_map(value)]
    raise ValueError(f"unknown DynamoDB attribute type {tag!r}")


def _canon_map(item: dict[str, Any]) -> list[Any]:
    return [[name, _canon(item[name])] for name in sorted(item)]


def canonical_json(item: dict[str, Any]) -> str:
    """The canonical text an item's digest is taken over (useful for debugging a mismatch)."""
    return json.dumps(_canon_map(item), ensure_ascii=False, separators=(",", ":"))


def item_digest(item: dict[str, Any]) -> str:
    """blake2b-128 hex of the canonical item: equal exactly when the items hold the same typed data."""
    return hashlib.blake2b(canonical_json(item).encode("utf-8"), digest_size=16).hexdigest()


def digest_int(hex_digest: str) -> int:
    """The first 64 bits of a digest as an unsigned int (compact uint64 column for pandas)."""
    return int(hex_digest[:16], 16)


def key_string(item: dict[str, Any], key_names: list[str] | tuple[str, ...]) -> str:
    """The primary key as canonical, type-tagged JSON, e.g. '{"userId":{"S":"u1"}}'.

    It is low-level DynamoDB JSON (numbers canonical, binary base64), so `parse_key_string` turns it back
    into a `Key` for get_item: the mismatch report can be acted on directly.
    """
    out: dict[str, dict[str, str]] = {}
    for name in key_names:
        av = item[name]
        ((tag, value),) = av.items()
        if tag == "N":
            out[name] = {"N": canonical_number(value)}
        elif tag == "B":
            out[name] = {"B": base64.b64encode(_bytes(value)).decode("ascii")}
        elif tag == "S":
            out[name] = {"S": value}
        else:
            raise ValueError(f"key attribute {name!r} has type {tag!r}; keys are S, N or B")
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def parse_key_string(text: str) -> dict[str, Any]:
    """The inverse of key_string: a low-level `Key` (binary as bytes) for get_item / batch_get_item."""
    raw: dict[str, dict[str, str]] = json.loads(text)
    key: dict[str, Any] = {}
    for name, av in raw.items():
        ((tag, value),) = av.items()
        key[name] = {"B": base64.b64decode(value)} if tag == "B" else {tag: value}
    return key


def attribute_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Attributes that differ between two items, sorted; inside maps on both sides the deepest differing
    path is named ('profile.address.city') so an operator sees what changed without diffing JSON."""
    return _diff(a, b, "")


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str) -> list[str]:
    out: list[str] = []
    for name in sorted(set(a) | set(b)):
        path = prefix + name
        if name not in a or name not in b:
            out.append(path)
            continue
        va, vb = a[name], b[name]
        if "M" in va and "M" in vb:
            out.extend(_diff(va["M"], vb["M"], path + "."))
        elif _canon(va) != _canon(vb):
            out.append(path)
    return out


def attribute_type(av: dict[str, Any] | None) -> str:
    """The DynamoDB type tag of an AttributeValue ('-' when the attribute is absent)."""
    return next(iter(av)) if av else "-"


# ---------------------------------------------------------------- key-level comparison (flow and Lambda)


def compare_keys(src: Mapping[str, int | None], dst: Mapping[str, int | None]) -> dict[str, list[str]]:
    """Sorted keys `missing` (source only), `extra` (target only) and `different` (both, unequal values).

    Values are what must also match: an S3 object's size, an item digest, or None for "the key is enough"
    (None equals only None). Same verdicts as the flow's pandas compare_frames, on plain dicts, for the
    validation Lambda's quick checks and for small sets.
    """
    return {
        "missing": sorted(k for k in src if k not in dst),
        "extra": sorted(k for k in dst if k not in src),
        "different": sorted(k for k, v in src.items() if k in dst and dst[k] != v),
    }


def is_expired(item: dict[str, Any], ttl_attr: str | None, now: float) -> bool:
    """True when the item's TTL attribute is a number of epoch seconds at or before `now` (DynamoDB's
    documented read-side filter); a missing or non-number TTL never expires, as in DynamoDB."""
    if not ttl_attr:
        return False
    value = item.get(ttl_attr)
    if not value or "N" not in value:
        return False
    try:
        return decimal.Decimal(value["N"]) <= decimal.Decimal(str(now))
    except decimal.InvalidOperation:
        return False
