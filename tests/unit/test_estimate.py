"""The estimator on fixed inputs, every figure worked out by hand from the shipped us-east-1 prices (no emulator):
S3 PUT/COPY/LIST $0.005 and GET/HEAD $0.0004 per 1,000, transfer $0.02/GB, Batch Operations $0.25 a job and $1.00
per million objects, KMS $0.03 per 10,000, DynamoDB on-demand $0.625 / $0.125 per million WRU / RRU, provisioned
$0.00065 per WCU-hour, export $0.10/GB, import $0.15/GB, PITR $0.20 per GB-month, Streams $0.02 per 100,000."""

from __future__ import annotations

import pytest

from config.prices import load_prices
from tasks import estimate as est
from tasks.paths import DDB_EXPORT_IMPORT, DDB_SCAN, S3_BATCH_REPLICATION, S3_CLIENT_COPY

PRICES = load_prices()
WORKERS = est.CopyWorkers(6, 8)  # 48 copies in flight
GIB = 1024**3


def test_money_and_duration_print_for_people() -> None:
    assert est.money(1234.564) == "$1,234.56"
    assert est.money(0.004) == "$0.00"
    assert est.money(1_000_000) == "$1,000,000.00"
    assert [est.duration(s) for s in (45, 720, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)] == [
        "45 s",
        "12 min",
        "3 h 05 min",
        "2 d 4 h",
    ]


def test_client_copy_of_a_million_objects() -> None:
    e = est.s3_client_copy(PRICES, 1_000_000, 10 * GIB, WORKERS)
    assert e["requests"] == {
        "COPY/PUT": 1_000_000,  # one CopyObject each: $5.00
        "KMS": 10_000,  # 1% with bucket keys: $0.03
        "checkpoint WRU": 1_000_000,  # one manifest record each: $0.625
        "LIST": 5_000,  # 1,000 pages x (3 catch-up/planning + 2 validation): $0.025
        "GET/HEAD": 2_000_000,  # validation HEAD on both sides: $0.80
    }
    assert e["transferGB"] == 10.0  # $0.20
    assert e["usd"] == pytest.approx(5 + 0.03 + 0.625 + 0.025 + 0.80 + 0.20) and e["cost"] == "$6.68"
    # 48 in flight / 50 ms = 960 objects/s (under 3,500/s per prefix): 1,000,000 / 960 s; bytes take 10.7 s
    assert e["seconds"] == pytest.approx(1_000_000 / 960, abs=0.1)
    assert any("3,500 COPY/s per prefix" in a for a in e["assumptions"])


def test_batch_replication_prices_every_version() -> None:
    e = est.s3_batch_replication(PRICES, 1_000_000, 10 * GIB, versions=1_500_000)
    r = e["requests"]
    assert r["Batch Operations jobs"] == 1  # $0.25
    assert r["Batch Operations objects"] == 1_500_000  # per version: $1.50
    assert r["COPY/PUT"] == 1_500_000  # replication PUTs: $7.50
    assert r["KMS"] == 15_000  # $0.045
    assert r["GET/HEAD"] == 4_000_000  # catch-up and validation HEADs, both sides: $1.60
    assert r["LIST"] == 5_000 and r["checkpoint WRU"] == 2  # $0.025 + $0.00000125
    assert e["transferGB"] == 15.0  # 1.5 versions per object of 10 GiB: $0.30
    assert e["usd"] == pytest.approx(0.25 + 1.5 + 7.5 + 0.045 + 1.6 + 0.025 + 0.30, abs=0.005)
    assert e["cost"] == "$11.22"
    assert e["seconds"] == 900 + 1_500  # manifest generation, then 1,000 versions/s (assumed)


def test_bucket_path_and_the_other_beside_it() -> None:
    small = est.estimate_bucket(PRICES, "b", 1_000_000, 10 * GIB, 10_000_000, WORKERS)
    assert small["path"] == S3_CLIENT_COPY and small["alternative"]["path"] == S3_BATCH_REPLICATION
    assert small["alternative"]["cost"] == "$8.11"  # one version per object: 0.25 + 1 + 5 + 0.03 + 1.6 + .025 + .2
    big = est.estimate_bucket(PRICES, "b", 1_000_000, 10 * GIB, 1_000_000, WORKERS)
    assert big["path"] == S3_BATCH_REPLICATION and "1,000,000 objects >= threshold 1,000,000" in big["why"]
    held = est.estimate_bucket(PRICES, "b", 1_000_000, 10 * GIB, 0, WORKERS, blocked="no S3 Batch Operations here")
    assert held["path"] == S3_CLIENT_COPY and "but no S3 Batch Operations here" in held["why"]


ON_DEMAND = est.TableRates(1000.0, "on-demand rate 1000 RCU/s", None, "on-demand", True)
SIZE = est.TableSize(1_000_000, 2 * GIB)  # 2,147 B per item: 3 write units each


def test_scan_of_an_on_demand_table() -> None:
    e = est.ddb_scan(PRICES, SIZE, ON_DEMAND)
    assert e["requests"] == {
        "scan RRU": 262_144,  # 2 GiB / 8 KB eventually consistent: $0.032768
        "BatchWriteItem WRU": 3_000_000,  # $1.875
        "checkpoint WRU": 2_049,  # one per 1 MB page: $0.00128
        "stream reads": 11,  # 1% of items replayed, 1,000 records per GetRecords, + 1: $0.0000022
        "validation RRU": 1_048_576,  # both tables, 4 KB strongly consistent: $0.131072
    }
    assert e["transferGB"] == 2.0  # $0.04
    assert e["usd"] == pytest.approx(0.032768 + 1.875 + 0.00128 + 0.0000022 + 0.131072 + 0.04, abs=0.005)
    assert e["cost"] == "$2.08"
    # reads 262,144 / 1,000 RCU/s = 262 s; writes 3,000,000 / 4,000 WRU/s (a new on-demand table) = 750 s
    assert e["seconds"] == 750.0


def test_scan_into_a_provisioned_target_pays_its_capacity_hours() -> None:
    rates = est.TableRates(5.0, "0.5 x 10 provisioned RCU", 10.0, "10 provisioned WCU", False)
    e = est.ddb_scan(PRICES, est.TableSize(36_000, 36_000 * 1000), rates)
    # writes 36,000 WRU / 10 WCU/s = 3,600 s; reads 36,000,000 / 8192 / 5 = 879 s: the writes bound it
    assert e["seconds"] == 3600.0
    assert e["requests"]["target WCU-hours"] == 10.0  # 10 WCU for one hour: $0.0065
    assert e["requests"]["scan RRU"] == 4_395  # within provisioned RCU: not billed
    billed = {line["what"]: line["usd"] for line in e["lines"] if line["price"]}
    assert "scan RRU" not in billed and billed["target WCU-hours"] == pytest.approx(0.0065)


def test_export_import_prices_gb_and_pitr_while_on() -> None:
    e = est.ddb_export_import(PRICES, SIZE, ON_DEMAND)
    # export 600 s + 2 GiB at 100 MiB/s (20.48 s), import 600 s + 2 GiB at 50 MiB/s (40.96 s)
    assert e["seconds"] == pytest.approx(1261.4, abs=0.05)
    r = e["requests"]
    assert r["export GB"] == 2.0 and r["import GB"] == 2.0  # $0.20 + $0.30
    assert r["PITR GB-months"] == pytest.approx(2 * 1261.44 / 3600 / 730, abs=1e-6)  # $0.000192
    assert "BatchWriteItem WRU" not in r and "scan RRU" not in r  # no capacity consumed
    assert e["cost"] == "$0.67"  # 0.20 + 0.30 + 0.04 transfer + 0.131072 validation + the rest


def test_table_path_choice_with_the_other_path_beside_it() -> None:
    big = est.estimate_table(PRICES, "t", SIZE, ON_DEMAND, GIB)
    assert big["path"] == DDB_EXPORT_IMPORT and big["alternative"]["path"] == DDB_SCAN
    assert big["alternative"]["cost"] == "$2.08" and big["sizeFrom"] == "DescribeTable"
    held = est.estimate_table(PRICES, "t", SIZE, ON_DEMAND, GIB, blocked="the table has local secondary indexes")
    assert held["path"] == DDB_SCAN and "local secondary indexes" in held["why"]


def test_total_adds_costs_and_takes_the_longest_store() -> None:
    stores = [
        est.estimate_bucket(PRICES, "b", 1_000_000, 10 * GIB, None, WORKERS),
        est.estimate_table(PRICES, "t", SIZE, ON_DEMAND, None),
    ]
    total = est.total(stores)
    assert total["cost"] == "$8.76"  # $6.68 + $2.08
    assert total["seconds"] == pytest.approx(1_000_000 / 960, abs=0.1)
    assert total["requests"]["checkpoint WRU"] == 1_000_000 + 2_049
    assert total["transferGB"] == 12.0


def test_a_small_read_budget_is_printed_with_its_fraction() -> None:
    rates = est.TableRates(2.5, "0.5 x 5 provisioned RCU", None, "on-demand", False)
    e = est.ddb_scan(PRICES, est.TableSize(2_500, 2_500 * 670), rates)
    assert any(a.startswith("read budget 2.5 RCU/s (0.5 x 5 provisioned RCU)") for a in e["assumptions"])
    assert any(a.startswith("writes 4,000 WCU/s") for a in e["assumptions"])
