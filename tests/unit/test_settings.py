"""Worker counts come from one settings object, each overridable by a REGION_MIGRATION_* variable."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.model import ConfigError
from config.settings import SETTINGS, Settings, load_settings, settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_measured_counts() -> None:
    # The values the five places hard-coded before: migrate 6, sync/cutover/validate 4, a flow's S3 partition
    # task 8, a bucket validation 16, DynamoDB writers 4.
    assert Settings().model_dump() == {
        "migrate_task_workers": 6,
        "flow_task_workers": 4,
        "s3_copy_workers": 8,
        "s3_validate_workers": 16,
        "ddb_writers": 4,
        "ddb_backfill_tasks": 32,
        "max_lag_seconds": 60.0,
        "s3_batch_min_objects": 10_000_000,
        "dynamodb_import_min_bytes": 10 * 1024**3,
        "plan_list_max_objects": 1_000_000,
        "task_runner": "thread",
        "dask_workers": None,
        "dask_address": None,
    }
    assert all(field.description for field in Settings.model_fields.values())


def test_every_place_reads_the_setting() -> None:
    from flows.cutover import cutover
    from flows.migrate import migrate
    from flows.sync import sync
    from flows.validate import validate
    from tasks import steps
    from tasks.move import dynamodb as move_ddb
    from tasks.move import dynamodb_stream
    from tasks.move import s3 as move_s3
    from tasks.validate import s3 as validate_s3

    assert vars(migrate.task_runner)["_max_workers"] == SETTINGS.migrate_task_workers
    for fl in (sync, cutover, validate):
        assert vars(fl.task_runner)["_max_workers"] == SETTINGS.flow_task_workers
    assert SETTINGS.s3_copy_workers == steps.S3_COPY_WORKERS

    def default(fn: Callable[..., Any], name: str) -> Any:
        return inspect.signature(fn).parameters[name].default

    assert default(move_s3.copy_partition.fn, "workers") == SETTINGS.s3_copy_workers
    assert default(validate_s3.validate_bucket.fn, "workers") == SETTINGS.s3_validate_workers
    for fn in (move_ddb.backfill_segment.fn, dynamodb_stream.catch_up):
        assert default(fn, "writers") == SETTINGS.ddb_writers


def test_lag_threshold_is_one_setting_for_migrate_and_cutover() -> None:
    """The GO rule's threshold: migrate's verdict, the cutover flow's parameter and its CLI default all read it."""
    env = {**os.environ, "REGION_MIGRATION_MAX_LAG_SECONDS": "12.5"}
    code = (
        "import inspect, contextlib, io; from flows import cutover as c; from tasks.report.build import verdict\n"
        "d = lambda fn: inspect.signature(fn).parameters['max_lag_seconds'].default\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit): c.main(['--help'])\n"
        "judged = verdict({'resources': {'s3Buckets': [], 'dynamodbTables': []}})['maxLagSeconds']\n"
        "print(judged, d(c.cutover.fn), '(default 12.5,' in ' '.join(out.getvalue().split()))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["12.5", "12.5", "True"]


def test_bad_lag_threshold_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_MIGRATION_MAX_LAG_SECONDS", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.problems == [
        "REGION_MIGRATION_MAX_LAG_SECONDS: Input should be greater than 0; set a number > 0, or unset it for the "
        "default 60.0"
    ]
    monkeypatch.setenv("REGION_MIGRATION_MAX_LAG_SECONDS", "1.5")
    assert load_settings().max_lag_seconds == 1.5


def test_readme_documents_every_setting() -> None:
    """The README's table is the one `settings_table()` generates from Settings.model_fields (each described)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- settings-table:", 1)[1].split("-->", 1)[1].split("<!-- /settings-table -->", 1)[0]
    assert block.strip() == settings_table()
    rows = block.strip().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [f"REGION_MIGRATION_{n.upper()}" for n in Settings.model_fields]
    assert all(f.description and f.description in block for f in Settings.model_fields.values())


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_MIGRATION_S3_COPY_WORKERS", "3")
    monkeypatch.setenv("REGION_MIGRATION_FLOW_TASK_WORKERS", "2")
    got = load_settings()
    assert (got.s3_copy_workers, got.flow_task_workers, got.migrate_task_workers) == (3, 2, 6)


def test_environment_reaches_the_flows_and_tasks() -> None:
    """Read once at import: a process started with the variables runs with them."""
    env = {**os.environ, "REGION_MIGRATION_S3_COPY_WORKERS": "3", "REGION_MIGRATION_MIGRATE_TASK_WORKERS": "5"}
    code = (
        "from flows.migrate import migrate; from tasks.steps import S3_COPY_WORKERS; "
        "print(migrate.task_runner._max_workers, S3_COPY_WORKERS)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "3"]


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_MIGRATION_DDB_WRITERS", "0")
    monkeypatch.setenv("REGION_MIGRATION_S3_VALIDATE_WORKERS", "many")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.problems == [
        "REGION_MIGRATION_S3_VALIDATE_WORKERS: Input should be a valid integer, unable to parse string as an integer; "
        "set a whole number >= 1, or unset it for the default 16",
        "REGION_MIGRATION_DDB_WRITERS: Input should be greater than or equal to 1; "
        "set a whole number >= 1, or unset it for the default 4",
    ]


def test_bad_value_exits_2_in_one_line_before_anything_runs(tmp_path: Path) -> None:
    env = {**os.environ, "REGION_MIGRATION_S3_COPY_WORKERS": "0"}
    out = subprocess.run(
        [sys.executable, "-m", "flows.migrate", "--plan"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: REGION_MIGRATION_S3_COPY_WORKERS: Input should be greater than or equal to 1; "
        "set a whole number >= 1, or unset it for the default 8"
    ]
    assert out.stdout == ""
