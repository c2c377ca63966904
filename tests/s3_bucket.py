"""One bucket copied inline by the parts the flow maps (tests only): plan_partitions, copy_partition per range,
summarize_copies over the results, as flows/parts.py does."""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move.s3 import copy_partition, plan_partitions
from tasks.move.s3_object import Mode
from tasks.report.build import summarize_copies

# Per-partition fields the report's summary leaves out, which the tests still read for the whole bucket.
_COUNTED = ("multipart", "replicated", "target_only")
_LISTED = ("vanishedKeys",)
_NO_UPDATE = "updateObjectEncryptionUnsupported"


def copy_bucket(
    backend: Backend,
    cfg: MigrationConfig,
    source_bucket: str,
    target_bucket: str,
    kms_key_arn: str,
    checkpoint_table: str,
    mode: Mode = "backfill",
    max_keys_per_partition: int = 1000,
    **copy_kwargs: Any,
) -> dict[str, Any]:
    """The bucket's copy summary (summarize_copies), plus the few per-partition fields it leaves out.

    Ranges run one after another: an exception (an interruption) propagates as from the flow's task."""
    parts = plan_partitions.fn(backend, cfg.source_region, source_bucket, max_keys_per_partition)
    results = [
        copy_partition.fn(
            backend, cfg, source_bucket, target_bucket, part, kms_key_arn, checkpoint_table, mode, **copy_kwargs
        )
        for part in parts
    ]
    out = summarize_copies(results)
    out.update({k: sum(int(r[k]) for r in results) for k in _COUNTED})
    out.update({k: [x for r in results for x in r[k]] for k in _LISTED})
    out[_NO_UPDATE] = next((str(r[_NO_UPDATE]) for r in results if r[_NO_UPDATE]), "")
    return out
