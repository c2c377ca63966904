"""What the validator Lambda reads, and how the flow writes it: one home for both sides of that contract.

The flow sets the function's environment (tasks/provision/lambda_.function_environment, pairs through
`pairs_text`); the handler reads its event, falling back to that environment (`settings`). Stdlib only:
build_package ships this file next to the Lambda's handler.py, as it does digest.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

SAMPLE_LIMIT = 10  # keys listed per kind of mismatch in a data check


def pairs_text(pairs: Mapping[str, str]) -> str:
    """source -> target as "src=dst,src2=dst2" (the handler's parse_pairs reads it back)."""
    return ",".join(f"{source}={pairs[source]}" for source in sorted(pairs))


def parse_pairs(value: Any) -> list[dict[str, str]]:
    """[{"source", "target"}] from the event's list, or from "src=dst,src2=dst2" (the environment form)."""
    if isinstance(value, str):
        value = [dict(zip(("source", "target"), part.split("=", 1), strict=False)) for part in value.split(",")]
    out: list[dict[str, str]] = []
    for pair in value or []:
        source, target = str(pair.get("source") or "").strip(), str(pair.get("target") or "").strip()
        if not source and not target:
            continue
        if not source or not target:
            raise ValueError(f"a pair needs a source and a target, got {pair!r}")
        out.append({"source": source, "target": target})
    return out


def settings(event: dict[str, Any] | None) -> dict[str, Any]:
    """Event keys win; environment variables fill in what the event leaves out."""
    event = event or {}

    def names(key: str, env: str) -> list[str]:
        value = event.get(key)
        if value is None:
            value = os.environ.get(env, "")
        if isinstance(value, str):
            value = value.split(",")
        return [str(v).strip() for v in value if str(v).strip()]

    event_pairs = event.get("pairs") or {}
    pairs = {
        kind: parse_pairs(event_pairs[kind] if kind in event_pairs else os.environ.get(env, ""))
        for kind, env in (("buckets", "BUCKET_PAIRS"), ("tables", "TABLE_PAIRS"))
    }

    def with_targets(listed: list[str], kind: str) -> list[str]:
        # A pair's target gets the configuration checks too, listed or not (once).
        return list(dict.fromkeys([*listed, *(p["target"] for p in pairs[kind])]))

    limit = event.get("sampleLimit") or os.environ.get("SAMPLE_LIMIT") or SAMPLE_LIMIT
    return {
        "targetRegion": event.get("targetRegion") or os.environ.get("TARGET_REGION") or os.environ.get("AWS_REGION"),
        "sourceRegion": event.get("sourceRegion") or os.environ.get("SOURCE_REGION") or None,
        "buckets": with_targets(names("buckets", "BUCKETS"), "buckets"),
        "tables": with_targets(names("tables", "TABLES"), "tables"),
        "pairs": pairs,
        "topicArn": event.get("topicArn") or os.environ.get("TOPIC_ARN") or None,
        "kmsKeyArn": event.get("kmsKeyArn") or os.environ.get("KMS_KEY_ARN") or None,
        "sampleLimit": max(1, int(limit)),
        "runId": str(event.get("runId") or "") or None,
        "resultTable": event.get("resultTable") or os.environ.get("RESULT_TABLE") or None,
    }
