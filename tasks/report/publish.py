"""Write the JSON report and publish it as Prefect artifacts (markdown + a table of resources)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.report.render import render_markdown, resource_rows


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def publish_artifacts(report: dict[str, Any]) -> dict[str, str]:
    """Markdown + table artifacts keyed per batch and suffix (keys: lowercase, digits, dashes)."""
    key = f"{report['migrationBatch']}-{report['environmentSuffix']}"
    md_id = create_markdown_artifact(
        key=f"migration-report-{key}",
        markdown=render_markdown(report),
        description=f"Region migration report {key}",
    )
    table_id = create_table_artifact(
        key=f"migration-resources-{key}",
        table=resource_rows(report),
        description=f"Resources provisioned for {key}",
    )
    return {"markdown": str(md_id), "table": str(table_id)}
