"""The backfill path of each store by its size: thresholds, 0 and off, and the fallback when a path cannot serve."""

from __future__ import annotations

import pytest

from config.settings import Settings
from flows.common import threshold
from tasks.paths import DDB_EXPORT_IMPORT, DDB_SCAN, S3_BATCH_REPLICATION, S3_CLIENT_COPY, s3_path, table_path


def test_a_bucket_at_the_threshold_takes_batch_replication_and_below_it_client_copy() -> None:
    assert s3_path(10, 10).path == S3_BATCH_REPLICATION
    assert s3_path(9, 10).path == S3_CLIENT_COPY
    assert s3_path(None, 10).path == S3_CLIENT_COPY  # not counted: never assumed big
    assert "9 objects < 10" in s3_path(9, 10).reason


def test_zero_forces_the_server_side_path_and_off_disables_it() -> None:
    assert s3_path(0, 0).path == S3_BATCH_REPLICATION
    assert table_path(0, 0).path == DDB_EXPORT_IMPORT
    assert s3_path(10**12, None).path == S3_CLIENT_COPY
    assert table_path(10**15, None).path == DDB_SCAN
    assert "off" in table_path(10**15, None).reason


def test_a_path_that_cannot_serve_falls_back_and_says_why() -> None:
    choice = s3_path(10**9, 10, blocked="the backend has no S3 Batch Operations")
    assert choice.path == S3_CLIENT_COPY
    assert "no S3 Batch Operations" in choice.reason
    assert table_path(10**12, 1, blocked="it has a local secondary index").path == DDB_SCAN


@pytest.mark.parametrize(("text", "value"), [("off", None), ("OFF", None), ("0", 0), ("12", 12)])
def test_thresholds_parse_a_count_or_off(text: str, value: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert threshold(text) == value
    monkeypatch.setenv("REGION_MIGRATION_S3_BATCH_MIN_OBJECTS", text)
    assert Settings().s3_batch_min_objects == value


def test_a_bad_threshold_is_refused() -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="whole number >= 0, or off"):
        threshold("-1")
