"""Test helper: one table moved by the very parts the migrate flow runs (flows.parts.move), in its order.

Stream first (so writes during the backfill are captured), the segment plan, every segment's backfill, then the
stream catch-up with its lag metric; here one after the other instead of as mapped Prefect tasks.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from tasks import compound
from tasks.aws import Backend
from tasks.move.dynamodb import backfill_segment, ensure_source_stream, plan_segments


def move_table(
    backend: Backend, cfg: MigrationConfig, source: str, target: str, checkpoint_table: str
) -> dict[str, Any]:
    """Stream, plan, backfill and catch-up of one table; the parts' own results, plus the backfill's sums."""
    stream = ensure_source_stream.fn(backend, cfg, source, checkpoint_table)
    total = plan_segments.fn(backend, cfg, source, checkpoint_table)
    segments = [backfill_segment.fn(backend, cfg, source, target, s, total, checkpoint_table) for s in range(total)]
    caught = compound.catch_up.fn(backend, cfg, source, target, checkpoint_table)
    backfill = {k: sum(int(s[k]) for s in segments) for k in ("scanned", "written", "bytes")}
    return {"stream": stream, "totalSegments": total, "segments": segments, "backfill": backfill, "catchUp": caught}
