"""DynamoDB stream catch-up: replay the source stream onto the target from the shard checkpoints.

The stream was enabled before the backfill scanned (tasks.move.dynamodb), so every write made during or after
the backfill is in it; replaying it in per-key order, parents before children, converges the target to the
source. Each page's last sequence number is checkpointed after its writes, and puts and deletes are idempotent,
so a page replayed after a crash lands on the same state.

Shards replay side by side (SHARD_WORKERS), a child only once its parent is finished (closed and drained). AWS
(DynamoDB Streams, reading a stream): "Because shards have a lineage (parent and children), an application must
always process a parent shard before it processes a child shard"; an item's records follow its partition down
one lineage, so independent lineages hold no key in common and may interleave freely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from config.model import MigrationConfig
from config.settings import SETTINGS
from tasks.aws import Backend, error_code
from tasks.errors import PreflightError
from tasks.move.checkpoints import CheckpointStore
from tasks.move.dynamodb import describe_source
from tasks.move.dynamodb_plan import (
    STREAM_SK,
    age_seconds,
    chunks,
    collapse_records,
    order_shards,
    retention_warning,
    shard_sk,
    table_pk,
    write_requests,
)
from tasks.move.dynamodb_write import WriteStats, write_batch
from tasks.move.keys import SHARD_PREFIX

STREAM_PAGE = 1000  # get_records maximum
CLOSED_SHARD_EMPTY_POLLS = 20
# Shards read at once. Their writes share the one pool of `writers`, so the target's load stays what it was.
SHARD_WORKERS = 4


def _list_shards(streams: Any, arn: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamArn": arn}
    while True:
        desc = streams.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(desc.get("Shards", []))
        last = desc.get("LastEvaluatedShardId")
        if not last:
            return shards
        kwargs["ExclusiveStartShardId"] = last


@dataclass
class _Budget:
    deadline: float | None
    records_left: int | None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, records: int) -> None:
        """Count records applied (shards replay side by side: a page in flight may overrun by one page each)."""
        with self._lock:
            if self.records_left is not None:
                self.records_left -= records

    def exhausted(self) -> bool:
        if self.records_left is not None and self.records_left <= 0:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def page(self) -> int:
        return STREAM_PAGE if self.records_left is None else max(1, min(STREAM_PAGE, self.records_left))


@dataclass
class _CatchUpStats(WriteStats):
    records: int = 0
    puts: int = 0
    deletes: int = 0
    oldest_age: float | None = None
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: _CatchUpStats) -> None:
        """Fold one shard's counts into the table's."""
        self.add(other)
        self.records += other.records
        self.puts += other.puts
        self.deletes += other.deletes
        if other.oldest_age is not None:
            self.oldest_age = max(self.oldest_age or 0.0, other.oldest_age)
        self.warnings.extend(other.warnings)


def _shard_iterator(streams: Any, arn: str, shard_id: str, sequence: str | None, stats: _CatchUpStats) -> str:
    """An iterator just after the last applied record, or from the trim horizon for a new shard. If the
    checkpoint itself was trimmed away, records were lost: start at the horizon and say so."""
    if sequence:
        try:
            return str(
                streams.get_shard_iterator(
                    StreamArn=arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    SequenceNumber=sequence,
                )["ShardIterator"]
            )
        except Exception as err:
            if error_code(err) != "TrimmedDataAccessException":
                raise
            stats.warnings.append(
                f"shard {shard_id}: records after checkpoint {sequence} were trimmed (older than 24 h) "
                "before being applied; re-run the backfill to recover them"
            )
    return str(
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    )


def catch_up(
    backend: Backend,
    cfg: MigrationConfig,
    source_table: str,
    target_table: str,
    checkpoint_table: str,
    max_seconds: float | None = None,
    max_records: int | None = None,
    writers: int = SETTINGS.ddb_writers,
    shard_workers: int = SHARD_WORKERS,
) -> dict[str, Any]:
    """Replay the source stream onto the target from the shard checkpoints, parents before children.

    Each get_records page is collapsed to the last change per key and written as one parallel batch,
    then its last sequence number is checkpointed; replaying a page twice converges to the same state.
    Stops early after `max_seconds` or `max_records`, and reports the lag left behind.
    """
    started = time.monotonic()
    ddb_src = backend.client("dynamodb", cfg.source_region)
    streams = backend.client("dynamodbstreams", cfg.source_region)
    dst = backend.client("dynamodb", cfg.target_region)
    store = CheckpointStore(backend, cfg.target_region, checkpoint_table)
    pk = table_pk(source_table)
    desc = describe_source(ddb_src, cfg, source_table)
    if not (desc.get("StreamSpecification") or {}).get("StreamEnabled") or not desc.get("LatestStreamArn"):
        raise PreflightError(
            f"source table {source_table!r} has no enabled stream; run ensure_source_stream before catch-up"
        )
    arn = str(desc["LatestStreamArn"])
    stats = _CatchUpStats()
    recorded = (store.get(pk, STREAM_SK) or {}).get("streamArn")
    if recorded and recorded != arn:
        stats.warnings.append(
            f"the source stream changed since the backfill ({recorded} -> {arn}); writes in between may be "
            "missing: re-run the backfill"
        )
    budget = _Budget(None if max_seconds is None else started + max_seconds, max_records)
    shards = order_shards(_list_shards(streams, arn))
    listed = {s["ShardId"] for s in shards}
    checkpoints = dict(store.query(pk, SHARD_PREFIX))
    finished: set[str] = set()
    entries: dict[str, dict[str, Any]] = {}
    waiting: list[dict[str, Any]] = []  # in lineage order: every parent before its children
    to_peek: list[tuple[str, str | None]] = []  # shards that may still hold unapplied records
    for shard in shards:
        sid = shard["ShardId"]
        cp = checkpoints.get(shard_sk(arn, sid), {})
        sequence: str | None = cp.get("sequence")
        ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        entries[sid] = {"shardId": sid, "parent": shard.get("ParentShardId"), "closed": bool(ending)}
        if cp.get("finished") or (ending and sequence and int(sequence) >= int(ending)):
            finished.add(sid)
            entries[sid].update(state="finished", sequence=sequence, applied=0)
        else:
            waiting.append(shard)
    pool = ThreadPoolExecutor(max(1, writers), thread_name_prefix="ddb-catchup")

    def replay(shard: dict[str, Any]) -> tuple[str, str | None, int, _CatchUpStats]:
        own = _CatchUpStats()

        def apply(records: list[dict[str, Any]]) -> None:
            ops = collapse_records(records)
            futures = [pool.submit(write_batch, dst, target_table, write_requests(c)) for c in chunks(ops)]
            for fut in futures:
                own.add(fut.result())
            own.puts += sum(1 for op, _ in ops if op == "put")
            own.deletes += sum(1 for op, _ in ops if op == "delete")

        sk = shard_sk(arn, shard["ShardId"])
        cp = checkpoints.get(sk, {})
        state, sequence, applied = _replay_shard(
            streams, store, pk, sk, arn, shard, cp.get("sequence"), budget, own, apply, cp
        )
        return state, sequence, applied, own

    readers = ThreadPoolExecutor(max(1, shard_workers), thread_name_prefix="ddb-shard")
    running: dict[Future[tuple[str, str | None, int, _CatchUpStats]], str] = {}
    try:
        while waiting or running:
            blocked: list[dict[str, Any]] = []
            for shard in waiting:  # start every shard whose parent is finished (or trimmed away)
                sid, parent = shard["ShardId"], shard.get("ParentShardId")
                if parent in listed and parent not in finished:
                    blocked.append(shard)
                elif budget.exhausted():
                    sequence = checkpoints.get(shard_sk(arn, sid), {}).get("sequence")
                    entries[sid].update(state="not-started", sequence=sequence, applied=0)
                    to_peek.append((sid, sequence))
                else:
                    running[readers.submit(replay, shard)] = sid
            waiting = blocked
            if not running:
                break  # what is left waits for a parent that is not finished yet
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                sid = running.pop(fut)
                state, sequence, applied, own = fut.result()
                stats.merge(own)
                entries[sid].update(state=state, sequence=sequence, applied=applied)
                if state == "finished":
                    finished.add(sid)
                elif state == "stopped":
                    to_peek.append((sid, sequence))
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)
    for shard in waiting:
        sid = shard["ShardId"]
        sequence = checkpoints.get(shard_sk(arn, sid), {}).get("sequence")
        entries[sid].update(state="waiting-for-parent", sequence=sequence, applied=0)
    shard_report = [entries[s["ShardId"]] for s in shards]

    lag = 0.0
    for sid, sequence in to_peek:
        age = _peek_age(streams, arn, sid, sequence, stats)
        if age is not None:
            lag = max(lag, age)
    warning = retention_warning(lag if lag > 0 else None, source_table)
    return {
        "table": source_table,
        "target": target_table,
        "streamArn": arn,
        "records": stats.records,
        "puts": stats.puts,
        "deletes": stats.deletes,
        "retries": stats.retries,
        "throttles": stats.throttles,
        "shards": shard_report,
        "caughtUp": not to_peek or lag == 0.0,
        "lag_seconds": round(lag, 3),
        "oldest_record_age_s": None if stats.oldest_age is None else round(stats.oldest_age, 3),
        "retention_warning": warning,
        "warnings": stats.warnings,
        "duration_s": round(time.monotonic() - started, 3),
    }


def _replay_shard(
    streams: Any,
    store: CheckpointStore,
    pk: str,
    sk: str,
    arn: str,
    shard: dict[str, Any],
    sequence: str | None,
    budget: _Budget,
    stats: _CatchUpStats,
    apply: Callable[[list[dict[str, Any]]], None],
    cp: dict[str, Any],
) -> tuple[str, str | None, int]:
    """Read one shard from its checkpoint until closed-and-drained, caught up (open shard, no records)
    or out of budget. Returns (state, last applied sequence, records applied in this call)."""
    sid = shard["ShardId"]
    closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
    iterator = _shard_iterator(streams, arn, sid, sequence, stats)
    applied = 0
    total = int(cp.get("records", 0))
    empty_polls = 0
    while True:
        if budget.exhausted():
            return "stopped", sequence, applied
        try:
            resp = streams.get_records(ShardIterator=iterator, Limit=budget.page())
        except Exception as err:
            if error_code(err) in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                iterator = _shard_iterator(streams, arn, sid, sequence, stats)
                continue
            raise
        records: list[dict[str, Any]] = resp.get("Records", [])
        if records:
            created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
            if created is not None:
                age = age_seconds(created)
                stats.oldest_age = age if stats.oldest_age is None else max(stats.oldest_age, age)
            apply(records)
            sequence = str(records[-1]["dynamodb"]["SequenceNumber"])
            applied += len(records)
            total += len(records)
            stats.records += len(records)
            budget.take(len(records))
        nxt = resp.get("NextShardIterator")
        if records or nxt is None:
            attrs: dict[str, Any] = {
                "shardId": sid,
                "streamArn": arn,
                "records": total,
                "finished": nxt is None,
            }
            if sequence:
                attrs["sequence"] = sequence
            store.put(pk, sk, attrs)
        if nxt is None:
            return "finished", sequence, applied
        if not records:
            empty_polls += 1
            if not closed or empty_polls >= CLOSED_SHARD_EMPTY_POLLS:
                return "caught-up", sequence, applied
        else:
            empty_polls = 0
        iterator = nxt


def _peek_age(streams: Any, arn: str, shard_id: str, sequence: str | None, stats: _CatchUpStats) -> float | None:
    """Age of the first record after the checkpoint (the oldest one not applied), or None if none."""
    iterator = _shard_iterator(streams, arn, shard_id, sequence, stats)
    records = streams.get_records(ShardIterator=iterator, Limit=1).get("Records", [])
    if not records:
        return None
    created = records[0]["dynamodb"].get("ApproximateCreationDateTime")
    return age_seconds(created) if created is not None else None
