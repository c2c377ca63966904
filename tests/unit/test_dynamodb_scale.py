"""DynamoDB at terabyte size: segments sized by the table, grouped into a bounded number of task runs, and the
read budget and the target's write capacity split across the scanners that run at once (not per segment)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from config.model import MigrationConfig
from config.settings import SETTINGS
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


def test_the_flow_maps_groups_not_segments() -> None:
    """parts.move maps backfill_segments over segment_groups with the setting: a 10^6-segment table is at most
    REGION_MIGRATION_DDB_BACKFILL_TASKS task runs."""
    import inspect

    from flows import parts

    source = inspect.getsource(parts.move)
    assert "backfill_segments.map" in source and "segment_groups(total, SETTINGS.ddb_backfill_tasks)" in source
    assert len(plan.segment_groups(1_000_000, SETTINGS.ddb_backfill_tasks)) <= 256
