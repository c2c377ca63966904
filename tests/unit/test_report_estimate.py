"""After a run, the report sets each store's estimate beside what the run measured, so the estimate can be checked
(pure: the report test's real-run inputs, no emulator)."""

from __future__ import annotations

from typing import Any

from config.model import MigrationConfig
from config.prices import load_prices
from config.settings import SETTINGS
from tasks import estimate as est
from tasks.report.build import estimate_vs_measured
from tasks.report.models import Report
from tasks.report.render import render_markdown
from tests.unit.test_report_shape import measured_inputs, migrate_report

PRICES = load_prices()


def test_the_report_puts_measured_counts_next_to_the_estimate(cfg: MigrationConfig) -> None:
    inputs = measured_inputs()
    inputs["moved"]["analytics-raw-data"]["plan"] = {"objects": 307, "bytes": 21_000_000, "partitions": 2}
    report = migrate_report(cfg, inputs)
    rates = est.TableRates(2.5, "0.5 x 5 provisioned RCU", 8.0, "8 provisioned WCU", False)
    before = {
        "analytics-events": est.estimate_table(PRICES, "analytics-events", est.TableSize(2500, 1_600_000), rates, None)
    }

    section = estimate_vs_measured(report, before, PRICES, None)

    by_store = {row["store"]: row for row in section["stores"]}
    assert set(by_store) == {"analytics-raw-data", "analytics-events"}  # the others have no estimate to compare
    bucket = by_store["analytics-raw-data"]
    assert bucket["path"] == "client-copy" and bucket["kind"] == "s3 bucket"
    assert bucket["estimated"]["objects"] == 307 and bucket["estimated"]["COPY/PUT"] == 307
    # measured: the backfill's two partitions saw 150 + 157 objects; copies of backfill and catch-up add up
    assert bucket["measured"]["objects"] == 307
    assert bucket["measured"]["COPY/PUT"] == 150 + 157 + 1 + 1  # + the catch-up's copy and its re-encrypting copy
    assert bucket["measured"]["bytes"] == 20_000
    table = by_store["analytics-events"]
    assert table["estimated"]["items"] == 2500 and table["estimated"]["bytes"] == 1_600_000
    assert table["measured"]["items"] == 2500  # two segments of 1,250
    assert table["measured"]["scan RRU"] == 1.0  # consumed read units the scans measured (0.5 each)
    assert table["estimated"]["scan RRU"] == 196  # 1,600,000 B / 8 KB
    assert section["total"]["measured"]["seconds"] == 36.1
    assert section["total"]["estimated"]["usd"] == round(bucket_usd(report) + before["analytics-events"]["usd"], 2)
    assert section["prices"] == "config/prices-us-east-1.json"

    report["estimate"] = section
    assert Report.model_validate(report).estimate is not None
    text = render_markdown(report)
    assert "## Estimate (before the run) vs measured" in text
    assert "| analytics-raw-data | client-copy | $" in text
    assert "objects 307, bytes 21,000,000, COPY/PUT 307, seconds " in text


def bucket_usd(report: dict[str, Any]) -> float:
    workers = est.CopyWorkers(SETTINGS.migrate_task_workers, SETTINGS.s3_copy_workers)
    return float(est.estimate_bucket(PRICES, "analytics-raw-data", 307, 21_000_000, None, workers)["usd"])
