"""One source for the names the pipeline derives: report paths and checkpoint keys."""

from __future__ import annotations

import re
from pathlib import Path

from config.model import MigrationConfig
from tasks.names import report_path

ROOT = Path(__file__).resolve().parents[2]


def test_report_paths_are_the_ones_the_flows_always_wrote(cfg: MigrationConfig) -> None:
    tail = f"{cfg.migrationBatch}-{cfg.environmentSuffix}.json"
    assert report_path("migration-report", cfg) == Path(f"reports/migration-report-{tail}")
    assert report_path("sync", cfg) == Path(f"reports/sync-{tail}")
    assert report_path("cutover", cfg) == Path(f"reports/cutover-{tail}")
    assert report_path("validation", cfg) == Path(f"reports/validation-{tail}")
    assert report_path("sync", cfg, "/tmp/mine.json") == Path("/tmp/mine.json")
    assert report_path("sync", cfg, "") == Path(f"reports/sync-{tail}")


def test_no_flow_builds_a_report_path_itself() -> None:
    built = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "flows").glob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"""Path\(.*["']reports|f["']reports/""", line)
    ]
    assert built == []
