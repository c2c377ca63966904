"""Test helper: one table moved by the very parts the migrate flow runs (flows.parts.move), in its order.

Stream first (so writes during the backfill are captured), the segment plan, every segment group's backfill, then the
stream catch-up with its lag metric; here one after the other instead of as mapped Prefect tasks.
"""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks import compound
from tasks.aws import Backend
from tasks.move.dynamodb import backfill_segments, ensure_source_stream, plan_segments
from tasks.move.dynamodb_plan import segment_groups


def move_table(
    backend: Backend, cfg: MigrationConfig, source: str, target: str, checkpoint_table: str
) -> dict[str, Any]:
    """Stream, plan, backfill and catch-up of one table; the parts' own results, plus the backfill's sums."""
    stream = ensure_source_stream.fn(backend, cfg, source, checkpoint_table)
    total = plan_segments.fn(backend, cfg, source, checkpoint_table)
    groups = segment_groups(total, SETTINGS.ddb_backfill_tasks)
    segments = [backfill_segments.fn(backend, cfg, source, target, g, total, checkpoint_table) for g in groups]
    caught = compound.catch_up.fn(backend, cfg, source, target, checkpoint_table)
    backfill = {k: sum(int(s[k]) for s in segments) for k in ("scanned", "written", "bytes")}
    return {"stream": stream, "totalSegments": total, "segments": segments, "backfill": backfill, "catchUp": caught}
