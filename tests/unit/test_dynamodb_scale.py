"""DynamoDB at terabyte size: segments sized by the table, grouped into a bounded number of task runs, and the
read budget and the target's write capacity split across the scanners that run at once (not per segment)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from config.model import MigrationConfig
from tasks.aws import Backend
from tasks.move import dynamodb as move_ddb
from tasks.move import dynamodb_plan as plan
from tasks.move.checkpoints import CheckpointStore, ensure_checkpoint_table
from tasks.names import resource_names
from tasks.report.build import summarize_segments

SRC, DST = "us-east-1", "eu-west-1"
SOURCE, TARGET = "orders", "orders-eu-test"
GB = 1024**3


def test_segments_follow_the_tables_bytes_and_items() -> None:
    assert plan.plan_total_segments(0, 30 * GB) == 15  # AWS's example: a 30 GB table, 15 segments
    assert plan.plan_total_segments(0, 10 * 1024 * GB) == 5120  # 10 TB: one segment per 2 GB
    assert plan.plan_total_segments(10**10, 0) == 5000  # 2M items each
    assert plan.plan_total_segments(10**13, 10**16) == 1_000_000  # Scan's TotalSegments limit
    # Small tables: enough segments to keep the scanners busy, never more than one per 10k items.
    assert plan.plan_total_segments(50_000, 10**6, busy=32) == 5
    assert plan.plan_total_segments(5_000_000, 10**9, busy=32) == 32
    assert plan.plan_total_segments(9_000, 10**6, busy=32) == 1


@pytest.mark.parametrize(("total", "tasks"), [(1, 32), (5, 32), (32, 32), (33, 32), (1_000_000, 32), (10**6, 256)])
def test_groups_cover_every_segment_once_in_a_bounded_number_of_tasks(total: int, tasks: int) -> None:
    groups = plan.segment_groups(total, tasks)
    assert len(groups) == min(total, tasks)
    assert all(g["of"] == len(groups) for g in groups)
    assert groups[0]["first"] == 0 and groups[-1]["stop"] == total
    assert all(a["stop"] == b["first"] for a, b in itertools.pairwise(groups))  # contiguous, no overlap
    sizes = {g["stop"] - g["first"] for g in groups}
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_concurrent_scanners_never_exceed_the_tables_budget() -> None:
    """A table of 100,000 segments in 32 groups: 32 scanners at once, each with 1/32 of the budget; over any
    stretch their sum stays within the budget (plus one burst each), and uses it (not 32/100,000 of it)."""
    rate, pages = 500.0, 200
    groups = plan.segment_groups(100_000, 32)
    clocks = [FakeClock() for _ in groups]
    pacers = [plan.ReadPacer(rate / g["of"], clock=c, sleep=c.sleep) for g, c in zip(groups, clocks, strict=True)]
    assert sum(p.rate for p in pacers) == pytest.approx(rate)
    for i, (pacer, clock) in enumerate(zip(pacers, clocks, strict=True)):
        for page in range(pages):  # pages of uneven cost, fetched in 10 ms
            clock.now += 0.01
            pacer.spend(8 + (page + i) % 9)
    # At every checkpoint in time, what all scanners consumed up to then fits the budget.
    for t in (1.0, 5.0, 10.0, max(c.now for c in clocks)):
        spent = sum(_consumed_by(p, c, t) for p, c in zip(pacers, clocks, strict=True))
        assert spent <= rate * t + sum(p.capacity for p in pacers) + 17 * len(pacers)  # + one page in flight each
    total = sum(p.consumed for p in pacers)
    assert total / max(c.now for c in clocks) >= 0.9 * rate  # and the budget is used


def _consumed_by(pacer: plan.ReadPacer, clock: FakeClock, t: float) -> float:
    """Units a pacer had let through by time t: its rate over the elapsed time plus its burst, at most what it spent."""
    return min(pacer.consumed, pacer.rate * min(t, clock.now) + pacer.capacity + 17)


def test_target_write_rate_follows_the_targets_capacity() -> None:
    assert plan.target_write_rate({"ProvisionedThroughput": {"WriteCapacityUnits": 40}})[0] == 40.0
    capped = {
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "OnDemandThroughput": {"MaxWriteRequestUnits": 90},
    }
    assert plan.target_write_rate(capped)[0] == 90.0
    rate, why = plan.target_write_rate({"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}})
    assert rate is None and "quota" in why
    assert plan.write_units([{"pk": {"S": "a"}}, {"pk": {"S": "b" * 3000}}]) == 1 + 3


# ---------------------------------------------------------------- on moto


def _table(ddb: Any, name: str, rcu: int, wcu: int) -> None:
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu},
    )


@pytest.fixture
def env(backend: Backend, cfg: MigrationConfig) -> Iterator[dict[str, Any]]:
    """A provisioned source (20 RCU: a budget of 10 at the default share) and target (8 WCU), 240 small items."""
    src, dst = backend.client("dynamodb", SRC), backend.client("dynamodb", DST)
    _table(src, SOURCE, 20, 20)
    _table(dst, TARGET, 20, 8)
    cp = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, DST, cp, cfg.tags(), None)
    items = [{"pk": {"S": f"k{i:04d}"}, "v": {"N": str(i)}} for i in range(240)]
    for part in plan.chunks(items):
        src.batch_write_item(RequestItems={SOURCE: [{"PutRequest": {"Item": it}} for it in part]})
    yield {"src": src, "dst": dst, "cp": cp, "items": items}


class _Recorded(plan.ReadPacer):
    """The pacer with a fake clock: waits are recorded, not slept."""

    made: list[_Recorded] = []

    def __init__(self, rate: float, burst_seconds: float = 1.0, clock: Any = None, sleep: Any = None) -> None:
        self.fake = FakeClock()
        super().__init__(rate, burst_seconds, clock=self.fake, sleep=self.fake.sleep)
        _Recorded.made.append(self)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[_Recorded]:
    _Recorded.made = []
    monkeypatch.setattr(move_ddb, "ReadPacer", _Recorded)
    return _Recorded.made


def _keys(ddb: Any, table: str) -> list[str]:
    return sorted(it["pk"]["S"] for page in ddb.get_paginator("scan").paginate(TableName=table) for it in page["Items"])


def test_groups_copy_every_item_once_with_the_budget_split_across_groups(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], recorded: list[_Recorded]
) -> None:
    total = 8
    groups = plan.segment_groups(total, 3)
    results = [
        move_ddb.backfill_segments.fn(backend, cfg, SOURCE, TARGET, g, total, env["cp"], page_size=20) for g in groups
    ]
    assert _keys(env["dst"], TARGET) == [it["pk"]["S"] for it in env["items"]]
    assert sum(r["scanned"] for r in results) == sum(r["written"] for r in results) == 240  # each item once
    # Each group holds 1/3 of the table's budget (0.5 x 20 RCU): together the budget, not 3/8 of it.
    assert [r["readRate"] for r in results] == [pytest.approx(10 / 3, abs=1e-3)] * 3
    summary = summarize_segments(results)
    assert (
        summary["readRate"] == pytest.approx(10.0, abs=1e-2) and summary["segments"] == 8 and summary["taskRuns"] == 3
    )
    # The target's 8 WCU are split the same way, and the writes were paced to them: 240 one-unit writes at 8/s.
    writes = [p for p in recorded if p.rate == pytest.approx(8 / 3)]
    assert len(writes) == 3 and sum(p.consumed for p in writes) == 240
    assert sum(p.fake.now for p in writes) / 3 >= (240 - 8) / 8 / 1.01  # the groups' clocks ran side by side
    assert max(p.fake.now for p in writes) == pytest.approx(max(p.consumed for p in writes) / (8 / 3), rel=0.2)
    # A re-run skips every finished segment.
    again = move_ddb.backfill_segments.fn(backend, cfg, SOURCE, TARGET, groups[0], total, env["cp"])
    assert again["skippedSegments"] == again["segments"] and again["scanned"] == 0


def test_a_killed_group_resumes_redoing_at_most_one_page_of_its_segment(
    backend: Backend, cfg: MigrationConfig, env: dict[str, Any], recorded: list[_Recorded]
) -> None:
    total, page = 4, 10
    group = plan.segment_groups(total, 1)[0]  # one task run for the four segments
    calls = {"n": 0}
    lock = threading.Lock()

    def die(**_: Any) -> None:
        with lock:
            calls["n"] += 1
            if calls["n"] == 9:  # pages of 10 are one batch each: the 9th write of the group dies
                raise ConnectionError("killed")

    events = env["dst"].meta.events
    events.register("before-call.dynamodb.BatchWriteItem", die)
    try:
        with pytest.raises(ConnectionError):
            move_ddb.backfill_segments.fn(backend, cfg, SOURCE, TARGET, group, total, env["cp"], page_size=page)
    finally:
        events.unregister("before-call.dynamodb.BatchWriteItem", die)
    store = CheckpointStore(backend, DST, env["cp"])
    before = [store.get("ddb#orders", plan.segment_sk(s, total)) or {} for s in range(total)]
    written_before = sum(int(cp.get("written", 0)) for cp in before)
    rerun = move_ddb.backfill_segments.fn(backend, cfg, SOURCE, TARGET, group, total, env["cp"], page_size=page)
    assert _keys(env["dst"], TARGET) == [it["pk"]["S"] for it in env["items"]]
    after = [store.get("ddb#orders", plan.segment_sk(s, total)) or {} for s in range(total)]
    assert all(cp.get("done") for cp in after)
    assert sum(int(cp["written"]) for cp in after) == written_before + rerun["written"]
    assert 0 <= written_before + rerun["written"] - 240 <= page  # at most the one page in flight was re-done
    assert 0 < rerun["skippedSegments"] < total  # the segments finished before the kill were not scanned again


# ---------------------------------------------------------------- stream replay across shards


class FakeStreams:
    """A streams client of three lineages: A -> A1 -> A2 (a grandchild), B -> {B1, B2} (a split), and C alone.

    Closed shards end (NextShardIterator absent) once read; open ones answer empty pages. Every get_records
    takes 50 ms, so shards that run side by side overlap in time. It records when each shard was first read
    and when it was drained.
    """

    LINEAGE: dict[str, str | None] = {"A": None, "A1": "A", "A2": "A1", "B": None, "B1": "B", "B2": "B", "C": None}
    OPEN = frozenset({"A2", "B1", "B2", "C"})

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.drained: dict[str, float] = {}
        self.lock = threading.Lock()
        self.records: dict[str, list[dict[str, Any]]] = {}
        keys = {"B1": (0, 1), "B2": (2,)}  # a split: each of B's keys goes on in one child
        for n, sid in enumerate(self.LINEAGE):
            base = 1000 * (n + 1)
            # The same keys are rewritten down each lineage: only parents-before-children leaves the last value.
            self.records[sid] = [
                self._record(f"{sid[0]}-{k}", f"{sid}:{k}", base + i) for i, k in enumerate(keys.get(sid, (0, 1, 2)))
            ]
            self.records[sid].append(self._record(f"{sid}-own", sid, base + 9))

    @staticmethod
    def _record(key: str, value: str, seq: int) -> dict[str, Any]:
        import datetime

        return {
            "eventName": "MODIFY",
            "dynamodb": {
                "Keys": {"pk": {"S": key}},
                "NewImage": {"pk": {"S": key}, "v": {"S": value}},
                "SequenceNumber": str(seq),
                "ApproximateCreationDateTime": datetime.datetime.now(datetime.UTC),
            },
        }

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        shards = []
        for sid, parent in self.LINEAGE.items():
            seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in self.records[sid]]
            rng: dict[str, str] = {"StartingSequenceNumber": str(seqs[0])}
            if sid not in self.OPEN:
                rng["EndingSequenceNumber"] = str(seqs[-1])
            shard: dict[str, Any] = {"ShardId": sid, "SequenceNumberRange": rng}
            if parent:
                shard["ParentShardId"] = parent
            shards.append(shard)
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, ShardId: str, ShardIteratorType: str, SequenceNumber: str = "", **_: Any) -> Any:
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in self.records[ShardId]]
        pos = 0 if ShardIteratorType == "TRIM_HORIZON" else sum(1 for q in seqs if q <= int(SequenceNumber))
        return {"ShardIterator": f"{ShardId}|{pos}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        sid, pos_text = ShardIterator.split("|")
        with self.lock:
            self.started.setdefault(sid, time.monotonic())
        time.sleep(0.05)
        pos = int(pos_text)
        page = self.records[sid][pos : pos + min(Limit, 2)]
        pos += len(page)
        out: dict[str, Any] = {"Records": page}
        if pos < len(self.records[sid]) or sid in self.OPEN:
            out["NextShardIterator"] = f"{sid}|{pos}"
        else:
            with self.lock:
                self.drained[sid] = time.monotonic()
        return out


def _stream_env(backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeStreams, str]:
    src, dst = backend.client("dynamodb", SRC), backend.client("dynamodb", DST)
    for ddb, name in ((src, SOURCE), (dst, TARGET)):
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    cp = resource_names(cfg).checkpoint_table
    ensure_checkpoint_table.fn(backend, DST, cp, cfg.tags(), None)
    fake = FakeStreams()
    real = Backend.client

    def client(self: Backend, service: str, region: str, max_attempts: int = 8) -> Any:
        return fake if service == "dynamodbstreams" else real(self, service, region, max_attempts)

    monkeypatch.setattr(Backend, "client", client)
    return fake, cp


def test_stream_replay_runs_lineages_side_by_side_and_children_after_their_parent(
    backend: Backend, cfg: MigrationConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.move.dynamodb_stream import catch_up

    fake, cp = _stream_env(backend, cfg, monkeypatch)
    result = catch_up(backend, cfg, SOURCE, TARGET, cp)
    # Children never start before their parent is drained.
    for sid, parent in FakeStreams.LINEAGE.items():
        if parent:
            assert fake.started[sid] >= fake.drained[parent], (sid, parent)
    # Independent lineages overlap: the three roots were read at the same time.
    roots = [s for s, p in FakeStreams.LINEAGE.items() if p is None]
    first_end = min(fake.drained.get(r, time.monotonic()) for r in roots if r not in FakeStreams.OPEN)
    assert all(fake.started[r] < first_end for r in roots)
    # Same results as one after the other: every record once, the last write down each lineage wins.
    assert result["records"] == sum(len(r) for r in fake.records.values()) == 25
    states = {e["shardId"]: e["state"] for e in result["shards"]}
    assert states == {"A": "finished", "A1": "finished", "A2": "caught-up", "B": "finished", "B1": "caught-up",
                      "B2": "caught-up", "C": "caught-up"}  # fmt: skip
    dst = backend.client("dynamodb", DST)
    got = {it["pk"]["S"]: it["v"]["S"] for it in dst.scan(TableName=TARGET)["Items"]}
    assert got["A-0"] == "A2:0" and got["A-2"] == "A2:2"  # grandchild last
    assert (got["B-0"], got["B-1"], got["B-2"]) == ("B1:0", "B1:1", "B2:2")  # each child after B itself
    assert len(got) == 3 * 3 + len(FakeStreams.LINEAGE)  # three keys per lineage, one of its own per shard
    # Resumed from the checkpoints: nothing replayed twice.
    again = catch_up(backend, cfg, SOURCE, TARGET, cp)
    assert again["records"] == 0
